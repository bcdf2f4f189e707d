"""Who solves what: the long-term dependency results as one markdown table per task.

    python experiments/longmem/summary.py            # prints the tables

The gradients tutorial (``docs/tutorials/gradients.md``) runs it at every docs build, so
the tables there are always the result files'; README no longer carries them.

Reads ``experiments/results/{adding,copy,smnist}_*.json`` (the records the task scripts
write) and prints, per cell and sequence length, the test metric, whether it is solved
and at which step, or the steps run without solving it. Where a cell has several runs at
one length (other learning rates, the IndRNN paper's initialisation) it shows the best.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "experiments" / "results"
CELLS = ["rnn_tanh", "irnn", "lstm", "gru", "indrnn", "mingru"]


def _cell(run: dict) -> str:
    return run["cell"]


def _entry(run: dict) -> str:
    v = run["value"]
    how = []
    if (run.get("layer_kwargs") or {}).get("paper_init"):
        how.append(f"{run['layers']} layers, paper init")
    # the IRNN's 1e-4 is its default
    if run.get("lr") not in (None, 1e-3) and run["cell"] != "irnn":
        how.append(f"lr {run['lr']:g}")
    if run.get("seed", 0) != 0:
        how.append(f"seed {run['seed']}")
    how = f" [{', '.join(how)}]" if how else ""
    if run.get("solved"):
        return f"**{v:.4f}** solved at step {run['solved_at_step']}{how}"
    if not v < 10:  # NaN or an exploding loss (relu recurrences without a saturating gate)
        return f"diverged ({v:.2g}), {run['steps_run']} steps{how}"
    return f"{v:.4f}, {run['steps_run']} steps{how}"


def _better(a: dict | None, b: dict, higher: bool = False) -> bool:
    """Is ``b`` a better run to show than ``a``: solved first, then the better metric."""
    if a is None:
        return True
    sign = 1 if higher else -1
    return (bool(b.get("solved")), sign * b["value"]) > (bool(a.get("solved")), sign * a["value"])


def _accuracy(run: dict) -> str:
    split = run["split"].split("(")[-1][:-1]
    return f"{100 * run['value']:.2f}% ({run['steps_run']} steps, {split})"


def table(prefix: str, title: str, note: str, entry=_entry, higher: bool = False,
          cells: list[str] = CELLS) -> str:
    best: dict[tuple[str, int], dict] = {}
    lengths = set()
    for path in sorted(RESULTS.glob(f"{prefix}_*.json")):
        run = json.loads(path.read_text())
        if "cell" not in run or "T" not in run:
            continue
        key = (_cell(run), int(run["T"]))
        lengths.add(key[1])
        if _better(best.get(key), run, higher):
            best[key] = {**run, "_file": path.stem}
    Ts = sorted(lengths)
    lines = [f"**{title}** ({note})", "",
             "| cell | " + " | ".join(f"T={T}" for T in Ts) + " |",
             "|---|" + "---|" * len(Ts)]
    for cell in cells:
        row = [entry(best[(cell, T)]) if (cell, T) in best else "not run" for T in Ts]
        lines.append(f"| {cell} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = [table("adding", "Adding problem", "test MSE; solved below 0.01, always answering 1 "
                 "scores 0.167"),
           table("copy", "Copy memory", "test cross-entropy per step; the memoryless baseline "
                 "is 10 log 8 / (T + 20): 0.173 at T=100, 0.040 at T=500"),
           table("smnist", "Sequential MNIST", "test accuracy; T=28 reads rows, T=784 pixels",
                 entry=_accuracy, higher=True, cells=["lstm", "indrnn"])]
    sys.stdout.write("\n\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
