"""Run one published-number reproduction and record it in ``experiments/results/<name>.json``.

Usage::

    python experiments/run_experiment.py ptb_small [--extra "--set trainer.threads=1"]
    python experiments/run_experiment.py ptb_small --resume       # continue a killed run exactly
    python experiments/run_experiment.py ptb_small --record-only  # record a run's current state
    python experiments/make_table.py            # refresh README's results table

Each experiment is an exact ``rnnkit train`` command; its run directory's ``summary.json``
gives the metric.  The JSON record has the keys ``task, dataset, split, metric, value,
reference {value, source}, command, wall_seconds, device, date`` (plus ``notes`` and the
run directory), the format every pipeline uses.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
DATA = "../shared/datasets"

EXPERIMENTS = {
    "ptb_small": {
        "task": "language modeling (word)",
        "dataset": "Penn Treebank (Mikolov)",
        "split": "test",
        "metric": "perplexity",
        "summary_key": ("test", "test_ppl"),
        "reference": {"value": 114.5, "source": "Zaremba et al. 2014, small non-regularized LSTM (Table 1)"},
        "target": "<= 115",
        "args": ["configs/ptb_small.yaml", "--data-dir", DATA, "--out", "runs/exp_ptb_small"],
        "partial_metric": ("val_ppl", "validation perplexity (run not finished)"),
        "notes": "1 torch thread (the 2 cores were shared with other jobs; 2 threads were much slower there).",
    },
    "shakespeare_char": {
        "task": "language modeling (char)",
        "dataset": "tinyshakespeare (first 90% train / last 10% valid)",
        "split": "valid",
        "metric": "cross-entropy (nats/char), best checkpoint",
        "summary_key": ("best",),
        "reference": {"value": 1.40, "source": "char-rnn (Karpathy 2015), about 1.40; nanoGPT baby GPT 1.47"},
        "target": "<= 1.45 within 1 hour on 2 CPU cores",
        "args": ["configs/shakespeare_char.yaml", "--out", "runs/exp_shakespeare_char"],
        "partial_metric": ("val_loss", "best validation cross-entropy so far (run not finished)"),
        "milestone": ("val_loss", 1.45),
        "notes": ("time budget 55 min of process CPU time on 1 thread (--set trainer.budget_clock=process): "
                  "less compute than 1 hour on 2 cores; wall_seconds is longer because the cores were "
                  "shared with other jobs."),
    },
}


def _device() -> str:
    from rnnkit.train.run import device_description

    return device_description()


def _record(name: str, exp: dict, command: str, wall: float) -> dict:
    """The results record of ``name`` from its run directory (complete or partial)."""
    from rnnkit.train.checkpoint import read_trainer_state

    run_dir = ROOT / exp["args"][exp["args"].index("--out") + 1]
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    complete = summary.get("stopped") in ("max_epochs", "time", "early_stopping", "max_steps") and (
        exp["summary_key"][0] != "test" or "test" in summary)
    record = {"task": exp["task"], "dataset": exp["dataset"], "split": exp["split"], "metric": exp["metric"]}
    if complete:
        value = summary
        for k in exp["summary_key"]:
            value = value[k]
        status = "complete"
    else:  # still running or killed: the latest state of last/
        meta, _ = read_trainer_state(run_dir / "last")
        st = meta["state"]
        key, label = exp["partial_metric"]
        vals = [r[key] for r in st["history"] if key in r]
        if not vals:
            raise SystemExit(f"{name}: no validation yet in {run_dir / 'last'}")
        value = min(vals) if key == "val_loss" else vals[-1]
        record.update(split="valid", metric=label)
        status = f"partial: {st['epoch']} epochs + {st['batch_in_epoch']} batches, step {st['step']}"
        summary = {"device": None, "stopped": None, "epoch": st["epoch"], "step": st["step"],
                   "cpu_seconds": st.get("cpu_seconds"), "elapsed_seconds": st.get("elapsed")}
        wall = wall or st.get("elapsed", 0.0)
    record.update({
        "value": round(float(value), 4),
        "reference": exp["reference"],
        "target": exp["target"],
        "status": status,
        "command": command,
        "wall_seconds": round(wall or summary.get("elapsed_seconds", 0.0), 1),
        "cpu_seconds": round(summary.get("cpu_seconds") or 0.0, 1),
        "device": summary.get("device") or _device(),
        "date": _dt.date.today().isoformat(),
        "notes": exp.get("notes", ""),
        "run": {k: summary.get(k) for k in ("stopped", "epoch", "step", "best", "val", "test")},
    })
    return record


def _milestone(exp: dict, record: dict) -> str:
    """When the validation metric first reached the target (runs whose history has times)."""
    from rnnkit.train.checkpoint import read_trainer_state

    bound = exp.get("milestone")
    if bound is None:
        return ""
    key, limit = bound
    run_dir = ROOT / exp["args"][exp["args"].index("--out") + 1]
    meta, _ = read_trainer_state(run_dir / "last")
    for r in meta["state"]["history"]:
        if key in r and r[key] <= limit and "elapsed" in r:
            return (f"{key} first <= {limit} at step {r['step']} ({r[key]:.4f}), after "
                    f"{r['elapsed'] / 60:.0f} wall-clock / {r['cpu_seconds'] / 60:.0f} CPU minutes.")
    return ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", choices=sorted(EXPERIMENTS), help="experiment to run")
    p.add_argument("--extra", default="", help="extra arguments for rnnkit train (recorded in the command)")
    p.add_argument("--resume", action="store_true", help="continue the experiment's run from its last/ checkpoint")
    p.add_argument("--record-only", action="store_true", help="write the record from the run as it is now")
    p.add_argument("--note", default="", help="text appended to the record's notes")
    a = p.parse_args(argv)
    exp = EXPERIMENTS[a.name]
    cmd = ["rnnkit", "train", *exp["args"], *shlex.split(a.extra)]
    printable = " ".join(shlex.quote(c) for c in cmd)
    run_dir = exp["args"][exp["args"].index("--out") + 1]
    wall = 0.0
    if not a.record_only:
        run = cmd if not a.resume else ["rnnkit", "train", "--resume", run_dir, *shlex.split(a.extra)]
        print(f"running: {' '.join(shlex.quote(c) for c in run)}", flush=True)
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-m", "rnnkit", *run[1:]], cwd=ROOT)
        wall = time.time() - t0
        if proc.returncode != 0:
            print(f"{a.name}: rnnkit train failed with status {proc.returncode}", file=sys.stderr)
            return proc.returncode
    out = RESULTS / f"{a.name}.json"
    if a.resume or a.record_only:
        old = json.loads(out.read_text()) if out.is_file() else {}
        wall = float(old.get("wall_seconds", 0.0)) if a.record_only else 0.0
        if a.resume:
            printable += f"  # interrupted, then: rnnkit train --resume {run_dir}"
    record = _record(a.name, exp, printable, wall)
    record["notes"] = " ".join(x for x in (record["notes"], _milestone(exp, record), a.note) if x)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}: {record['metric']} = {record['value']} ({record['status']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
