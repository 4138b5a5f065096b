import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from nnopt_jax import hpo


def test_sigkill_mid_study_loses_no_told_trial(tmp_path):
    journal = tmp_path / "j.jsonl"
    told = tmp_path / "told.txt"
    script = textwrap.dedent(f"""
        import os
        from nnopt_jax import hpo
        space = hpo.SearchSpace({{"x": hpo.Real(0, 1), "c": hpo.Categorical(["a", "b"])}})
        opt = hpo.RandomSearch(space, seed=0, journal={str(journal)!r})
        i = 0
        while True:
            p = opt.ask()
            opt.tell(p, p["x"])
            i += 1
            with open({str(told)!r} + ".tmp", "w") as f:  # written after tell() returned
                f.write(str(i))
            os.replace({str(told)!r} + ".tmp", {str(told)!r})  # atomic: never half-written
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 120
    while time.time() < deadline:
        if told.exists() and int(told.read_text()) >= 30:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_told = int(told.read_text())
    assert n_told >= 30
    _, trials = hpo.read_journal(journal)
    assert len(trials) >= n_told  # every trial whose tell() returned is on disk
    assert [t.number for t in trials] == list(range(len(trials)))
    opt = hpo.RandomSearch.resume(journal)  # the space comes from the header
    assert len(opt.trials) == len(trials)
    assert opt.best[1] == min(t.value for t in trials)


def test_truncated_last_line_is_ignored(tmp_path):
    journal = tmp_path / "j.jsonl"
    space = hpo.SearchSpace({"x": hpo.Real(0, 1)})
    opt = hpo.RandomSearch(space, journal=journal)
    for _ in range(3):
        opt.tell(opt.ask(), 0.5)
    with open(journal, "a") as f:
        f.write('{"type": "trial", "number": 3, "par')
    _, trials = hpo.read_journal(journal)
    assert len(trials) == 3


SPACE = hpo.SearchSpace({"x": hpo.Real(0, 1), "c": hpo.Categorical(["a", "b"])})


def _study(journal, n):
    opt = hpo.RandomSearch(SPACE, seed=0, journal=journal)
    for _ in range(n):
        p = opt.ask()
        opt.tell(p, p["x"])
    return opt


def _records(journal):
    return [json.loads(line) for line in journal.read_text().splitlines()]


def test_torn_last_line_is_set_aside_and_new_records_start_on_a_fresh_line(tmp_path):
    journal = tmp_path / "j.jsonl"
    _study(journal, 3)  # the optimiser is gone once it returns, as after a crash
    fragment = '{"type": "trial", "number": 3, "par'
    with open(journal, "a") as f:
        f.write(fragment)
    with pytest.warns(hpo.JournalWarning, match="torn last line"):
        opt = hpo.RandomSearch.resume(journal)
        assert len(opt.trials) == 3
    opt.tell(opt.ask(), 0.25)
    recs = _records(journal)  # every line parses: the fragment is gone from the journal
    assert [r["number"] for r in recs if r["type"] == "trial"] == [0, 1, 2, 3]
    corrupt = [json.loads(line) for line in (tmp_path / "j.jsonl.corrupt").read_text()
               .splitlines()]
    assert [c["line"] for c in corrupt] == [fragment]
    del opt
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing left to report
        assert len(hpo.RandomSearch.resume(journal).trials) == 4


@pytest.mark.parametrize("bad", [
    '{"type": "trial", "number": 1, "params": {"x": 0.5, "c"',  # torn, then newline
    '[1, 2, 3]',
    '{"type": "trial", "params": {"x": 0.5, "c": "a"}, "value": 0.5}',  # no number
    '{"type": "trial", "number": "7", "params": {}, "value": 0.5}',
    '{"type": "ask", "id": 3}',
    '"just a string"',
    '{"type": "mystery"}',
])
def test_malformed_middle_lines_are_reported_set_aside_once_and_numbering_stays_unique(
        tmp_path, bad):
    journal = tmp_path / "j.jsonl"
    _study(journal, 2)  # the optimiser is gone once it returns, as after a crash
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:3]) + bad + "\n" + "".join(lines[3:]))
    with pytest.warns(hpo.JournalWarning, match="set aside"):
        opt = hpo.RandomSearch.resume(journal)
    assert len(opt.trials) == 2
    opt.tell(opt.ask(), 0.1)
    assert [t.number for t in opt.trials] == [0, 1, 2]
    assert bad in (tmp_path / "j.jsonl.corrupt").read_text().replace('\\"', '"')
    del opt
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = hpo.RandomSearch.resume(journal)
    assert [t.number for t in again.trials] == [0, 1, 2]


def test_a_trial_outside_the_space_is_skipped_with_a_warning(tmp_path):
    journal = tmp_path / "j.jsonl"
    _study(journal, 2)  # the optimiser is gone once it returns, as after a crash
    with open(journal, "a") as f:
        f.write(json.dumps({"type": "trial", "number": 2, "params": {"x": 7.0, "c": "a"},
                            "value": 0.1}) + "\n")
    with pytest.warns(hpo.JournalWarning, match="does not fit the search space"):
        opt = hpo.RandomSearch.resume(journal)
    assert len(opt.trials) == 2
    assert opt.tell(opt.ask(), 0.3).number == 3  # numbers stay unique


def test_a_legacy_journal_with_repeated_numbers_is_renumbered(tmp_path):
    journal = tmp_path / "j.jsonl"
    rows = [{"type": "space", "space": SPACE.to_dict()}] + [
        {"type": "trial", "number": n, "params": {"x": 0.1 * i, "c": "a"}, "value": 0.1 * i}
        for i, n in enumerate([0, 1, 1, 2])]
    journal.write_text("".join(json.dumps(r) + "\n" for r in rows))
    opt = hpo.RandomSearch.resume(journal)
    assert sorted(t.number for t in opt.trials) == [0, 1, 2, 3]
    assert opt.tell(opt.ask(), 0.0).number == 4


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
FIELD = st.sampled_from(["type", "number", "params", "value", "status", "error", "ask",
                         "worker", "state", "space", "study", "id", "time"])
RECORD = st.dictionaries(FIELD, JSON | st.sampled_from(["trial", "ask", "study"]), max_size=6)
LINE = (st.text(max_size=40) | JSON.map(json.dumps)
        | RECORD.map(json.dumps) | RECORD.map(lambda r: json.dumps(r)[: len(json.dumps(r)) // 2]))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE, min_size=1, max_size=4), torn_tail=st.booleans())
def test_malformed_journal_lines_never_raise_a_traceback(tmp_path_factory, lines, torn_tail):
    journal = tmp_path_factory.mktemp("j") / "j.jsonl"
    _study(journal, 2)  # the optimiser is gone once it returns, as after a crash
    with open(journal, "a") as f:
        for line in lines:
            f.write(line.replace("\n", " ") + "\n")
        if torn_tail:
            f.write('{"type": "trial", "numb')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hpo.JournalWarning)
        try:
            opt = hpo.RandomSearch.resume(journal)
        except hpo.JournalError:
            return  # e.g. a second header of another study: a clean refusal
        n = len(opt.trials)
        assert n >= 2
        trial = opt.tell(opt.ask(), 0.5)
    numbers = [t.number for t in opt.trials]
    assert len(set(numbers)) == len(numbers) == n + 1 and trial.number == max(numbers)
