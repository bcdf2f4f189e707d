"""Why the tanh RNN fails on the adding problem and LSTM does not: the diagnostics behind it.

Runs ``rnnkit explain adding`` (``rnnkit.diagnostics.explain_adding``) for RNN (tanh),
LSTM and GRU at T = 100 and copies the plots to ``docs/diagnostics/`` for the docs::

    OMP_NUM_THREADS=1 python experiments/diagnostics/adding_gradient_flow.py demo
        # the runs of `rnnkit demo adding`: hidden 64, Adam lr 0.01, clip 1, 2000 steps
    OMP_NUM_THREADS=1 python experiments/diagnostics/adding_gradient_flow.py longmem
        # the runs of experiments/longmem/adding.py (issue 4): hidden 128, lr 0.001, 3000 steps

Both use seed 0, so the initialisation and the training batches are exactly those of the
command they mirror. Output: ``experiments/diagnostics/adding_T100_<name>/`` (PNGs and
``explain.json`` with every number) and ``docs/diagnostics/adding_<name>_*.png``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SETTINGS = {
    "demo": {"hidden": 64, "lr": 1e-2, "steps": 2000, "snapshots": (0, 250, 500, 1000, 2000),
             "mirrors": "rnnkit demo adding (rnnkit.demos.adding.train_adding, seed 0)"},
    "longmem": {"hidden": 128, "lr": 1e-3, "steps": 3000, "snapshots": (0, 500, 1000, 3000),
                "mirrors": "experiments/longmem/adding.py --cell C --T 100 --steps 3000 --keep-going "
                           "(issue 4; seed 0)"},
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=sorted(SETTINGS))
    ap.add_argument("--T", type=int, default=100)
    a = ap.parse_args(argv)
    import torch

    from rnnkit.diagnostics import explain_adding
    from rnnkit.train.run import device_description

    s = SETTINGS[a.name]
    os.chdir(ROOT)  # paths recorded in explain.json are relative to the repository
    out = Path("experiments") / "diagnostics" / f"adding_T{a.T}_{a.name}"
    log = open(ROOT / "experiments" / "logs" / f"diagnostics_adding_T{a.T}_{a.name}.log", "w")

    def say(line: str) -> None:
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    extra = {"mirrors": s["mirrors"], "command": " ".join(["python", *sys.argv]),
             "device": device_description(), "torch": torch.__version__,
             "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}
    explain_adding(out, cells=("rnn_tanh", "lstm", "gru"), T=a.T, steps=s["steps"],
                   snapshots=s["snapshots"], hidden=s["hidden"], lr=s["lr"], clip=1.0, batch=50,
                   seed=0, log=say, extra=extra)
    docs = ROOT / "docs" / "diagnostics"
    docs.mkdir(parents=True, exist_ok=True)
    for png in sorted(out.glob("*.png")):
        shutil.copy(png, docs / f"adding_{a.name}_{png.name}")
        say(f"copied {png.name} -> {docs / f'adding_{a.name}_{png.name}'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
