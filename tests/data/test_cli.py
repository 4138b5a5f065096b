"""The data CLI helpers print a result and return an exit code (never touching the network)."""

import io

from rich.console import Console

from nnopt_jax.data.cli import check_command, download_command


def _console():
    buf = io.StringIO()
    return Console(file=buf, width=200, highlight=False, color_system=None), buf


def test_check_command_ok_and_missing(tmp_path):
    console, buf = _console()
    assert check_command("digits", None, console=console) == 0
    assert "OK" in buf.getvalue() and "(1438, 8, 8, 1)" in buf.getvalue()
    console, buf = _console()
    assert check_command("cifar10", tmp_path / "none", console=console) == 1
    out = buf.getvalue()
    assert "CIFAR-10 not found" in out and str(tmp_path / "none") in out and "data_batch_1" in out


def test_check_command_reports_mismatch(mnist_dir, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    for p in mnist_dir.glob("*labels*"):
        (d / p.name).write_bytes(p.read_bytes())
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        (d / name).write_bytes(b"\0\0\x08\x01\0\0\0\x01\x05")  # a valid 1-element IDX
    console, buf = _console()
    assert check_command("mnist", d, console=console) == 1
    out = buf.getvalue()
    assert "MISMATCH" in out and "FAILED" in out and "does not match the expected" in out


def test_bad_name_and_embedded_download():
    console, buf = _console()
    assert download_command("imagenet", None, console=console) == 2
    assert "unknown dataset 'imagenet'" in buf.getvalue()
    console, buf = _console()
    assert download_command("digits", None, console=console) == 0
    assert "nothing to download" in buf.getvalue()
    console, _ = _console()
    assert check_command("nope", None, console=console) == 2
