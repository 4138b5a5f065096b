"""The README and the guides in docs/: their examples run, their links resolve.

Every fenced ```python block of README.md and docs/*.md is executed, each
file's blocks in order in one namespace (so a guide may build on its earlier
blocks), in a temporary working directory. A block preceded by the line
``<!-- skip-test -->`` is not run (for examples that need data or minutes).
"""

from __future__ import annotations

import os
import pathlib
import re
import sys
import types

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SKIP_MARKER = "<!-- skip-test -->"
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def _doc_files() -> list[pathlib.Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(line, code, skipped)`` for each fenced python block of ``text``.

    ``skipped`` is true when the last non-blank line before the fence is the
    skip marker.
    """
    blocks = []
    for m in _FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").splitlines()
        previous = next((l.strip() for l in reversed(before) if l.strip()), "")
        line = text.count("\n", 0, m.start()) + 2  # first line of code
        blocks.append((line, m.group(1), previous == SKIP_MARKER))
    return blocks


def _relative(path: pathlib.Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", _doc_files(), ids=_relative)
def test_python_examples_run(path, tmp_path, monkeypatch):
    blocks = [b for b in python_blocks(path.read_text()) if not b[2]]
    if not blocks:
        pytest.skip(f"{_relative(path)} has no python examples")
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    monkeypatch.setenv("NNOPT_DATA_DIR", os.environ.get("NNOPT_DATA_DIR", str(tmp_path)))
    # A real module, so that classes defined in an example (dataclasses, Flax
    # modules) find their module in sys.modules.
    module = types.ModuleType(f"_nnopt_docs_{path.stem}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for line, code, _ in blocks:
        try:
            exec(compile(code, f"{path}:{line}", "exec"), module.__dict__)  # noqa: S102
        except Exception as err:
            raise AssertionError(f"the python block at {_relative(path)}:{line} failed: "
                                 f"{type(err).__name__}: {err}") from err


def test_block_extraction_and_skip_marker():
    text = ("text\n```python\nx = 1\n```\n\n<!-- skip-test -->\n```python\nraise SystemExit\n"
            "```\n```bash\nls\n```\n```python\ny = x\n```\n")
    blocks = python_blocks(text)
    assert [(code, skipped) for _, code, skipped in blocks] == [
        ("x = 1\n", False), ("raise SystemExit\n", True), ("y = x\n", False)]
    assert blocks[0][0] == 3


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n < 200, f"README.md has {n} lines; move detail into docs/ (the limit is 199)"


def test_readme_keeps_the_two_commands():
    head = "\n".join(README.read_text().splitlines()[:8])
    assert "make demo" in head and "make test" in head


@pytest.mark.parametrize("path", _doc_files(), ids=_relative)
def test_no_order_of_work_wording(path):
    hits = [f"{_relative(path)}:{i}: {l.strip()}"
            for i, l in enumerate(path.read_text().splitlines(), 1)
            if re.search(r"\bsessions?[\s-]*\d+", l, re.I)]
    assert not hits, "wording about the order of work:\n" + "\n".join(hits)


def _sections(text: str) -> list[tuple[str, str]]:
    """``(heading, body)`` per Markdown section; ``#`` lines inside code fences are no headings."""
    sections, heading, body, fenced = [], "(top)", [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"#+\s+(.*)$", line)
        if match:
            sections.append((heading, "\n".join(body)))
            heading, body = match.group(1), []
        else:
            body.append(line)
    sections.append((heading, "\n".join(body)))
    return sections


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return slug.replace(" ", "-")


@pytest.mark.parametrize("path", _doc_files(), ids=_relative)
def test_relative_links_resolve(path):
    """Links to files of the repository exist; a link to an anchor of a Markdown
    file names one of its headings."""
    text = path.read_text()
    problems = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if not dest.exists():
            problems.append(f"{target}: no such file")
            continue
        if anchor and dest.suffix == ".md":
            headings = {_anchor(h) for h, _ in _sections(dest.read_text())}
            if anchor not in headings:
                problems.append(f"{target}: no heading with anchor #{anchor}")
    assert not problems, f"{_relative(path)}: " + "; ".join(problems)


_SOURCE = re.compile(r"(benchmarks|experiments)/\w+\.py|`nnopt \w+|\bnnopt \w+ --")


def test_every_results_table_names_the_script_that_produced_it():
    """Each section of docs/results.md that holds a table names the benchmark or
    experiment script, or the nnopt command, behind it; every script named exists."""
    text = (ROOT / "docs" / "results.md").read_text()
    for heading, body in _sections(text):
        if re.search(r"^\|[-| ]+\|$", body, re.M):
            assert _SOURCE.search(body), f"results.md section {heading!r}: a table with no script"
    for path in sorted(set(re.findall(r"(?:benchmarks|experiments)/\w+\.py", text))):
        assert (ROOT / path).is_file(), f"results.md names {path}, which does not exist"
