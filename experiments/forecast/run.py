"""Run one forecasting experiment and record it in ``experiments/results/forecast_<name>.json``.

Usage (from the repository root; one run at a time on a shared CPU)::

    OMP_NUM_THREADS=1 nohup python experiments/forecast/run.py etth1_s_h24 \
        > experiments/logs/forecast_etth1_s_h24.log 2>&1 &
    python experiments/forecast/run.py --list

Each experiment is ``rnnkit forecast train <recipe> --set ...``; the record holds the model's
metric, the published reference, and the baselines (naive, seasonal naive, linear AR) scored
by the same code on the same windows, so the comparison with the paper is set beside the
comparison with simple methods.  Extra ``--set`` arguments are recorded in the command.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results"

_INFORMER = "Zhou et al. 2021 (Informer, AAAI), Table 1 (univariate ETTh1), LSTMa row"
_INFORMER_M = "Zhou et al. 2021 (Informer, AAAI), Table 2 (multivariate ETTh1), LSTMa row"
_LSTMA_S = {24: 0.114, 48: 0.193, 168: 0.236, 336: 0.590, 720: 0.683}
_LSTMA_M = {24: 0.650, 168: 1.212}
# input length per horizon (longer horizons see a longer history)
_L_S = {24: 96, 48: 96, 168: 168, 336: 336, 720: 336}
_L_M = {24: 96, 168: 168}

EXPERIMENTS: dict[str, dict] = {}
for _h, _ref in _LSTMA_S.items():
    EXPERIMENTS[f"etth1_s_h{_h}"] = {
        "recipe": "configs/forecast_etth1.yaml",
        "set": [f"data.horizon={_h}", f"data.input_length={_L_S[_h]}", f"data.ar_order={_L_S[_h]}",
                "trainer.max_time_minutes=8"],
        "task": "time-series forecasting (univariate)",
        "dataset": "ETTh1, target OT, Informer 12/4/4-month split, standardised",
        "split": "test: targets in data rows [11520, 14400) (0-based), every window",
        "metric": f"MSE (standardised) at horizon {_h}",
        "key": "mse",
        "reference": {"value": _ref, "source": _INFORMER + (" (DeepAR 0.107)" if _h == 24 else "")},
    }
for _h, _ref in _LSTMA_M.items():
    EXPERIMENTS[f"etth1_m_h{_h}"] = {
        "recipe": "configs/forecast_etth1_multi.yaml",
        "set": [f"data.horizon={_h}", f"data.input_length={_L_M[_h]}", f"data.ar_order={_L_M[_h]}",
                "trainer.max_time_minutes=8"],
        "task": "time-series forecasting (multivariate, 7 -> 7)",
        "dataset": "ETTh1, all 7 columns, Informer 12/4/4-month split, standardised",
        "split": "test: targets in data rows [11520, 14400) (0-based), every window",
        "metric": f"MSE (standardised, mean over 7 columns) at horizon {_h}",
        "key": "mse",
        "reference": {"value": _ref, "source": _INFORMER_M},
    }
EXPERIMENTS["airline"] = {
    "recipe": "configs/forecast_airline.yaml",
    "set": [],
    "task": "time-series forecasting (univariate, monthly)",
    "dataset": "Airline passengers 1949-1960 (Box & Jenkins series G)",
    "split": "test: last 24 months (1959-01..1960-12), one 24-step forecast",
    "metric": "MAE (thousands of passengers)",
    "key": "mae",
    "reference": {"value": None, "source": "seasonal naive (m=12) on the same 24 months, computed in this run"},
}


def _device() -> str:
    from rnnkit.train.run import device_description

    return device_description()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", nargs="?", choices=sorted(EXPERIMENTS))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra recipe overrides")
    p.add_argument("--list", action="store_true", help="list the experiments")
    a = p.parse_args(argv)
    if a.list or a.name is None:
        for k, v in EXPERIMENTS.items():
            print(f"{k:16s} {v['recipe']} {' '.join(v['set'])}")
        return 0
    from rnnkit.tasks.forecast import format_report, train_forecast

    exp = EXPERIMENTS[a.name]
    sets = exp["set"] + a.set
    out = f"runs/forecast_{a.name}"
    cmd = ["rnnkit", "forecast", "train", exp["recipe"], *[f"--set={s}" for s in sets], "--out", out]
    printable = " ".join(shlex.quote(c) for c in cmd)
    print(f"running: {printable}", flush=True)
    run_dir = ROOT / out
    if (run_dir / "last").exists():
        import shutil

        shutil.rmtree(run_dir)
    t0 = time.time()
    summary = train_forecast(ROOT / exp["recipe"], overrides=sets, out=run_dir)
    wall = time.time() - t0
    rep = summary["report"]
    m = rep["metrics"]
    print(format_report(m), flush=True)
    value = m["model"][exp["key"]]
    ref = dict(exp["reference"])
    if ref["value"] is None:  # airline: the reference is seasonal naive, computed here
        ref["value"] = m["seasonal_naive"][exp["key"]]
    record = {
        "task": exp["task"],
        "dataset": exp["dataset"],
        "split": exp["split"],
        "metric": exp["metric"],
        "value": value,
        "reference": ref,
        "command": printable,
        "wall_seconds": round(wall, 1),
        "device": _device(),
        "date": _dt.date.today().isoformat(),
        "beats_reference": bool(value < ref["value"]),
        "metrics": m,
        "windows": rep["windows"],
        "metric_space": rep["metric_space"],
        "best_epoch_val_loss": summary.get("best"),
        "stopped": summary.get("stopped"),
        "run_dir": out,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"forecast_{a.name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{a.name}: {exp['metric']} = {value:.4f} (reference {ref['value']:.4f}); naive "
          f"{m['naive'][exp['key']]:.4f}, seasonal naive {m['seasonal_naive'][exp['key']]:.4f}, "
          f"linear AR {m['linear_ar'][exp['key']]:.4f} -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
