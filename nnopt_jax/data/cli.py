"""`nnopt data download NAME` and `nnopt data check NAME`: thin printers over the library.

:mod:`nnopt_jax.cli` parses the arguments and calls these; they print with rich and
return a process exit code (0 success, 1 data problem, 2 bad usage).
"""

from __future__ import annotations

import os

from rich.console import Console
from rich.table import Table

from nnopt_jax.data.catalog import DATASETS, canonical_name
from nnopt_jax.data.download import check, destination_dir, download
from nnopt_jax.data.errors import DatasetError, DatasetNotFoundError, DownloadError

__all__ = ["check_command", "download_command"]


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def download_command(
    name: str, data_dir: str | os.PathLike | None = None, *, console: Console | None = None
) -> int:
    """Downloads and verifies ``name``; prints where the files went. Returns an exit code."""
    console = console or _console()
    try:
        key = canonical_name(name)
    except ValueError as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    info = DATASETS[key]
    if not info.files:
        console.print(f"{info.title} ships with scikit-learn; nothing to download.")
        return 0
    console.print(f"Downloading {info.title} into {destination_dir(key, data_dir)}")
    try:
        where = download(key, data_dir, progress=True)
    except (DownloadError, DatasetError) as e:
        console.print(f"[red]error:[/red] {e}")
        return 1
    console.print(f"[green]ok[/green]: {info.title} verified in {where}")
    return 0


def check_command(
    name: str, data_dir: str | os.PathLike | None = None, *, console: Console | None = None
) -> int:
    """Locates, verifies and loads ``name``; prints a table. Returns an exit code."""
    console = console or _console()
    try:
        key = canonical_name(name)
    except ValueError as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    try:
        report = check(key, data_dir)
    except DatasetNotFoundError as e:
        console.print(f"[red]error:[/red] {e}")
        return 1
    console.print(f"{report['title']}: {report['dir'] or 'embedded (scikit-learn)'}")
    if report["files"]:
        table = Table("file", "checksum", "status")
        for f in report["files"]:
            status = {True: "[green]ok[/green]", False: "[red]MISMATCH[/red]",
                      None: "not published"}[f["ok"]]
            if f.get("error"):
                status = f"[red]{f['error']}[/red]"
            algo = f["algorithm"] or "sha256"
            table.add_row(os.path.basename(f["file"]), f"{algo} {str(f['actual'])[:16]}…", status)
        console.print(table)
    if "error" in report:
        console.print(f"[red]error:[/red] {report['error']}")
    if "x_train" in report:
        console.print(
            f"train {report['x_train']}  test {report['x_test']}  "
            f"classes {report['num_classes']}\n"
            f"train label counts {report['train_label_counts']}\n"
            f"test label counts  {report['test_label_counts']}"
        )
    verdict = "[green]OK[/green]" if report["ok"] else "[red]FAILED[/red]"
    console.print(f"{report['title']}: {verdict}")
    return 0 if report["ok"] else 1
