"""Run the documentation's code blocks and check their printed output.

Conventions in ``docs/**/*.md`` (checked by ``tests/docs/test_code_blocks.py``):

- Every fenced ``python`` block runs, in page order, in one namespace per page, in a
  temporary directory (holding links to the repository's ``configs``, ``experiments``,
  ``benchmarks`` and ``docs``, so paths read as from the repository root), with torch/NumPy/``random`` seeded to 0 and one torch thread.
- A fenced ``text`` block titled Output (``` ```text title="Output" ```) right after a
  python block is that block's expected stdout. Text must match exactly up to runs of
  whitespace; numbers must match within ``max(10**-d, rel * |expected|)`` (``d`` = the
  decimals shown, ``rel`` = 1e-3, or the value of a ``<!-- docs: tolerance REL -->`` marker);
  integers must match exactly; ``...`` matches anything (as doctest's ELLIPSIS).
- ``<!-- docs: no-run REASON -->`` on the line(s) just before a block skips it: for blocks that
  take minutes (their recorded output goes beside them) or that are fragments.
- In ``bash`` blocks, each ``rnnkit ...`` command must parse with rnnkit's own argument parser
  and each ``configs/*.yaml`` it names must exist, so a renamed flag or recipe breaks the
  docs test instead of the reader.

Command line (prints each block's output and any mismatch)::

    python scripts/docs/docs_blocks.py docs/tutorials/rnn-from-scratch.md [...]
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ROOT", "DOCS", "doc_pages", "Block", "parse_blocks", "compare_output", "run_page", "cli_commands", "check_command"]

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def doc_pages() -> list[Path]:
    """Every Markdown page under docs/ (generated pages are not files, so not here)."""
    return sorted(p for p in DOCS.rglob("*.md")
                  if not any(part.startswith("_") for part in p.relative_to(DOCS).parts))


#: repository folders linked into each page's temporary working directory
LINKED = ("configs", "experiments", "benchmarks", "docs")
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)(?P<attrs>.*)$")
_MARKER = re.compile(r"<!--\s*docs:\s*(?P<kind>no-run|tolerance)\b\s*(?P<arg>.*?)\s*-->")
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


@dataclass
class Block:
    page: str
    line: int                      # 1-based line of the opening fence
    lang: str
    attrs: str
    code: str
    no_run: str | None = None      # reason, if marked no-run
    tolerance: float | None = None
    output: str | None = None      # the expected-output block that follows, if any
    output_line: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def parse_blocks(text: str, page: str = "<page>") -> list[Block]:
    """Every fenced block of ``text``, with markers and output blocks attached."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    pending: list[tuple[str, str]] = []  # markers seen since the last non-blank line
    while i < len(lines):
        line = lines[i]
        m = _FENCE.match(line)
        if not m:
            mk = list(_MARKER.finditer(line))
            if mk:
                pending += [(x.group("kind"), x.group("arg")) for x in mk]
            elif line.strip():
                pending = []
            i += 1
            continue
        indent, fence = m.group("indent"), m.group("fence")
        start = i
        body = []
        i += 1
        while i < len(lines) and not (lines[i].startswith(indent + fence[0] * len(fence))
                                      and lines[i].strip() == fence[0] * len(lines[i].strip())
                                      and len(lines[i].strip()) >= len(fence)):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        if i >= len(lines):
            raise ValueError(f"{page}:{start + 1}: code fence {fence} is never closed")
        i += 1
        b = Block(page, start + 1, m.group("lang").lower(), m.group("attrs").strip(), "\n".join(body) + "\n")
        for kind, arg in pending:
            if kind == "no-run":
                b.no_run = arg or "marked no-run"
            elif kind == "tolerance":
                b.tolerance = float(arg)
        pending = []
        prev = blocks[-1] if blocks else None
        if (b.lang == "text" and re.search(r'title="Output', b.attrs) and prev is not None
                and prev.lang in ("python", "py") and prev.output is None
                and all(not s.strip() for s in lines[prev.extra["end"]:start])):
            prev.output, prev.output_line = b.code, b.line
            prev.extra["end"] = i
            continue
        b.extra["end"] = i
        blocks.append(b)
    return blocks


def _expected_regex(expected: str) -> tuple[re.Pattern, list[str]]:
    parts, numbers, pos = [], [], 0
    text = expected.strip()
    for m in re.finditer(r"\.\.\.|" + _NUMBER.pattern, text):
        parts.append(_literal(text[pos:m.start()]))
        if m.group(0) == "...":
            parts.append(r"(?:.*?)")
        else:
            parts.append(f"({_NUMBER.pattern})")
            numbers.append(m.group(0))
        pos = m.end()
    parts.append(_literal(text[pos:]))
    return re.compile("".join(parts), re.S), numbers


def _literal(s: str) -> str:
    return r"\s+".join(re.escape(w) for w in re.split(r"\s+", s)) if s.strip() else (r"\s*" if s else "")


def _decimals(num: str) -> int:
    mant, _, exp = num.lower().partition("e")
    d = len(mant.split(".")[1]) if "." in mant else 0
    return d - (int(exp) if exp else 0)


def compare_output(actual: str, expected: str, rel: float | None = None) -> str | None:
    """None if ``actual`` matches ``expected`` (see the module docstring), else why not."""
    pattern, numbers = _expected_regex(expected)
    m = pattern.fullmatch(actual.strip())
    if m is None:
        return "the printed text differs:\n--- expected\n" + expected.strip() + "\n--- got\n" + actual.strip()
    rel = 1e-3 if rel is None else rel
    for k, (exp, got) in enumerate(zip(numbers, m.groups()), 1):
        is_int = not re.search(r"[.eE]", exp)
        e, g = float(exp), float(got)
        if is_int and re.search(r"[.eE]", got) is None:
            ok = e == g
        else:
            ok = abs(g - e) <= max(1.01 * 10.0 ** -_decimals(exp), rel * abs(e))
        if not ok:
            return (f"number {k}: expected {exp}, got {got} (tolerance: rel {rel:g} or the shown "
                    f"precision)\n--- expected\n{expected.strip()}\n--- got\n{actual.strip()}")
    return None


def _seed() -> None:
    import random

    random.seed(0)
    try:
        import numpy as np

        np.random.seed(0)
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch

        torch.manual_seed(0)
        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def run_page(path: Path, workdir: Path | None = None, verbose: bool = False,
             skip=None) -> list[str]:
    """Run the python blocks of ``path``; return a list of failures (empty = all good).

    ``skip(block) -> reason or None`` skips further blocks (e.g. fragments in pages whose
    owners have not marked them yet); skipped and no-run blocks are not executed.
    """
    page = str(path)
    blocks = [b for b in parse_blocks(Path(path).read_text(encoding="utf-8"), page)
              if b.lang in ("python", "py")]
    failures: list[str] = []
    os.environ.setdefault("MPLBACKEND", "Agg")
    ns: dict = {"__name__": "__docs__"}
    old = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        for name in LINKED:  # read-only views of the repository, as from its root
            if (ROOT / name).exists():
                os.symlink(ROOT / name, Path(tmp) / name)
        os.chdir(workdir or tmp)
        try:
            _seed()
            for b in blocks:
                if b.no_run or (skip is not None and skip(b)):
                    continue
                buf = io.StringIO()
                t0 = time.perf_counter()
                try:
                    with contextlib.redirect_stdout(buf):
                        exec(compile(b.code, f"{b.where}", "exec"), ns)
                except Exception as e:  # noqa: BLE001 - reported with the block's location
                    import traceback

                    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-6:])
                    failures.append(f"{b.where}: raised {type(e).__name__}: {e}\n{tb}")
                    break  # later blocks depend on this one
                if verbose:
                    print(f"--- {b.where} ({time.perf_counter() - t0:.2f} s)\n{buf.getvalue()}", end="")
                if b.output is not None:
                    why = compare_output(buf.getvalue(), b.output, b.tolerance)
                    if why:
                        failures.append(f"{b.where} (output block at line {b.output_line}): {why}")
        finally:
            os.chdir(old)
            import matplotlib.pyplot as plt

            plt.close("all")
    return failures


# --------------------------------------------------------------------------- bash blocks


def cli_commands(block: Block) -> list[tuple[int, list[str]]]:
    """``(line, argv)`` of each ``rnnkit``/``python -m rnnkit`` command in a bash block."""
    out = []
    text = block.code.replace("\\\n", " ")
    for k, raw in enumerate(text.splitlines()):
        for piece in re.split(r"&&|\|\||;|\|", raw):
            try:
                words = shlex.split(piece, comments=True)
            except ValueError:
                continue
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
                words = words[1:]  # VAR=value prefixes
            if words[:3] == ["python", "-m", "rnnkit"]:
                words = ["rnnkit", *words[3:]]
            for j, w in enumerate(words):  # stop at redirections
                if w.startswith(("<", ">")) or w in ("2>&1",):
                    words = words[:j]
                    break
            if words and words[0] == "rnnkit":
                out.append((block.line + 1 + k, words[1:]))
    return out


def check_command(argv: list[str], root: Path) -> str | None:
    """None if ``rnnkit argv`` parses and the recipes it names exist, else the reason."""
    from rnnkit.commands import build_parser

    for w in argv:
        for m in re.finditer(r"(?<![\w/.])configs/[\w./-]+\.ya?ml", w):
            if not (root / m.group(0)).exists():
                return f"{m.group(0)} does not exist"
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as e:
        if e.code not in (0, None):
            return f"rnnkit {' '.join(argv)}: {err.getvalue().strip().splitlines()[-1:]}"
    return None


def main(argv: list[str]) -> int:
    bad = 0
    for p in argv:
        fails = run_page(Path(p), verbose=True)
        for f in fails:
            print("FAIL", f)
        bad += len(fails)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
