"""Calibrated intervals and a real backtest (issue 22, item 5), recorded as JSON.

``--intervals``: SegRNN with a quantile head and with a Gaussian head on ETTh1 univariate (OT),
horizon 96, the LTSF protocol and the chosen lookback; the empirical coverage of the 80% and
95% intervals and the CRPS (19-level pinball approximation), pooled over every test window and
step, beside the same scores of naive, seasonal naive and linear AR with residual-based
intervals; each uncalibrated (the heads), split-conformal on validation and rolling-conformal
on the windows observed before each origin (:mod:`rnnkit.tasks.forecast_intervals`).  Writes
``experiments/results/ltsf_intervals_etth1_s_h96.json``; ``--intervals --rescore`` rewrites it
from the trained checkpoints (no training).

``--backtest``: ``rnnkit forecast backtest`` (expanding window, refit per fold) on the airline
passengers and on ETTh1 (OT, a 2880-step test split per fold, folds 720 steps apart).  Writes
``experiments/results/backtest_<name>.json``.

Waits while ``/tmp/bench.lock`` exists; one thread; logs in ``experiments/logs/ltsf/``::

    nohup python experiments/forecast/ltsf_intervals.py --intervals --backtest \\
        > experiments/logs/ltsf_intervals.log 2>&1 &
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ltsf  # noqa: E402  (the table driver: paths, lock, lookback)

ROOT, RESULTS, LOGS = ltsf.ROOT, ltsf.RESULTS, ltsf.LOGS
QUANTILES = [0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7,
             0.75, 0.8, 0.85, 0.9, 0.95, 0.975]


def _run(cmd: list[str], log: Path) -> float:
    ltsf._wait_for_bench()
    print(f"  {time.strftime('%H:%M:%S')} {' '.join(shlex.quote(c) for c in cmd)}  (log {log})",
          flush=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    t0 = time.time()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc:
        raise SystemExit(f"exit status {rc}; see {log}")
    return time.time() - t0


CALIBRATION = ("Both ends of every central interval are calibrated on past windows, the "
               "same rule for every forecaster: split = conformal on all validation windows "
               "(the model's heads: CQR, score max(q_lo - y, y - q_hi); the baselines: their "
               "residuals' conformal quantiles); rolling = the same on the last K windows whose "
               "step-h target is observed at each test origin (validation then test, in time "
               "order), K chosen per forecaster on the validation split alone among "
               "168/336/720/1440 (rnnkit.tasks.forecast_intervals).")


def _train(L: int, seed: int, head: str) -> tuple[str, float]:
    """The head's run (trained unless its report exists): its command and wall seconds."""
    out = f"runs/ltsf/intervals_etth1_s_h96_l{L}_{head}"
    sets = ltsf._overrides("ETTh1", "univariate", 96, L, seed, "segrnn") + [
        f"model.head={head}", f"model.quantiles={json.dumps(QUANTILES)}"]
    cmd = ["rnnkit", "forecast", "train", "configs/ltsf_etth1_segrnn.yaml",
           *[f"--set={s}" for s in sets], "--out", out]
    wall = 0.0
    if not (ROOT / out / "report.json").is_file():
        wall = _run(cmd, LOGS / f"intervals_{head}.log")
    return " ".join(shlex.quote(c) for c in cmd), wall


def _verdict(record: dict) -> str:
    """Which calibrations meet the 75-85% target, in one sentence from the record's figures."""
    cov = {(f"{h} head", c): v["coverage_80"] for h, r in record["heads"].items()
           for c, v in r.items()}
    cov |= {(b.replace("_", " "), c): v["coverage_80"] for b, r in record["baselines"].items()
            for c, v in r.items()}
    parts = []
    for c in ("none", "split", "rolling"):
        vals = {k: v for (k, cc), v in cov.items() if cc == c}
        if not vals:
            continue
        ok = sum(0.75 <= v <= 0.85 for v in vals.values())
        parts.append(f"{c}: {ok} of {len(vals)} forecasters inside 75-85% "
                     f"({min(vals.values()):.1%} to {max(vals.values()):.1%})")
    met = {c for (_, c), v in cov.items() if 0.75 <= v <= 0.85}
    head = (f"Met only with the {' and '.join(sorted(met))} calibration" if met
            else "Missed by every forecaster and calibration")
    return f"{head}. " + "; ".join(parts) + "."


def intervals(L: int, seed: int = 1, rescore: bool = False) -> Path:
    """Train both heads (unless done) and score them, uncalibrated and under each calibration,
    beside the baselines; ``rescore``: rewrite the record from the existing checkpoints."""
    from rnnkit.tasks.forecast import ForecastData, load_forecast_checkpoint
    from rnnkit.tasks.forecast_intervals import interval_reports

    path = RESULTS / "ltsf_intervals_etth1_s_h96.json"
    if path.is_file() and not rescore:
        return path
    old = json.loads(path.read_text()) if path.is_file() else {}
    LOGS.mkdir(parents=True, exist_ok=True)
    heads, commands, wall = {}, [], old.get("wall_seconds_train", old.get("wall_seconds", 0.0))
    t0 = time.time()
    for head in ("quantile", "gaussian"):
        cmd, w = _train(L, seed, head)
        commands.append(cmd)
        wall += w
        ltsf._wait_for_bench()
        model, state, cfg = load_forecast_checkpoint(
            ROOT / f"runs/ltsf/intervals_etth1_s_h96_l{L}_{head}" / "best")
        data = ForecastData(cfg.data, state=state)
        heads[head] = interval_reports(model, data)  # none, split, rolling (K on validation)
        print(f"  {head}: " + "; ".join(f"{c} {r['model']['coverage_80']:.3f}"
                                         for c, r in heads[head].items()), flush=True)
    rescore_s = time.time() - t0
    q = heads["quantile"]
    cals = ("none", "split", "rolling")
    base = ("naive", "seasonal_naive", "linear_ar")
    inside = {f"{h} head, {c}": heads[h][c]["model"]["coverage_80"] for h in heads for c in cals}
    inside |= {f"{b}, {c}": q[c][b]["coverage_80"] for b in base for c in cals[1:]}
    met = sorted(k for k, v in inside.items() if 0.75 <= v <= 0.85)
    record = {
        "task": "time-series forecasting, prediction intervals (LTSF protocol)",
        "dataset": "ETTh1",
        "protocol": "ltsf",
        "variables": "univariate",
        "horizon": 96,
        "lookback": L,
        "split": f"test: every window ({q['rolling']['windows']}) and step, standardised OT",
        "metric": "empirical coverage of the 80% interval (SegRNN, quantile head, rolling "
                  "conformal calibration; uncalibrated head: "
                  f"{q['none']['model']['coverage_80']:.1%})",
        "value": q["rolling"]["model"]["coverage_80"],
        "reference": {"value": 0.8, "source": "target: 75-85% of test targets inside"},
        "target": "80% interval covers 75-85% of test targets, pooled over every window and step",
        "target_met_by": met,
        "target_missed_by": sorted(set(inside) - set(met)),
        "heads": {h: {c: r[c]["model"] for c in cals} for h, r in heads.items()},
        "baselines": {b: {c: q[c][b] for c in cals[1:]} for b in base},
        "rolling_window": {f"{h} head" if k == "model" else k: K
                           for h, r in heads.items() for k, K in r["rolling"]["window"].items()},
        "rolling_window_choice": {
            "rule": "the candidate K whose rolling calibration, run over the validation windows "
                    "alone and scored on those with a full set at every step, has the least "
                    "mean |coverage - level| over the 80% and 95% intervals",
            "validation_error": {f"{h} head" if k == "model" else k: e for h, r in heads.items()
                                 for k, e in r["rolling"]["window_choice"].items()}},
        "calibration": CALIBRATION,
        "crps": "2 x mean pinball loss over levels 0.05..0.95 (19 levels), every forecaster",
        "baseline_intervals": "point forecast + calibrated shifts from its residuals per step and "
                              "channel (no interval without a calibration)",
        "seeds": {"seeds": [seed], "n": 1},
        "cell": "gru",
        "command": " && ".join(commands) + " && python experiments/forecast/ltsf_intervals.py "
                   "--intervals --rescore",
        "wall_seconds": round(wall + rescore_s, 1),
        "wall_seconds_train": round(wall, 1),
        "wall_seconds_rescore": round(rescore_s, 1),
        "device": ltsf._device(),
        "device_train": old.get("device_train", old.get("device", ltsf._device())),
        "date": _dt.date.today().isoformat(),
    }
    record["verdict"] = _verdict(record)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"intervals: {json.dumps(record['heads'])}", flush=True)
    return path


BACKTESTS = {
    "airline": ("configs/forecast_airline.yaml", ["--folds", "3", "--step", "12"], []),
    "etth1_s": ("configs/forecast_etth1.yaml", ["--folds", "3", "--step", "720"],
                ["data.split_rows=null", "data.val_size=2880", "data.test_size=2880",
                 "trainer.max_time_minutes=4", "trainer.threads=1"]),
    # the recurrent model of the LTSF table (SegRNN-GRU, lookback 512, horizon 96) on OT, with
    # the same expanding folds as etth1_s
    "etth1_s_segrnn": ("configs/ltsf_etth1_segrnn.yaml", ["--folds", "3", "--step", "720"],
                       ["data.protocol=none", "data.targets=[OT]", "data.input_length=512",
                        "data.horizon=96", "data.split_rows=null", "data.val_size=2880",
                        "data.test_size=2880", "data.scaler=standard",
                        "trainer.max_time_minutes=6", "trainer.threads=1",
                        "model.extras.backend=torch"]),
}
# SegRNN-AR, the LTSF table's model: the same folds and SegRNN, each fold's checkpoint blended
# with the linear AR on that fold's validation windows (model.ar_blend: the run's finalize step)
BACKTESTS["etth1_s_segrnn_ar"] = (BACKTESTS["etth1_s_segrnn"][0], BACKTESTS["etth1_s_segrnn"][1],
                                  [*BACKTESTS["etth1_s_segrnn"][2], "model.ar_blend=true"])
MODELS = {"airline": "GRU seq2seq, hidden 32, lookback 24, horizon 24", "etth1_s": "1x64 GRU, direct, lookback 96, horizon 24",
          "etth1_s_segrnn": "SegRNN-GRU (the LTSF recipe), lookback 512, horizon 96",
          "etth1_s_segrnn_ar": "SegRNN-AR (the LTSF table's model: SegRNN-GRU blended with the "
                               "linear AR per horizon step, weights fitted on each fold's "
                               "validation windows), lookback 512, horizon 96"}


def backtest(name: str) -> Path:
    path = RESULTS / f"backtest_{name}.json"
    if path.is_file():
        return path
    LOGS.mkdir(parents=True, exist_ok=True)
    recipe, args, sets = BACKTESTS[name]
    out = f"runs/backtest_{name}"
    cmd = ["rnnkit", "forecast", "backtest", recipe, *args, *[f"--set={s}" for s in sets],
           "--out", out]
    wall = _run(cmd, LOGS / f"backtest_{name}.log")
    rep = json.loads((ROOT / out / "backtest.json").read_text())
    mean = rep["mean"]
    key = "mae" if name == "airline" else "mse"
    record = {
        "task": "time-series forecasting, backtest (expanding window, refit per fold)",
        "dataset": "Airline passengers" if name == "airline" else "ETTh1, target OT, standardised",
        "split": f"{len(rep['folds'])} folds, {rep['step']} steps apart; each tests on the end "
                 "of what is left",
        "metric": f"{key.upper()} of the RNN, mean over folds",
        "model": MODELS[name],
        "value": mean["model"][key],
        "reference": {"value": min(mean[b][key] for b in ("naive", "seasonal_naive", "linear_ar")),
                      "source": "best baseline (naive, seasonal naive, linear AR), same folds"},
        "mean": mean,
        "folds": rep["folds"],
        "command": " ".join(shlex.quote(c) for c in cmd),
        "wall_seconds": round(wall, 1),
        "device": ltsf._device(),
        "date": _dt.date.today().isoformat(),
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"backtest {name}: {key} {record['value']:.4f} vs best baseline "
          f"{record['reference']['value']:.4f}", flush=True)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--intervals", action="store_true")
    p.add_argument("--backtest", action="store_true")
    p.add_argument("--rescore", action="store_true",
                   help="with --intervals: rewrite the record from the trained checkpoints")
    a = p.parse_args(argv)
    if a.intervals:
        intervals(ltsf.chosen_lookback() or 720, rescore=a.rescore)
    if a.backtest:
        for name in BACKTESTS:
            backtest(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
