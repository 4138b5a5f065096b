"""Imports the repository's scripts (experiments/, benchmarks/) by path, as modules."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load_script(relative_path: str):
    """The module of the script at ``ROOT / relative_path``, e.g. ``"experiments/vnq_inspect.py"``."""
    path = ROOT / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
