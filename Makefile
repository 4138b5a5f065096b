# Two self-sufficient entry points: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: demo test test-slow install install-dev bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

install: $(PY)
	$(PIP) install --quiet -e .

install-dev: $(PY)
	$(PIP) install --quiet -e ".[dev,optuna,ray]"

demo: install
	$(VENV)/bin/nnopt demo

test: install-dev
	$(PY) -m pytest -n 2 --dist loadfile -m "not slow"

# Tests whose XLA compilation alone takes minutes on 2 CPU cores (DARTS search resume).
test-slow: install-dev
	$(PY) -m pytest -n 2 --dist loadfile -m slow

bench: $(PY)
	$(PIP) install --quiet -e ".[dev,bench]"

clean:
	rm -rf $(VENV) runs/demo .pytest_cache
