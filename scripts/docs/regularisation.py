"""The measured runs behind tutorial 5 (docs/tutorials/05-regularisation.md).

A 1x512 char-level LSTM on a small slice of tinyshakespeare (the first 250,000 characters:
225,000 train, 25,000 validation) overfits within a few epochs; each variant adds one
regulariser and nothing else changes (same seed, data, optimiser, epochs).

Usage::

    python scripts/docs/regularisation.py run none --out runs/docs_reg_none     # one variant
    python scripts/docs/regularisation.py collect runs/docs_reg_*               # -> the JSON

``collect`` writes ``docs/tutorials/data/regularisation.json`` (per variant: best and final
validation loss, the epoch of the best, train loss in evaluation mode, wall time and the
validation curve) and ``docs/tutorials/img/regularisation_curves.png``; the tutorial's table
is generated from that JSON at build time.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA_JSON = ROOT / "docs" / "tutorials" / "data" / "regularisation.json"
PLOT = ROOT / "docs" / "tutorials" / "img" / "regularisation_curves.png"
CHARS = 250_000

# variant -> (LMConfig fields, layer extras); one regulariser each
VARIANTS: dict[str, tuple[dict, dict]] = {
    "none": ({}, {}),
    "dropout": ({"dropout": 0.3}, {}),
    "variational": ({}, {"input_dropout": 0.25, "recurrent_dropout": 0.25}),
    "zoneout": ({}, {"zoneout": [0.05, 0.5]}),
    "weight_drop": ({}, {"weight_drop": 0.3}),
}
DESCRIBE = {
    "none": "none",
    "dropout": "dropout 0.3 on the output",
    "variational": "variational 0.25 on x and h_{t-1}",
    "zoneout": "zoneout 0.05 (h), 0.5 (c)",
    "weight_drop": "DropConnect 0.3 on W_hh",
}


def corpus_file(directory: Path) -> Path:
    """The first ``CHARS`` characters of the shipped tinyshakespeare, as a text file."""
    path = directory / "shakespeare_250k.txt"
    if not path.exists():
        src = resources.files("rnnkit") / "resources" / "tinyshakespeare.txt.gz"
        text = gzip.decompress(src.read_bytes()).decode("utf-8")[:CHARS]
        path.write_text(text, encoding="utf-8")
    return path


def recipe(variant: str, corpus: Path, epochs: int) -> dict:
    model, extras = VARIANTS[variant]
    return {
        "task": "lm",
        "data": {"corpus": str(corpus), "level": "char", "valid_fraction": 0.1, "batch_size": 32,
                 "bptt": 100, "eval_batch_size": 32},
        "model": {"cell": "lstm", "embedding_size": 64, "hidden_size": 512, "num_layers": 1,
                  **model, "extras": extras},
        "optim": {"name": "adam", "lr": 2e-3},
        "schedule": {"name": "constant"},
        "trainer": {"max_epochs": epochs, "grad_clip": 5.0, "seed": 1234, "threads": 1,
                    "checkpoint_every_steps": None, "log_every_steps": 20, "progress": False,
                    "loggers": ["csv"]},
    }


def run(variant: str, out: Path, epochs: int) -> None:
    from rnnkit.tasks.lm import evaluate_checkpoint
    from rnnkit.train.config import build_run_config
    from rnnkit.train.run import run_training

    out.mkdir(parents=True, exist_ok=True)
    cfg = build_run_config(recipe(variant, corpus_file(out.parent), epochs))
    t0 = time.time()
    summary = run_training(cfg, recipe_name=f"docs_reg_{variant}", out=out, test_split=None)
    wall = time.time() - t0
    train = evaluate_checkpoint(out / "best", split="train")
    (out / "docs_reg.json").write_text(json.dumps(
        {"variant": variant, "summary": summary, "train_eval": train, "wall_seconds": wall},
        indent=2) + "\n")
    print(json.dumps({"variant": variant, "best": summary.get("best"), "train": train["loss"]}))


def collect(run_dirs: list[Path]) -> None:
    rows = []
    for d in run_dirs:
        rec = json.loads((d / "docs_reg.json").read_text())
        state = json.loads((d / "last" / "trainer_state.json").read_text())["state"]
        curve = [h["val_loss"] for h in state["history"] if "val_loss" in h]  # one per epoch
        best_epoch, best = min(enumerate(curve, 1), key=lambda c: c[1])
        v = rec["variant"]
        rows.append({"variant": v, "describe": DESCRIBE[v], "best_val_loss": best,
                     "best_epoch": best_epoch, "final_val_loss": curve[-1],
                     "epochs": len(curve), "train_loss_eval": rec["train_eval"]["loss"],
                     "wall_seconds": round(rec["wall_seconds"], 1),
                     "val_curve": curve,
                     "device": rec["summary"].get("device")})
    order = list(VARIANTS)
    rows.sort(key=lambda r: order.index(r["variant"]))
    recipe_shown = recipe("none", Path("shakespeare_250k.txt"), rows[0]["epochs"] if rows else 0)
    DATA_JSON.parent.mkdir(parents=True, exist_ok=True)
    DATA_JSON.write_text(json.dumps({
        "what": "1x512 char LSTM on the first 250k chars of tinyshakespeare (90/10 split); "
                "validation loss in nats/char",
        "command": "python scripts/docs/regularisation.py run VARIANT --out runs/docs_reg_VARIANT",
        "date": time.strftime("%Y-%m-%d"), "recipe": recipe_shown, "variants": rows}, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rows:
        ax.plot(range(1, len(r["val_curve"]) + 1), r["val_curve"], marker="o", ms=3, label=r["variant"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss (nats/char)")
    ax.set_title("One regulariser at a time, 1x512 LSTM, 225k training chars")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)
    print(f"wrote {DATA_JSON} and {PLOT}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("variant", choices=list(VARIANTS))
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--epochs", type=int, default=25)
    c = sub.add_parser("collect")
    c.add_argument("run_dirs", type=Path, nargs="+")
    a = p.parse_args(argv)
    if a.cmd == "run":
        run(a.variant, a.out, a.epochs)
    else:
        collect(a.run_dirs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
