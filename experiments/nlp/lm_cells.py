"""Every recurrent cell on one job: char-level tinyshakespeare at equal steps, one seed.

The recipe is ``configs/shakespeare_char.yaml`` (2 layers, embedding 128, AdamW, cosine
schedule) at width 256 and ``--steps`` optimiser steps for every cell, the layer's own
defaults otherwise (sLSTM and mLSTM: 4 heads; :data:`RUNS`); "griffin" and "mamba" are
stacks of 2 of those blocks at d_model 256 in place of the layer; the metric is the validation loss (nats per character) at the last step,
on the recipe's split (the last 10% of the text). The baselines are rnnkit's LSTM and GRU,
which run torch's own kernels (torch.nn's LSTM/GRU) on the same data, steps and seed. Nothing
is selected: every cell runs once with the same settings and every result is recorded.
Equal steps is not equal time: each record has its wall time (1 thread per run, two runs
side by side on a 2-core machine) and its parameter count.

    python experiments/nlp/lm_cells.py --steps 400 --jobs 2

writes ``experiments/results/lm_cells_shakespeare_<cell>.json`` for each cell.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results"
CELLS = ("lstm", "gru", "mingru", "lru", "rglru", "s6", "slstm", "mlstm", "rglru_residual",
         "griffin", "mamba", "griffin_matched", "mamba_matched", "hawk3", "griffin3", "xlstm",
         "xlstm11", "deep_lru")
BASELINES = ("lstm", "gru")
#: run name -> (cell, layer options beyond its defaults): xLSTM's 4 heads (the paper's blocks
#: use 4); rglru_residual, added after the bare RG-LRU learned only character frequencies,
#: gives it the residual path its Griffin block has
RUNS = {"slstm": ("slstm", {"num_heads": 4}), "mlstm": ("mlstm", {"num_heads": 4}),
        "rglru_residual": ("rglru", {"residual": "true"}),
        # the stacks at the LSTM's size: the widest d_model (a multiple of 8) whose model has
        # no more parameters than the LSTM's 946,625 (chosen before the runs)
        "griffin_matched": ("griffin", {}, {"model.hidden_size": 176}),
        "mamba_matched": ("mamba", {}, {"model.hidden_size": 200}),
        # Griffin as the paper stacks it (recurrent, recurrent, local attention with its
        # default window of 1024) against the same 3 blocks all recurrent (Hawk): the pair
        # differs only in the third block (chosen before the runs)
        "hawk3": ("griffin", {}, {"model.num_layers": 3}),
        "griffin3": ("griffin", {"attention_every": 3}, {"model.num_layers": 3}),
        # xLSTM's and the deep LRU's stacks, 2 blocks at d_model 256 with the blocks' own
        # defaults, as griffin and mamba (chosen before the runs): xLSTM[1:0] (mLSTM blocks)
        # and xLSTM[1:1] (an mLSTM block, then an sLSTM block)
        "xlstm11": ("xlstm", {"slstm_every": 2})}
#: what each record's number also depends on (written into its ``notes``)
NOTES = {
    "all": ["wall_seconds: two runs at a time (1 thread each) on a 2-core machine; compare "
            "them loosely",
            "the recipe's settings (lr 2e-3, dropout 0.25, 2 layers of 256) were tuned for the "
            "LSTM, not for each cell"],
    "rglru_residual": ["added after the bare RG-LRU learned only character frequencies under "
                       "its first initialisation; the residual path is its Griffin block's"],
    "griffin": ["model.cell=griffin: a stack of 2 Griffin recurrent blocks (Hawk) at "
                "d_model 256 (RG-LRU width 256, MLP 768) and a final RMSNorm; residual dropout "
                "0.25 on each branch and dropout 0.25 on the output; about twice the LSTM's "
                "parameters"],
    "griffin_matched": ["griffin at d_model 176 (917,073 parameters): the widest multiple of 8 "
                        "with no more parameters than the LSTM's 946,625, chosen before the run"],
    "mamba_matched": ["mamba at d_model 200 (891,785 parameters): the widest multiple of 8 with "
                      "no more parameters than the LSTM's 946,625, chosen before the run"],
    "hawk3": ["model.cell=griffin, model.num_layers=3: 3 Griffin recurrent blocks (Hawk) at "
              "d_model 256; the control for griffin3"],
    "griffin3": ["model.cell=griffin, model.num_layers=3, model.extras.attention_every=3: "
                 "Griffin's pattern, 2 recurrent blocks then a local-attention block (MQA, 4 "
                 "heads of 64, window 1024 past characters carried across the truncated-BPTT "
                 "batches) at d_model 256; differs from hawk3 only in the third block"],
    "xlstm": ["model.cell=xlstm: xLSTM[1:0], a stack of 2 mLSTM blocks at d_model 256 (inner "
              "width 512, 4 heads of 128, q/k/v maps in blocks of 4) and a final LayerNorm; "
              "residual dropout 0.25 on each block's output and dropout 0.25 on the output"],
    "xlstm11": ["model.cell=xlstm, model.extras.slstm_every=2: xLSTM[1:1], an mLSTM block then "
                "an sLSTM block (4 heads of 64, gated MLP of width 384) at d_model 256; "
                "differs from xlstm only in the second block"],
    "deep_lru": ["model.cell=deep_lru: a stack of 2 deep-LRU blocks at d_model 256 (complex "
                 "state 256, ring r in [0, 1], the paper's defaults; GLU) and a final LayerNorm; "
                 "dropout 0.25 after GeLU and after the GLU, and on the output"],
    "mamba": ["model.cell=mamba: a stack of 2 Mamba blocks at d_model 256 (inner width 512, "
              "N=16) and a final RMSNorm; residual dropout 0.25 on each mixer and dropout 0.25 on "
              "the output; "
              "about 1.5 times the LSTM's parameters"],
}


def command(name: str, steps: int, out: Path) -> list[str]:
    cell, extras, *more = RUNS.get(name, (name, {}))
    sets = {"model.cell": cell, "model.hidden_size": 256, "trainer.max_steps": steps,
            "trainer.val_every_steps": steps, "trainer.checkpoint_every_steps": steps,
            "trainer.max_time_minutes": 120, "trainer.threads": 1, "schedule.warmup_steps": 50}
    sets |= {f"model.extras.{k}": v for k, v in extras.items()} | (more[0] if more else {})
    return ["rnnkit", "train", "configs/shakespeare_char.yaml",
            *[f"--set={k}={v}" for k, v in sets.items()], "--out", str(out)]


def run(cell: str, steps: int, runs: Path) -> dict:
    out = runs / f"lm_cells_{cell}"
    cmd = command(cell, steps, out)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (runs / f"lm_cells_{cell}.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode:
        raise RuntimeError(f"{cell}: exit {proc.returncode}; see {runs}/lm_cells_{cell}.log")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    from safetensors import safe_open

    with safe_open(str(out / "last" / "model.safetensors"), "pt") as f:
        params = sum(_numel(f.get_slice(k).get_shape()) for k in f.keys())
    return {"cell": cell, "val_loss": summary["val"]["val_loss"], "step": summary["step"],
            "wall_seconds": round(wall, 1), "device": summary["device"], "params": params,
            "command": shlex.join(cmd)}


def _commit() -> str:
    """HEAD, with "+changes" when tracked files differ from it."""
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True,  # noqa: E731
                                    text=True).stdout.strip()
    return git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain",
                                                                    "-uno") else "")


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--runs", default="runs/lm_cells")
    a = ap.parse_args()
    runs = ROOT / a.runs
    runs.mkdir(parents=True, exist_ok=True)
    cells = a.cells.split(",")
    commit = _commit()  # the code the runs start from
    with ThreadPoolExecutor(a.jobs) as pool:
        done = dict(zip(cells, pool.map(lambda c: run(c, a.steps, runs), cells)))
    base = {c: {"val_loss": done[c]["val_loss"], "wall_seconds": done[c]["wall_seconds"]}
            for c in BASELINES if c in done}
    for cell, r in done.items():
        doc = {
            "task": "language modeling (char-level), every cell at equal steps",
            "dataset": "tinyshakespeare", "split": "valid (last 10% of the text)",
            "metric": "val_loss (nats/char)", "value": r["val_loss"],
            "reference": {"value": base.get("lstm", {}).get("val_loss"),
                          "source": "rnnkit.LSTM (torch's kernel, as torch.nn.LSTM), same "
                                    "recipe, steps and seed, in the same run"},
            "baselines": base, "cell": cell, "steps": r["step"], "params": r["params"],
            "seeds": {"n": 1, "label": "1 seed (1234)"},
            "command": r["command"], "driver": f"python experiments/nlp/lm_cells.py "
                                               f"--steps {a.steps} --jobs {a.jobs} "
                                               f"--cells {a.cells} --runs {a.runs}",
            "wall_seconds": r["wall_seconds"], "device": r["device"],
            "notes": NOTES["all"] + NOTES.get(cell, []), "git_commit": commit,
            "torch": torch.__version__, "date": dt.date.today().isoformat(),
        }
        path = RESULTS / f"lm_cells_shakespeare_{cell}.json"
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"{cell:8s} val_loss {r['val_loss']:.4f}  {r['wall_seconds']:7.1f} s  "
              f"{r['params']:,} params  -> {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
