"""Print the forecasting results table from ``experiments/results/forecast_*.json``.

Usage::

    python experiments/forecast/table.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "experiments" / "results"
_ORDER = ["etth1_s_h24", "etth1_s_h48", "etth1_s_h168", "etth1_s_h336", "etth1_s_h720", "etth1_m_h24",
          "etth1_m_h168"]


def main() -> int:
    recs = {p.stem.removeprefix("forecast_"): json.loads(p.read_text()) for p in sorted(RESULTS.glob("forecast_*.json"))}
    print("| ETTh1 (Informer protocol) | H | RNN MSE | RNN MAE | LSTMa MSE (paper) | naive MSE | seasonal naive MSE "
          "| linear AR MSE | beats LSTMa | best of ours |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|:-:|---|")
    for name in _ORDER:
        r = recs.get(name)
        if r is None:
            continue
        m = r["metrics"]
        best = min(m, key=lambda k: m[k]["mse"])
        setting = "univariate OT" if "_s_" in name else "multivariate 7->7"
        print(f"| {setting} | {name.rsplit('h', 1)[1]} | {m['model']['mse']:.4f} | {m['model']['mae']:.4f} | "
              f"{r['reference']['value']:.3f} | {m['naive']['mse']:.4f} | {m['seasonal_naive']['mse']:.4f} | "
              f"{m['linear_ar']['mse']:.4f} | {'yes' if r['beats_reference'] else 'no'} | "
              f"{best.replace('model', 'RNN')} |")
    r = recs.get("airline")
    if r is not None:
        m = r["metrics"]
        print()
        print("| Airline, last 24 months | MAE | RMSE | MASE (m=12) | sMAPE % |")
        print("|---|---:|---:|---:|---:|")
        for k, label in (("model", "RNN (" + r["command"].split("--set")[0].split()[-1] + ")"),
                         ("seasonal_naive", "seasonal naive"), ("naive", "naive"), ("linear_ar", "linear AR")):
            print(f"| {label} | {m[k]['mae']:.2f} | {m[k]['rmse']:.2f} | {m[k]['mase']:.3f} | {m[k]['smape']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
