"""Every time figure in the docs names the machine it was measured on (issue 23).

The project rule: "Every figure names its machine, threads, torch version and command." The
mechanical part of it is checked here: a line of a docs page that states a duration or a speed
("7 minutes", "2.79 s", "4 min 10 s", "18,689 tokens/s", "4x faster", "0.81x cuDNN's time")
must have a machine word (Xeon, EPYC, H100, "2-core", "1 thread", "machine", ...) in the same
paragraph. A table or an output block counts its caption, the prose paragraph just before or
just after it, as its paragraph; a figure in a list item may lean on the sentence that
introduces the list. Python source is not scanned (its printed output is); the tables the
site generates at build time (``<!-- generated: NAME -->``) are rendered and checked the same
way.

Figures that are not measurements (a recipe's time budget, a timeout, a frame length, a
sampling interval) are listed in ``NOT_MEASUREMENTS`` with the reason: keep it short, and
name the line by a fragment unique to it.

Run ``python tests/docs/test_figures_named.py`` to list every figure with its verdict.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_NUM = r"(?<![\w.])(?:\d[\d,]*(?:\.\d+)?|\d*\.\d+)"
_RANGE = rf"{_NUM}(?:\s?[-–]\s?{_NUM})?"
_WORD_NUM = r"\b(?:a|an|one|two|three|four|five|six|ten|twenty|thirty|half an?|a few|several)"
_UNIT = (r"(?:ms|µs|us|ns|s|secs?|seconds?|min|mins|minutes?|hrs?|hours?|days?|"
         r"CPU-min|CPU-minutes?|CPU-hours?)")
TIME_FIGURE = re.compile("|".join([
    # 7 minutes, 2.79 s, 3-4 minutes, 11-19 s, 3–4 min, 25.3-31.5 s, 3-minute
    rf"{_RANGE}[\s-]?{_UNIT}(?![\w/])",
    r"\b\d+m\d+s\b",                                           # 4m10s
    # about three minutes, a minute, an hour ("a second" is usually the ordinal)
    rf"{_WORD_NUM}[\s-]+(?:minutes?|hours?|seconds)\b",
    # speeds: 18,689 tokens/s, 1.9 requests/s, 2 steps per second
    rf"{_NUM}\s?(?:[\w-]+/s|[\w-]+ per (?:second|minute|hour))\b",
    # ratios of time: 4x faster, 10-55 % slower, 0.81x cuDNN LSTM's time, 0.5 of torch.nn.GRU's time
    rf"{_RANGE}\s?(?:[x×]|%)\s+(?:faster|slower)\b",
    rf"{_RANGE}\s?[x×]\s+(?:[\w.-]+\s+){{0,3}}[\w.-]*'s\s+(?:\w+\s+)?time\b",
    rf"{_RANGE}\s+of\s+(?:[\w.-]+\s+){{0,3}}[\w.-]*'s\s+(?:\w+\s+)?time\b",
    rf"{_RANGE}\s?[x×]\s+cuDNN\b",
    rf"\b(?:faster|slower)\s+\(?{_RANGE}\s?[x×]",
]), flags=re.I)

MACHINE = re.compile(r"\b(?:Xeon|EPYC|Ryzen|Core i\d|Apple M\d|H100|H200|A100|V100|T4|L4|"
                     r"machines?|VM|cores?|\d+-core|threads?)\b", flags=re.I)

# Figures that are not measurements: (page, a fragment of the line) -> why.
NOT_MEASUREMENTS = {
    ("pipelines/spoken-digits.md", "10 ms frames"): "a feature setting (the frame hop)",
    ("pipelines/anomaly-detection.md", "sampled every 5 minutes"): "the series' sampling interval",
    ("pipelines/text-generation.md", "(55 min budget)"): "the recipe's time budget",
    ("pipelines/text-generation.md", "cosine schedule, 55-minute budget"): "the recipe's time budget",
    ("tutorials/production.md", "(41 s with the defaults)"): "a bound computed from the settings",
    ("tutorials/production.md", "heartbeat: 10   # seconds"): "a setting",
    ("tutorials/production.md", "grace: 30       # seconds"): "a setting",
    ("pipelines/text-classification.md", "Two hours I will never get back"): "a review's text",
    ("pipelines/forecasting.md", "4 months of 30 days"): "the data split",
    ("pipelines/asr.md", "silences of 0.05-0.3 s between them"): "the generator's settings",
    ("pipelines/asr.md", "(2.8 s on average)"): "the utterances' length, not a timing",
    ("pipelines/asr.md", "10 ms frames at 8 kHz"): "a feature setting (the frame hop)",
    ("pipelines/anomaly-detection.md", "the series steps 10min (median)"): "an error message",
    ("pipelines/anomaly-detection.md", "stepping 5min; ...`)"): "an error message",
    ("pipelines/anomaly-detection.md", '"step": "5min", "gaps": 1'): "a series' steps, printed",
    ("pipelines/forecasting.md", "three seconds before the first run started"):
        "the gap between two commit/log timestamps, not a timing",
}


# Pages whose owners are still naming their figures: the test is expected to fail there (and
# says which lines); delete the entry once the page passes.
PENDING: dict[str, str] = {}


@dataclass
class Figure:
    page: str
    line_no: int
    line: str
    match: str
    named: bool
    allowed: str | None = None


def _paragraphs(text: str) -> list[tuple[str, int, list[str]]]:
    """(kind, first line number, lines): kind is "prose", "table", "list", "code" (python
    source, not scanned) or "output" (any other fenced block)."""
    out: list[tuple[str, int, list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or re.match(r"\s*<!--.*-->\s*$", line):
            i += 1
            continue
        fence = re.match(r"\s*(```+|~~~+)\s*(\w*)", line)
        if fence:
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(fence.group(1)):
                j += 1
            kind = "code" if fence.group(2).lower() in ("python", "py") else "output"
            out.append((kind, i + 2, lines[i + 1:j]))
            i = j + 1
            continue
        j = i
        while j < len(lines) and lines[j].strip() and not re.match(r"\s*(```|~~~)", lines[j]):
            j += 1
        block = lines[i:j]
        item = re.compile(r"(\s*)(?:[-*+]|\d+\.)\s")
        first = item.match(block[0])
        if block[0].lstrip().startswith("|"):
            out.append(("table", i + 1, block))
        elif first:
            # a list: each item is its own paragraph (the list's intro is added as context)
            starts = [n for n, ln in enumerate(block)
                      if (m := item.match(ln)) and len(m.group(1)) == len(first.group(1))]
            for a, b in zip(starts, starts[1:] + [len(block)]):
                out.append(("list", i + 1 + a, block[a:b]))
        else:
            out.append(("prose", i + 1, block))
        i = j
    return out


def _allowed(page: str, line: str) -> str | None:
    for (p, fragment), why in NOT_MEASUREMENTS.items():
        if p == page and fragment in line:
            return why
    return None


def scan(text: str, page: str) -> list[Figure]:
    """Every time figure of a page, with whether its paragraph names a machine."""
    paras = _paragraphs(text)
    figures: list[Figure] = []
    for k, (kind, start, block) in enumerate(paras):
        if kind == "code":
            # Python source: only its comments state anything.
            lines = [(n, ln.split("#", 1)[1] if "#" in ln else "") for n, ln in enumerate(block)]
        else:
            lines = list(enumerate(block))
        context = list(block)
        if kind == "list":
            # the sentence that introduces the list
            before = k - 1
            while before >= 0 and paras[before][0] == "list":
                before -= 1
            if before >= 0 and paras[before][0] == "prose":
                context += paras[before][2]
        elif kind in ("table", "output", "code"):
            # its caption: the prose just before it (or after it, for a table or output)
            for d in (-1, 1):
                if 0 <= k + d < len(paras) and paras[k + d][0] == "prose":
                    if d == 1 and kind == "code":
                        continue
                    context += paras[k + d][2]
        named = bool(MACHINE.search("\n".join(context)))
        for n, line in lines:
            for m in TIME_FIGURE.finditer(line):
                full = block[n]
                figures.append(Figure(page, start + n, full.strip(), m.group(0), named,
                                      _allowed(page, full)))
    return figures


def _pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def _generated(text: str) -> list[tuple[str, str]]:
    """(name, table) for each ``<!-- generated: NAME -->`` of a page, as the site renders it."""
    names = re.findall(r"<!-- generated: ([\w-]+) -->", text)
    if not names:
        return []
    if str(ROOT / "scripts" / "docs") not in sys.path:
        sys.path.insert(0, str(ROOT / "scripts" / "docs"))
    from docs_tables import snippet
    return [(name, snippet(name, ROOT)) for name in names]


def scan_page(path: Path) -> list[Figure]:
    """A page's figures, then those of each table generated into it (its own paragraphs: a
    generated table must name its machine itself, in the line the generator writes)."""
    page = str(path.relative_to(DOCS))
    text = path.read_text(encoding="utf-8")
    figures = scan(text, page)
    for name, table in _generated(text):
        figures += scan(table, f"{page} <generated: {name}>")
    return figures


def unnamed(text: str, page: str) -> list[Figure]:
    return [f for f in scan(text, page) if not f.named and not f.allowed]


def _page_param(path: Path):
    page = str(path.relative_to(DOCS))
    marks = [pytest.mark.xfail(reason=PENDING[page], strict=False)] if page in PENDING else []
    return pytest.param(path, id=page, marks=marks)


@pytest.mark.parametrize("path", [_page_param(p) for p in _pages()])
def test_every_time_figure_names_its_machine(path: Path):
    page = str(path.relative_to(DOCS))
    bad = [f for f in scan_page(path) if not f.named and not f.allowed]
    assert not bad, (
        f"docs/{page}: time figures whose paragraph names no machine (add the machine, threads, "
        "torch version and command; or, for a figure that is not a measurement, an entry in "
        "NOT_MEASUREMENTS):\n" + "\n".join(f"  line {f.line_no}: {f.match!r} in {f.line[:120]!r}"
                                            for f in bad))


def test_allowlist_entries_still_match_a_line():
    stale = [(p, frag) for (p, frag) in NOT_MEASUREMENTS
             if frag not in (DOCS / p).read_text(encoding="utf-8")]
    assert not stale, f"NOT_MEASUREMENTS entries whose line is gone (delete them): {stale}"


@pytest.mark.parametrize("bad", [
    "The demo trains in about three minutes.",
    "Training took 4m10s and reached 1.57.",
    "It runs 18,689 tokens/s.",
    "The scan is 4x faster than the loop.",
    "LayerNorm-LSTM trains in 0.81x cuDNN LSTM's time.",
    "A whole run took 25.2 min.",
    "| step | time |\n|---|---|\n| 100 | 2.5 s |",
    "```text\nfwd+bwd   70.7 ms   ratio 1.00\n```",
])
def test_fails_on_a_planted_unnamed_figure(tmp_path, bad):
    page = tmp_path / "planted.md"
    page.write_text("# A page\n\nSome words.\n\n" + bad + "\n\nMore words.\n", encoding="utf-8")
    found = unnamed(page.read_text(encoding="utf-8"), "planted.md")
    assert found, f"the check missed {bad!r}"
    # ...and passes once the paragraph names where it was measured
    named = bad.replace("\n\n", "\n") + "\n(2-core Intel Xeon VM, 1 thread, torch 2.13)"
    if bad.startswith(("|", "```")):
        named = bad + "\n\nMeasured on the 2-core Intel Xeon VM, 1 thread, torch 2.13."
    page.write_text("# A page\n\n" + named + "\n", encoding="utf-8")
    assert not unnamed(page.read_text(encoding="utf-8"), "planted.md")


def test_the_page_check_fails_on_a_planted_page(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    page = docs / "index.md"
    page.write_text((DOCS / "index.md").read_text(encoding="utf-8")
                    + "\nThe demo trains in about three minutes.\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "DOCS", docs)
    with pytest.raises(AssertionError, match="three minutes"):
        test_every_time_figure_names_its_machine(page)


def test_python_source_is_not_a_figure_but_its_comments_are():
    src = "```python\nprint(f\"{'H':>4s} {t / 60:.1f} min\")\n```\n"
    assert not unnamed(src, "x.md")
    assert unnamed("```python\nrun()  # takes 3 minutes\n```\n", "x.md")


def main() -> int:
    total = 0
    for path in _pages():
        for f in scan_page(path):
            page = f.page
            verdict = "ok" if f.named else ("allowed: " + f.allowed if f.allowed else "UNNAMED")
            total += verdict == "UNNAMED"
            print(f"{page}:{f.line_no}: [{verdict}] {f.match!r}  {f.line[:110]}")
    print(f"{total} unnamed")
    return 1 if total else 0


if __name__ == "__main__":
    raise SystemExit(main())
