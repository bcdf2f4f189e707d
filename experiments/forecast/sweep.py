"""Try a few model variants on one experiment; choose by the validation loss, not the test.

Usage::

    OMP_NUM_THREADS=1 nohup python experiments/forecast/sweep.py etth1_s_h24 \
        "model.cell=gru" "model.hidden_size=128;data.input_length=336" \
        > experiments/logs/forecast_sweep_etth1_s_h24.log 2>&1 &

Each argument after the experiment name is one variant: ``;``-separated ``--set`` overrides
on top of the experiment's.  One line per variant: the best value of the recipe's monitored
validation metric, then the test metrics of the model and the baselines (printed for the
record; selection uses validation).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import EXPERIMENTS, ROOT  # noqa: E402


def main(argv: list[str]) -> int:
    from rnnkit.tasks.forecast import train_forecast

    name, variants = argv[0], argv[1:] or [""]
    exp = EXPERIMENTS[name]
    for k, v in enumerate(variants):
        sets = exp["set"] + [s for s in v.split(";") if s] + ["trainer.threads=1"]
        out = ROOT / "runs" / f"sweep_{name}_{k}_{int(time.time())}"
        t0 = time.time()
        s = train_forecast(ROOT / exp["recipe"], overrides=sets, out=out)
        m = s["report"]["metrics"]
        print(json.dumps({"variant": v, "monitor": s.get("monitor"), "val_best": s.get("best"), "epochs": s.get("epoch"),
                          "test_mse": m["model"]["mse"], "test_mae": m["model"]["mae"],
                          "test_mase": m["model"]["mase"], "snaive_mae": m["seasonal_naive"]["mae"],
                          "naive_mse": m["naive"]["mse"], "ar_mse": m["linear_ar"]["mse"],
                          "seconds": round(time.time() - t0)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
