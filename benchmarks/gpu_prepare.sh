#!/usr/bin/env bash
# Builds .carry/ (ignored by git) for benchmarks/gpu_check.py on a machine that cannot install:
#   .carry/wheels/    pure-Python wheels, pinned to this checkout's .venv versions
#   .carry/site/      tinygp and its dependencies, unpacked (appended to sys.path)
#   .carry/fallback/  pytest and friends, unpacked (appended after site-packages:
#                     the device's own copies win where it has them)
#   .carry/mnist/     MNIST IDX files (from $MNIST_DIR, default ../shared/data/mnist)
# Then, on the device, from the repository root (carry: [".carry"]):
#   PYTHONPATH=. python3 benchmarks/gpu_check.py --out "$OUT"
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MNIST_DIR=${MNIST_DIR:-../shared/data/mnist}
SITE_PKGS="tinygp equinox jaxtyping wadler_lindig"
FALLBACK_PKGS="pytest pluggy iniconfig packaging pygments flatbuffers"
rm -rf .carry && mkdir -p .carry/wheels .carry/site .carry/fallback .carry/mnist
pin() { "$PY" -c "import importlib.metadata as m, sys; print(f'{sys.argv[1]}=={m.version(sys.argv[1])}')" "$1"; }
for group in site fallback; do
  pkgs=$SITE_PKGS; [ "$group" = fallback ] && pkgs=$FALLBACK_PKGS
  for p in $pkgs; do
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d ".carry/wheels/$group" "$(pin "$p")"
  done
  for w in .carry/wheels/$group/*.whl; do
    "$PY" -c "import zipfile, sys; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$w" ".carry/$group"
  done
done
cp "$MNIST_DIR"/*-ubyte.gz .carry/mnist/
du -sh .carry
