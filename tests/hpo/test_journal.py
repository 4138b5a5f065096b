import os
import signal
import subprocess
import sys
import textwrap
import time

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
