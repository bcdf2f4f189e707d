"""Regenerate README's results table from ``experiments/results/*.json``.

Every pipeline records a result as one JSON file with the keys ``task, dataset, split,
metric, value, reference {value, source}, command, wall_seconds, device, date`` (extra
keys are allowed and ignored here).  This script rewrites only the text between the
README markers ``<!-- results:start -->`` and ``<!-- results:end -->``::

    python experiments/make_table.py            # rewrite README.md in place
    python experiments/make_table.py --check    # exit 1 if README is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- results:start -->", "<!-- results:end -->"
REQUIRED = ("task", "dataset", "split", "metric", "value", "reference", "command", "wall_seconds", "device", "date")


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
    return str(v)


def _duration(s) -> str:
    if not isinstance(s, (int, float)):
        return "-"
    s = float(s)
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def load_results(directory: Path) -> list[tuple[str, dict]]:
    """``(name, record)`` for every results file, sorted by task then name; bad files raise."""
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise SystemExit(f"{path}:{e.lineno}:{e.colno}: invalid JSON ({e.msg})") from None
        missing = [k for k in REQUIRED if k not in rec]
        if missing:
            raise SystemExit(f"{path}: missing keys {', '.join(missing)}")
        out.append((path.stem, rec))
    return sorted(out, key=lambda nr: (str(nr[1]["task"]), nr[0]))


def render(results: list[tuple[str, dict]]) -> str:
    """The markdown between the markers: one table row per result, then the commands and notes."""
    lines = [
        "| result | task | dataset | split | metric | rnnkit | reference | time | device |",
        "|---|---|---|---|---|---:|---|---:|---|",
    ]
    for name, r in results:
        ref = r.get("reference") or {}
        ref_text = f"{_fmt(ref.get('value'))} ({ref.get('source', '')})" if isinstance(ref, dict) else _fmt(ref)
        value = _fmt(r["value"])
        if r.get("status") and r["status"] != "complete":
            value += f" ({r['status']})"
        lines.append("| " + " | ".join(_cell(c) for c in (
            name, r["task"], r["dataset"], r["split"], r["metric"], value, ref_text,
            _duration(r["wall_seconds"]), r["device"])) + " |")
    lines += ["", "<details><summary>Commands (run from the repository root)</summary>", ""]
    for name, r in results:
        note = f" {r['notes']}" if r.get("notes") else ""
        lines.append(f"- `{name}` ({r['date']}): `{r['command']}`{note}")
    lines += ["", "</details>"]
    return "\n".join(lines)


def update_readme(readme: Path, table: str) -> str:
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text or text.index(START) > text.index(END):
        raise SystemExit(f"{readme}: expected the markers {START} and {END} (in that order)")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Regenerate README's results table from experiments/results/*.json.")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md", help="README to update (default: the repo's)")
    p.add_argument("--results", type=Path, default=ROOT / "experiments" / "results",
                   help="directory of result JSON files")
    p.add_argument("--check", action="store_true", help="do not write; exit 1 if the README is out of date")
    a = p.parse_args(argv)
    new = update_readme(a.readme, render(load_results(a.results)))
    if a.check:
        return 0 if new == a.readme.read_text(encoding="utf-8") else 1
    a.readme.write_text(new, encoding="utf-8")
    print(f"updated {a.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
