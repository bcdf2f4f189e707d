"""README is the front door: small, its commands real, its links alive; examples it moved to the
docs stay verbatim where tests hold them.

What README leaves out lives in docs/ (issue 20): later work puts its tables there, and README
keeps the headline results table that ``experiments/make_table.py`` writes
(tests/train/test_results_table.py checks that it is current).
"""
from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAX_BYTES = 12_000   # "at most 12 KB", read strictly
TEST_COMMAND = 'python -m pip install -c constraints.txt -e ".[test]" && python -m pytest -q'
QUICK_START = (
    "python -m pip install -c constraints.txt -e . && rnnkit demo          # the main job\n"
    f"{TEST_COMMAND}   # the tests\n"
)


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text(encoding="utf-8")


def test_readme_is_at_most_12_kb():
    size = README.stat().st_size
    assert size <= MAX_BYTES, (f"README.md is {size:,} bytes, over {MAX_BYTES:,}: move the detail "
                               "into the docs page it belongs to and link it")


def test_quick_start_is_the_two_commands_and_ci_runs_the_second(readme):
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert _blocks(section, "bash")[0] == QUICK_START
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert TEST_COMMAND in ci.splitlines(), ".ci/run must run README's test command verbatim"


def test_relative_links_point_at_files(readme):
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    assert len(targets) > 20
    missing = []
    for t in targets:
        u = urlsplit(t)
        if u.scheme or u.netloc or not u.path:
            continue
        if not (ROOT / u.path).exists():
            missing.append(t)
    assert not missing, f"README links to files that do not exist: {missing}"


def test_rnnkit_commands_parse_and_name_existing_recipes(readme):
    from docs_blocks import check_command, cli_commands, parse_blocks  # scripts/docs, via conftest

    commands = [c for b in parse_blocks(readme, "README.md") if b.lang == "bash" for c in cli_commands(b)]
    assert len(commands) >= 4
    bad = [why for _, argv in commands if (why := check_command(argv, ROOT))]
    assert not bad, bad


def test_python_example_runs(readme, tmp_path):
    (code,) = _blocks(readme, "python")
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            ns: dict = {"__name__": "__readme__"}
            exec(compile(code, "README.md", "exec"), ns)
    finally:
        os.chdir(old)
    out, h = ns["out"], ns["h"]
    assert tuple(out.shape) == (4, 50, 512) and tuple(h.shape) == (4, 4, 256)   # as its comment says
    assert bool((out[2, 7:] == 0).all())


def test_custom_cell_example_is_the_tested_one():
    """tests/layers/test_custom_cell.py runs the tutorial's MGU example between its markers."""
    test = (ROOT / "tests" / "layers" / "test_custom_cell.py").read_text(encoding="utf-8")
    m = re.search(r"^# --- docs/tutorials/custom-cell\.md example: begin -+\n(.*?)"
                  r"^# --- docs/tutorials/custom-cell\.md example: end -+$", test, flags=re.S | re.M)
    assert m, "tests/layers/test_custom_cell.py: the example markers are gone"
    page = (ROOT / "docs" / "tutorials" / "custom-cell.md").read_text(encoding="utf-8")
    assert any(m.group(1) in block for block in _blocks(page, "python")), (
        "docs/tutorials/custom-cell.md no longer shows tests/layers/test_custom_cell.py's example "
        "verbatim: change both together")
