"""UD English EWT UPOS tagging: record a finished ``rnnkit train`` run as a result.

The run itself is one queued command (model selection on dev; the best checkpoint is
scored on test once, by ``run_training``)::

    rnnkit train configs/ud_ewt_upos.yaml --data-dir ../shared/datasets --out runs/ud_ewt_upos

This script re-evaluates that best checkpoint on test (per-tag report, confusion-matrix PNG
in ``experiments/nlp/figures``), checks it agrees with the run's own test number, and writes
``experiments/results/<name>.json``::

    OMP_NUM_THREADS=1 python experiments/nlp/tag_ud_ewt.py runs/ud_ewt_upos \\
        --command "rnnkit train configs/ud_ewt_upos.yaml ..."
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from rnnkit.tasks.tag import evaluate_tag_checkpoint

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results"
FIGURES = ROOT / "experiments" / "nlp" / "figures"
DATASET = ("UD English EWT v2.15 (UniversalDependencies/UD_English-EWT @ 15d613d), "
           "train 12,544 / dev 2,001 / test 2,077 sentences")
REFERENCE = {"value": 0.883, "source": "bentrevett/pytorch-pos-tagging, word-only BiLSTM on UD "
             "English EWT UPOS (88.3% test); character-aware BiLSTM taggers reach about 95% "
             "(Plank et al. 2016)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--name", default=None, help="result name (default: the run dir's name)")
    ap.add_argument("--command", required=True, help="the exact training command that was run")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--notes", default="")
    ap.add_argument("--baseline", default=None,
                    help="result name of the baseline run on the same machine (e.g. the BiLSTM "
                         "beside a block stack): its figures are copied into this record")
    ap.add_argument("--baseline-earlier", action="store_true",
                    help="the baseline ran in an earlier session, not beside this run (recorded "
                         "as baseline.same_run = false and said under the table)")
    a = ap.parse_args()
    name = a.name or a.run_dir.name
    summary = json.loads((a.run_dir / "summary.json").read_text())
    ev = evaluate_tag_checkpoint(a.run_dir / "best", split="test", data_dir=a.data_dir,
                                 report_dir=a.run_dir / "report")
    if abs(ev["acc"] - summary["test"]["test_acc"]) > 1e-9:
        raise SystemExit(f"re-evaluated test accuracy {ev['acc']} differs from the run's "
                         f"{summary['test']['test_acc']}")
    FIGURES.mkdir(parents=True, exist_ok=True)
    png = FIGURES / f"{name}_confusion_test.png"
    png.write_bytes(Path(ev["confusion_png"]).read_bytes())
    best_val = max((h["val_acc"] for h in summary.get("history", []) if "val_acc" in h),
                   default=summary.get("best"))
    record = {
        "task": "sequence tagging (universal POS tags)",
        "dataset": DATASET,
        "split": "test (model selected on dev accuracy)",
        "metric": "token accuracy",
        "value": round(ev["acc"], 4),
        "reference": REFERENCE,
        "command": a.command,
        "wall_seconds": round(summary["wall_seconds"], 1),
        "device": summary["device"],
        "torch": torch.__version__,
        "date": _dt.date.today().isoformat(),
        "dev_accuracy_best": round(best_val, 4) if best_val is not None else None,
        "test_loss": round(ev["loss"], 4),
        "epochs": summary["epoch"],
        "steps": summary["step"],
        "stopped": summary["stopped"],
        "per_tag_f1": {t: round(r["f1"], 4) for t, r in ev["per_tag"].items()},
        "figure": str(png.relative_to(ROOT)),
        "cell": json.loads((a.run_dir / "best" / "config.json").read_text())["config"]["model"]
        ["cell"],
        "parameters": sum(t.numel() for t in load_file(str(a.run_dir / "best" /
                                                           "model.safetensors")).values()),
        "notes": a.notes,
    }
    if a.baseline:
        base = json.loads((RESULTS / f"{a.baseline}.json").read_text())
        record["baseline"] = {k: base.get(k) for k in (
            "cell", "value", "dev_accuracy_best", "parameters", "epochs", "stopped",
            "wall_seconds", "device", "command")} | {"result": a.baseline,
                                                     "same_run": not a.baseline_earlier}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}: test accuracy {record['value']}")


if __name__ == "__main__":
    main()
