"""Static metadata of the supported datasets: files, shapes, checksums, mirrors.

Checksums of the IDX files are SHA-256 digests of the *decompressed* content,
so they hold whether a file is stored raw or re-compressed (the Debian
``dataset-fashion-mnist`` package and some MNIST mirrors re-gzip the official
files, which changes the ``.gz`` bytes but not the data). MNIST digests were
computed from the official files, whose decompressed MD5s
(6bbc9ace..., a25bea73..., 2646ac64..., 27ae3e4e...) match the published ones;
Fashion-MNIST digests from the Debian package. CIFAR-10: the archive's
published MD5 (c58f30108f718f92721af3b95e74349a) and its SHA-256, and the
per-batch MD5s that torchvision also uses.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["DATASETS", "DatasetInfo", "FileSpec", "canonical_name"]


class FileSpec(NamedTuple):
    """One file of a dataset.

    Attributes:
      name: file name on the mirror and on disk (``.gz`` IDX files may also be
        stored decompressed, without the suffix).
      sha256: hex digest, of the decompressed bytes when ``hash_decompressed``.
      md5: hex digest with the same convention (published MD5s).
      hash_decompressed: whether digests refer to the gunzipped content.
    """

    name: str
    sha256: str | None = None
    md5: str | None = None
    hash_decompressed: bool = False


class DatasetInfo(NamedTuple):
    """Metadata of one dataset in the registry."""

    name: str
    title: str
    num_classes: int
    image_shape: tuple[int, int, int]  # (H, W, C)
    num_train: int
    num_test: int
    files: tuple[FileSpec, ...]  # what must be in the data directory
    subdirs: tuple[str, ...] = ()  # sub-directories of a search root to look in
    system_dirs: tuple[str, ...] = ()  # OS-wide install locations
    mirrors: tuple[str, ...] = ()  # base URLs, tried in order
    archive: FileSpec | None = None  # downloaded instead of `files` when set
    homepage: str = ""

    @property
    def train_shape(self) -> tuple[int, ...]:
        return (self.num_train, *self.image_shape)

    @property
    def test_shape(self) -> tuple[int, ...]:
        return (self.num_test, *self.image_shape)

    @property
    def file_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.files)


def _idx(name: str, sha256: str, md5: str | None = None) -> FileSpec:
    return FileSpec(name, sha256=sha256, md5=md5, hash_decompressed=True)


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        title="MNIST",
        num_classes=10,
        image_shape=(28, 28, 1),
        num_train=60000,
        num_test=10000,
        files=(
            _idx("train-images-idx3-ubyte.gz",
                 "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                 "6bbc9ace898e44ae57da46a324031adb"),
            _idx("train-labels-idx1-ubyte.gz",
                 "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                 "a25bea736e30d166cdddb491f175f624"),
            _idx("t10k-images-idx3-ubyte.gz",
                 "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                 "2646ac647ad5339dbf082846283269ea"),
            _idx("t10k-labels-idx1-ubyte.gz",
                 "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                 "27ae3e4e09519cfbb04c329615203637"),
        ),
        subdirs=("mnist", "MNIST"),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        homepage="http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion_mnist": DatasetInfo(
        name="fashion_mnist",
        title="Fashion-MNIST",
        num_classes=10,
        image_shape=(28, 28, 1),
        num_train=60000,
        num_test=10000,
        files=(
            _idx("train-images-idx3-ubyte.gz",
                 "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
            _idx("train-labels-idx1-ubyte.gz",
                 "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
            _idx("t10k-images-idx3-ubyte.gz",
                 "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
            _idx("t10k-labels-idx1-ubyte.gz",
                 "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
        ),
        subdirs=("fashion-mnist", "fashion_mnist"),
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        ),
        homepage="https://github.com/zalandoresearch/fashion-mnist",
    ),
    "cifar10": DatasetInfo(
        name="cifar10",
        title="CIFAR-10",
        num_classes=10,
        image_shape=(32, 32, 3),
        num_train=50000,
        num_test=10000,
        files=(
            FileSpec("data_batch_1", md5="c99cafc152244af753f735de768cd75f"),
            FileSpec("data_batch_2", md5="d4bba439e000b95fd0a9bffe97cbabec"),
            FileSpec("data_batch_3", md5="54ebc095f3ab1f0389bbae665268c751"),
            FileSpec("data_batch_4", md5="634d18415352ddfa80567beed471001a"),
            FileSpec("data_batch_5", md5="482c414d41f54cd18b22e5b47cb7c3cb"),
            FileSpec("test_batch", md5="40351d587109b95175f43aff81a1287e"),
        ),
        subdirs=("cifar-10-batches-py", "cifar10", "cifar10/cifar-10-batches-py",
                 "cifar-10", "cifar-10/cifar-10-batches-py"),
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        archive=FileSpec(
            "cifar-10-python.tar.gz",
            sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
            md5="c58f30108f718f92721af3b95e74349a",
        ),
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
    "digits": DatasetInfo(
        name="digits",
        title="scikit-learn digits (embedded)",
        num_classes=10,
        image_shape=(8, 8, 1),
        num_train=1438,
        num_test=359,
        files=(),
        homepage="https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html",
    ),
}

_ALIASES = {
    "fashion-mnist": "fashion_mnist",
    "fashionmnist": "fashion_mnist",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
}


def canonical_name(name: str) -> str:
    """Maps a user-supplied dataset name (any case, '-' or '_') to a registry key.

    Raises:
      ValueError: unknown name; the message lists the known ones.
    """
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(
            f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}"
        )
    return key
