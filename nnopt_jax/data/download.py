"""Downloading and checking datasets.

``download`` fetches the official files from the catalog's mirrors with
``urllib``, writes each into a temporary file next to its destination,
verifies its checksum and only then moves it into place, so an interrupted
or corrupt download never leaves a file that looks valid. ``check`` locates a
dataset, verifies the checksums that are known and loads it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnopt_jax.data.catalog import DATASETS, DatasetInfo, FileSpec, canonical_name
from nnopt_jax.data.checksums import file_digests, verify_file
from nnopt_jax.data.cifar10 import CIFAR10_SUBDIR
from nnopt_jax.data.errors import ChecksumError, DatasetError, DownloadError
from nnopt_jax.data.registry import (
    ENV_VAR,
    default_cache_dir,
    find_dataset_dir,
    load_dataset,
)

__all__ = ["check", "destination_dir", "download"]

_CHUNK = 1 << 16


def destination_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Where ``download`` puts ``name``: ``<root>/<name>`` with root = ``data_dir``,
    else the first entry of ``NNOPT_DATA_DIR``, else ``~/.cache/nnopt``."""
    key = canonical_name(name)
    if data_dir is not None:
        root = Path(data_dir).expanduser()
    elif os.environ.get(ENV_VAR):
        root = Path(os.environ[ENV_VAR].split(os.pathsep)[0]).expanduser()
    else:
        root = default_cache_dir()
    return root / key


@contextlib.contextmanager
def _progress_bar(enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=False,
    ) as bar:
        yield bar


def _fetch(url: str, dest: Path, *, timeout: float, bar: Any) -> None:
    """Streams ``url`` into ``dest``."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
        total = response.headers.get("Content-Length")
        task = None
        if bar is not None:
            task = bar.add_task(url.rsplit("/", 1)[-1], total=int(total) if total else None)
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            if task is not None:
                bar.advance(task, len(chunk))


def _manual_instructions(info: DatasetInfo, dest: Path) -> str:
    spec_files = [info.archive] if info.archive is not None else list(info.files)
    urls = "\n".join(f"  {info.mirrors[0]}{f.name}" for f in spec_files)
    if info.archive is not None:
        put = (
            f"download {info.archive.name} and unpack it in {dest} "
            f"(`tar -xzf {info.archive.name} -C {dest}`), which creates "
            f"{dest / CIFAR10_SUBDIR} with {', '.join(info.file_names)}"
        )
    else:
        put = f"put {', '.join(info.file_names)} in {dest}"
    extra = ""
    for d in info.system_dirs:
        extra += f"\nOr install the system package that provides {d}"
        if "fashion-mnist" in d:
            extra += " (Debian/Ubuntu: apt-get install dataset-fashion-mnist)"
    return (
        f"Without network access, {put}. Official files:\n{urls}\n"
        f"Any directory works if you pass --data-dir or set {ENV_VAR}.{extra}"
    )


def _download_file(
    info: DatasetInfo,
    spec: FileSpec,
    dest_dir: Path,
    mirrors: Sequence[str],
    *,
    timeout: float,
    bar: Any,
) -> Path:
    """Downloads one file into ``dest_dir``, trying each mirror, verifying its checksum."""
    target = dest_dir / spec.name
    failures = []
    checksum_error = None
    for base in mirrors:
        url = base if base.endswith(spec.name) else base.rstrip("/") + "/" + spec.name
        fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".part", dir=dest_dir)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            _fetch(url, tmp, timeout=timeout, bar=bar)
            verify_file(tmp, spec)
            os.replace(tmp, target)
            return target
        except ChecksumError as e:
            checksum_error = ChecksumError(
                f"{url}: checksum mismatch, file discarded ({str(e).split(': ', 1)[1]})"
            )
            failures.append(f"{url}: checksum mismatch")
        except (OSError, ValueError, http.client.HTTPException) as e:  # URLError is an OSError
            reason = getattr(e, "reason", e)
            failures.append(f"{url}: {reason}")
        finally:
            tmp.unlink(missing_ok=True)
    if checksum_error is not None and len(failures) == 1:
        raise checksum_error
    tried = "\n".join(f"  {f}" for f in failures)
    message = (
        f"could not download {spec.name} for {info.title}; tried:\n{tried}\n"
        f"{_manual_instructions(info, dest_dir)}"
    )
    if checksum_error is not None:
        raise ChecksumError(message) from checksum_error
    raise DownloadError(message)


def _safe_extract(archive: Path, dest: Path, members_prefix: str) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(members_prefix)]
        if not members:
            raise DatasetError(f"{archive}: no member under {members_prefix}/")
        tar.extractall(dest, members=members, filter="data")


def download(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    progress: bool = True,
    force: bool = False,
    mirrors: Sequence[str] | None = None,
    timeout: float = 60.0,
) -> Path | None:
    """Downloads a dataset's official files and verifies their checksums.

    Files already present with the right checksum are kept (unless ``force``).

    Args:
      name: dataset name ("mnist", "fashion_mnist", "cifar10"; "digits" is
        embedded and needs nothing).
      data_dir: root to download into; files go to ``<root>/<name>/`` (see
        :func:`destination_dir`), which :func:`load_dataset` searches.
      progress: show a progress bar (rich).
      force: download again even when valid files are present.
      mirrors: base URLs to use instead of the catalog's (tests point these at
        ``file://`` directories or unreachable hosts).
      timeout: socket timeout in seconds per request.

    Returns:
      The directory holding the files (for CIFAR-10, ``.../cifar-10-batches-py``),
      or None for the embedded "digits".

    Raises:
      DownloadError: every mirror failed (e.g. no network); the message says which
        files to put where.
      ChecksumError: a downloaded file does not match the published checksum.
    """
    info = DATASETS[canonical_name(name)]
    if not info.files:
        return None
    mirrors = tuple(mirrors) if mirrors is not None else info.mirrors
    dest = destination_dir(info.name, data_dir)
    dest.mkdir(parents=True, exist_ok=True)
    with _progress_bar(progress) as bar:
        if info.archive is None:
            for spec in info.files:
                target = dest / spec.name
                if target.is_file() and not force:
                    try:
                        verify_file(target, spec)
                        continue
                    except DatasetError:
                        pass  # corrupt local copy: fetch it again
                _download_file(info, spec, dest, mirrors, timeout=timeout, bar=bar)
            return dest
        batches = dest / CIFAR10_SUBDIR
        if not force and all((batches / f.name).is_file() for f in info.files):
            try:
                for spec in info.files:
                    verify_file(batches / spec.name, spec)
                return batches
            except DatasetError:
                pass
        archive = _download_file(info, info.archive, dest, mirrors, timeout=timeout, bar=bar)
        try:
            _safe_extract(archive, dest, CIFAR10_SUBDIR)
        finally:
            archive.unlink(missing_ok=True)
        for spec in info.files:
            verify_file(batches / spec.name, spec)
        return batches


def _label_counts(y: np.ndarray, num_classes: int) -> list[int]:
    return np.bincount(y, minlength=num_classes).tolist()


def check(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Locates a dataset, verifies the checksums that are known, loads it and summarises it.

    Args:
      name: dataset name.
      data_dir: directory to search first (see :func:`load_dataset`).

    Returns:
      A dict with ``name``, ``title``, ``dir`` (None for "digits"), ``files``
      (per file: ``file``, ``algorithm``, ``expected``, ``actual``, ``ok``; ``ok`` is
      None when no checksum is published), ``checksums_ok``, and when loading
      succeeded ``x_train``/``x_test`` shapes, ``num_classes``,
      ``train_label_counts``, ``test_label_counts``; else ``error``. ``ok`` is the
      overall verdict.

    Raises:
      DatasetNotFoundError: the dataset is nowhere on the search path.
    """
    info = DATASETS[canonical_name(name)]
    report: dict[str, Any] = {"name": info.name, "title": info.title, "dir": None, "files": []}
    directory = None
    if info.files:
        directory = find_dataset_dir(info.name, data_dir)
        report["dir"] = str(directory)
        for spec in info.files:
            path = directory / spec.name
            if not path.is_file():  # IDX stored uncompressed
                path = directory / spec.name.removesuffix(".gz")
            algo = "sha256" if spec.sha256 else "md5" if spec.md5 else None
            entry: dict[str, Any] = {"file": str(path), "algorithm": algo,
                                     "expected": getattr(spec, algo) if algo else None}
            try:
                actual = file_digests(path, decompress=spec.hash_decompressed)
                entry["actual"] = actual[algo] if algo else actual["sha256"]
                entry["ok"] = entry["actual"] == entry["expected"] if algo else None
            except DatasetError as e:
                entry["actual"], entry["ok"], entry["error"] = None, False, str(e)
            report["files"].append(entry)
    report["checksums_ok"] = all(f["ok"] is not False for f in report["files"])
    try:
        ds = load_dataset(info.name, directory)
    except DatasetError as e:
        report["error"] = str(e)
        report["ok"] = False
        return report
    report.update(
        x_train=tuple(ds.x_train.shape),
        x_test=tuple(ds.x_test.shape),
        num_classes=ds.num_classes,
        train_label_counts=_label_counts(ds.y_train, ds.num_classes),
        test_label_counts=_label_counts(ds.y_test, ds.num_classes),
    )
    shapes_ok = report["x_train"] == info.train_shape and report["x_test"] == info.test_shape
    if not shapes_ok:
        report["error"] = (
            f"shapes {report['x_train']}/{report['x_test']} differ from the official "
            f"{info.train_shape}/{info.test_shape}"
        )
    report["ok"] = report["checksums_ok"] and shapes_ok
    return report
