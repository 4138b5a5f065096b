"""Isolate data tests from the user's environment: empty HOME, no NNOPT_DATA_DIR."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_search_path(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("NNOPT_DATA_DIR", raising=False)
    return home
