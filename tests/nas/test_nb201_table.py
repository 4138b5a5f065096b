"""NAS-Bench-201 table reader: the real file and malformed files written here."""

import csv

import numpy as np
import pytest

from nnopt_jax.nas.nb201 import space
from nnopt_jax.nas.nb201.table import COLUMNS, NB201Table


@pytest.fixture(scope="module")
def table(nasbench201_csv):
    return NB201Table.load(nasbench201_csv)


def test_real_table_matches_readme_and_prints_every_string_exactly(table, nasbench201_csv):
    with open(nasbench201_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(table) == 15_625
    for row in rows:
        idx = NB201Table.space_index(row["arch_str"])
        assert table.arch_strs[idx] == row["arch_str"]  # printing reproduces the table
        assert table.bench_index[idx] == int(row["index"])
    for row in rows[:50]:
        for m in COLUMNS[2:]:
            assert table.query(row["arch_str"], m) == float(row[m])
    # README: best cifar10-test is 89.16, at index 5374
    test = table.column("cifar10-test")
    assert test.max() == 89.16
    assert table.bench_index[int(np.argmax(test))] == 5374
    assert table.query(table.index_of_bench(5374), "cifar10-test") == 89.16


def test_query_forms_agree(table):
    s = table.arch_strs[123]
    assert table.query(s) == table.query(123) == table.query(space.index_to_arch(123))
    with pytest.raises(ValueError, match="unknown metric"):
        table.query(0, "cifar10-train")
    with pytest.raises(ValueError, match="space index"):
        table.query(15_625)


def _write(path, rows, header=COLUMNS):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def synthetic_rows():
    rng = np.random.default_rng(0)
    rows = []
    for i, a in enumerate(rng.permutation(space.all_archs())):
        acc = np.round(rng.uniform(10, 90, size=6), 3)
        rows.append([str(i), space.arch_to_str(a), *map(str, acc)])
    return rows


def test_synthetic_table_loads(tmp_path, synthetic_rows):
    t = NB201Table.load(_write(tmp_path / "ok.csv", synthetic_rows))
    row = synthetic_rows[7]
    assert t.query(row[1], "cifar10-val") == float(row[3])
    assert t.bench_index[NB201Table.space_index(row[1])] == 7


def _mutated(rows, line, col, value):
    rows = [list(r) for r in rows]
    rows[line][col] = value
    return rows


@pytest.mark.parametrize("case, match", [
    ("header", "header must be"),
    ("rows", "expected 15625 data rows"),
    ("dup_arch", "appears twice"),
    ("dup_index", "duplicates line"),
    ("range", r"not an accuracy in \[0, 100\]"),
    ("nan", "not an accuracy"),
    ("arch", "bad arch_str"),
    ("fields", "expected 8 fields"),
])
def test_malformed_files_are_rejected_with_file_and_fix(tmp_path, synthetic_rows, case, match):
    rows, header = synthetic_rows, COLUMNS
    if case == "header":
        header = COLUMNS[:-1] + ("imagenet_val",)
    elif case == "rows":
        rows = rows[:-1]
    elif case == "dup_arch":
        rows = _mutated(rows, 5, 1, rows[6][1])
    elif case == "dup_index":
        rows = _mutated(rows, 5, 0, rows[6][0])
    elif case == "range":
        rows = _mutated(rows, 9, 3, "101.5")
    elif case == "nan":
        rows = _mutated(rows, 9, 2, "nan")
    elif case == "arch":
        rows = _mutated(rows, 9, 1, rows[9][1].replace("~0|", "~1|", 1))
    elif case == "fields":
        rows = [list(r) for r in rows]
        rows[3] = rows[3][:-1]
    path = _write(tmp_path / f"{case}.csv", rows, header)
    with pytest.raises(ValueError, match=match) as err:
        NB201Table.load(path)
    assert str(path) in str(err.value) and "nb201_hp12_accuracy.csv" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        NB201Table.load(tmp_path / "absent.csv")
