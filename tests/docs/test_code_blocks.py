"""Every python block in docs/ runs, and prints what the page says it prints.

Conventions (markers, output blocks, tolerances): ``scripts/docs/docs_blocks.py``. One test per
page runs its blocks in order in one namespace; bash blocks' ``rnnkit`` commands must parse
with the real CLI parser and name recipes that exist.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "docs"))
from docs_blocks import (  # noqa: E402
    DOCS,
    ROOT,
    check_command,
    cli_commands,
    compare_output,
    doc_pages,
    parse_blocks,
    run_page,
)

PAGES = doc_pages()

# Python blocks in pages the docs helper does not edit that are fragments (not runnable):
# page -> a line the block contains. Their owners should mark them
# `<!-- docs: no-run (fragment) -->` instead; then delete the entry here.
KNOWN_FRAGMENTS = {
    "kernels.md": {"xp = fused_project(cell, x, p)"},
    "triton.md": {"xp = cell.project(x, p)"},
}


def _skip(page: str):
    lines = KNOWN_FRAGMENTS.get(page, set())
    return lambda b: any(line in b.code for line in lines)


# --------------------------------------------------------------------------- the checker itself


def test_output_comparison_text_numbers_and_ellipsis():
    assert compare_output("loss 0.1234  ok\n", "loss 0.1235 ok") is None          # last digit
    assert compare_output("loss 0.1237", "loss 0.1234") is not None              # 3 units off
    assert compare_output("(5, 3, 32)", "(5, 3, 32)") is None
    assert compare_output("(5, 3, 31)", "(5, 3, 32)") is not None                # ints exact
    assert compare_output("done in 3.2 s, ok", "done in ... ok") is None         # ellipsis
    assert compare_output("True", "False") is not None
    assert compare_output("x 1.0e-24", "x 1.3e-24") is not None                # one unit ok, 3 not
    assert compare_output("x 1.05e-24", "x 1.1e-24", rel=0.1) is None


def test_parse_blocks_attaches_outputs_and_markers():
    text = "\n".join([
        "```python", "print(1)", "```", "", '```text title="Output"', "1", "```",
        "<!-- docs: no-run (slow) -->", "```python", "train()", "```",
        "<!-- docs: tolerance 0.05 -->", "```python", "print(2.0)", "```",
        "```bash", "rnnkit demo", "```",
    ])
    b = parse_blocks(text, "p.md")
    assert [x.lang for x in b] == ["python", "python", "python", "bash"]
    assert b[0].output == "1\n" and b[0].output_line == 5
    assert b[1].no_run == "(slow)" and b[1].output is None
    assert b[2].tolerance == 0.05 and b[2].no_run is None
    with pytest.raises(ValueError, match="never closed"):
        parse_blocks("```python\nprint(1)\n", "q.md")


def test_a_wrong_output_fails_the_page(tmp_path):
    page = tmp_path / "p.md"
    page.write_text('```python\nprint(6 * 7)\n```\n\n```text title="Output"\n41\n```\n')
    (fail,) = run_page(page)
    assert "expected 41, got 42" in fail
    page.write_text("```python\nraise RuntimeError('boom')\n```\n")
    (fail,) = run_page(page)
    assert "RuntimeError: boom" in fail


# --------------------------------------------------------------------------- the pages


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_python_blocks_run_and_match_their_output(page):
    rel = str(page.relative_to(DOCS))
    failures = run_page(page, skip=_skip(rel))
    assert not failures, "\n\n".join(failures)


def test_every_python_block_is_run_or_marked_with_a_reason():
    counted = {"run": 0, "no-run": 0, "fragment": 0}
    for page in PAGES:
        rel = str(page.relative_to(DOCS))
        for b in parse_blocks(page.read_text(encoding="utf-8"), rel):
            if b.lang not in ("python", "py"):
                continue
            if b.no_run is not None:
                assert b.no_run.strip(), f"{b.where}: a no-run marker needs a reason"
                counted["no-run"] += 1
            elif _skip(rel)(b):
                counted["fragment"] += 1
            else:
                counted["run"] += 1
    assert counted["run"] >= 30, counted  # the tutorials are mostly executed code


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_cli_commands_in_bash_blocks_parse(page):
    rel = str(page.relative_to(DOCS))
    problems = []
    for b in parse_blocks(page.read_text(encoding="utf-8"), rel):
        if b.lang not in ("bash", "sh", "shell", "console"):
            continue
        for line, argv in cli_commands(b):
            why = check_command(argv, ROOT)
            if why:
                problems.append(f"{rel}:{line}: {why}")
    assert not problems, "\n".join(problems)


def test_a_renamed_flag_or_recipe_is_caught():
    assert check_command(["train", "configs/shakespeare_char.yaml", "--set", "a=1"], ROOT) is None
    assert "does not exist" in check_command(["train", "configs/no_such_recipe.yaml"], ROOT)
    assert check_command(["generate", "ckpt", "--no-such-flag"], ROOT) is not None
