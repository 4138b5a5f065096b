"""download/check: no-network errors, checksum verification, file:// mirrors. Never uses the network."""

import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest

from nnopt_jax.data import (
    DATASETS,
    ChecksumError,
    DownloadError,
    check,
    destination_dir,
    download,
    load_dataset,
    write_idx,
)
from nnopt_jax.data.checksums import file_digests

UNREACHABLE = "http://127.0.0.1:9/"  # discard port: connection refused at once
IDX_FILES = DATASETS["mnist"].file_names


def _fake_mirror(path):
    path.mkdir()
    for name in IDX_FILES:
        write_idx(path / name, np.zeros((2, 2), np.uint8))
    return path


def test_destination(tmp_path, monkeypatch, _isolated_search_path):
    assert destination_dir("mnist") == _isolated_search_path / ".cache" / "nnopt" / "mnist"
    monkeypatch.setenv("NNOPT_DATA_DIR", str(tmp_path / "env"))
    assert destination_dir("fashion-mnist") == tmp_path / "env" / "fashion_mnist"
    assert destination_dir("cifar10", tmp_path) == tmp_path / "cifar10"


def test_no_network_says_which_files_to_put_where(tmp_path):
    with pytest.raises(DownloadError) as info:
        download("mnist", tmp_path, mirrors=[UNREACHABLE], progress=False, timeout=5)
    msg = str(info.value)
    assert UNREACHABLE + IDX_FILES[0] in msg
    assert f"put {', '.join(IDX_FILES)} in {tmp_path / 'mnist'}" in msg
    assert not [p for p in (tmp_path / "mnist").iterdir()]  # no partial files left


def test_no_network_cifar_explains_archive(tmp_path):
    with pytest.raises(DownloadError, match="cifar-10-python.tar.gz and unpack it in"):
        download("cifar10", tmp_path, mirrors=[UNREACHABLE], progress=False, timeout=5)


def test_checksum_mismatch_discards_file(tmp_path):
    mirror = _fake_mirror(tmp_path / "mirror")
    with pytest.raises(ChecksumError, match="checksum mismatch") as info:
        download("mnist", tmp_path / "out", mirrors=[mirror.as_uri() + "/"], progress=False)
    assert DATASETS["mnist"].files[0].sha256 in str(info.value)
    assert list((tmp_path / "out" / "mnist").iterdir()) == []


def test_download_from_local_mirror_verifies_and_is_found(tmp_path, mnist_dir, mnist_small_copy):
    out = download("mnist", tmp_path, mirrors=[mnist_small_copy.as_uri() + "/"], progress=False)
    assert out == tmp_path / "mnist"
    assert sorted(p.name for p in out.iterdir()) == sorted(IDX_FILES)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    # Valid files already present are kept, so an unreachable mirror is never contacted.
    download("mnist", tmp_path, mirrors=[UNREACHABLE], progress=False)
    assert stamps == {p.name: p.stat().st_mtime_ns for p in out.iterdir()}


@pytest.fixture
def mnist_small_copy(tmp_path, mnist_dir, monkeypatch):
    """A mirror of the real MNIST labels; images replaced by tiny files whose digests we register."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    specs = list(DATASETS["mnist"].files)
    for i, spec in enumerate(specs):
        if "labels" in spec.name:
            (mirror / spec.name).write_bytes((mnist_dir / spec.name).read_bytes())
        else:
            write_idx(mirror / spec.name, np.full((3, 28, 28), i, np.uint8))
            digests = file_digests(mirror / spec.name, decompress=True)
            specs[i] = spec._replace(sha256=digests["sha256"], md5=digests["md5"])
    monkeypatch.setitem(DATASETS, "mnist", DATASETS["mnist"]._replace(files=tuple(specs)))
    return mirror


def test_check_real_mnist(mnist_dir):
    report = check("mnist", mnist_dir)
    assert report["ok"] and report["checksums_ok"]
    assert report["dir"] == str(mnist_dir)
    assert [f["ok"] for f in report["files"]] == [True] * 4
    assert report["x_train"] == (60000, 28, 28, 1) and report["x_test"] == (10000, 28, 28, 1)
    assert sum(report["train_label_counts"]) == 60000 and sum(report["test_label_counts"]) == 10000


def test_check_reports_mismatch_on_local_file(tmp_path, mnist_dir):
    d = _fake_mirror(tmp_path / "data")
    labels = "t10k-labels-idx1-ubyte.gz"
    (d / labels).write_bytes((mnist_dir / labels).read_bytes())
    report = check("mnist", d)
    assert not report["ok"] and not report["checksums_ok"]
    assert [f["ok"] for f in report["files"]] == [False, False, False, True]
    assert "does not match the expected" in report["error"]


def test_check_digits():
    report = check("digits")
    assert report["ok"] and report["dir"] is None and report["files"] == []
    assert sum(report["train_label_counts"]) + sum(report["test_label_counts"]) == 1797


def _cifar_archive(tmp_path):
    """A tar.gz laid out like cifar-10-python.tar.gz, with 10-row batches."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    batches = {}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for spec in DATASETS["cifar10"].files:
            payload = pickle.dumps(
                {b"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, 10).tolist()}, protocol=2)
            batches[spec.name] = hashlib.md5(payload).hexdigest()
            info = tarfile.TarInfo(f"cifar-10-batches-py/{spec.name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    return mirror, hashlib.sha256(buf.getvalue()).hexdigest(), batches


def test_cifar_download_extracts_and_verifies(tmp_path, monkeypatch):
    mirror, sha, batch_md5 = _cifar_archive(tmp_path)
    official = DATASETS["cifar10"].archive.sha256
    assert official == "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
    with pytest.raises(ChecksumError, match=official):
        download("cifar10", tmp_path / "out", mirrors=[mirror.as_uri()], progress=False)
    info = DATASETS["cifar10"]
    monkeypatch.setitem(DATASETS, "cifar10", info._replace(
        archive=info.archive._replace(sha256=sha, md5=None),
        files=tuple(f._replace(md5=batch_md5[f.name]) for f in info.files)))
    out = download("cifar10", tmp_path / "out", mirrors=[mirror.as_uri()], progress=False)
    assert out == tmp_path / "out" / "cifar10" / "cifar-10-batches-py"
    assert not (tmp_path / "out" / "cifar10" / "cifar-10-python.tar.gz").exists()
    ds = load_dataset("cifar10", tmp_path / "out")
    assert ds.x_train.shape == (50, 32, 32, 3)
    report = check("cifar10", tmp_path / "out")
    assert report["checksums_ok"] and report["files"][0]["algorithm"] == "md5"
    assert not report["ok"]  # 10-row batches are not the official shapes
    assert "differ from the official" in report["error"]


def test_digits_needs_no_download(tmp_path):
    assert download("digits", tmp_path) is None
