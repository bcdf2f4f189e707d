"""``rnnkit forecast train|evaluate|predict|backtest|blend|compare``: parse, call
:mod:`rnnkit.tasks.forecast`, print.

::

    rnnkit forecast train RECIPE.yaml [--set key=value ...] [--out DIR] [--data-dir DIR]
    rnnkit forecast train [RECIPE.yaml] --resume RUN_DIR
    rnnkit forecast evaluate CKPT [--data FILE] [--split test] [--plot PNG] [--csv CSV]
    rnnkit forecast predict CKPT --data FILE --output CSV [--plot PNG]
    rnnkit forecast backtest RECIPE.yaml --folds 3 [--step H] [--out DIR]
    rnnkit forecast blend CKPT --out DIR [--partner linear_ar|nlinear]
        [--weights per_step|shared|equal] [--data-dir DIR]
    rnnkit forecast compare CKPT [CKPT ...] --against CKPT [CKPT ...] [--split test]
        [--null-reps 1000]
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

__all__ = ["add_parser", "add_arguments", "run"]


# --------------------------------------------------------------------------- command line


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``train|evaluate|predict|backtest|blend|compare`` sub-commands to the ``forecast``
    parser."""
    sub = p.add_subparsers(dest="forecast_command", metavar="ACTION", required=True)
    t = sub.add_parser("train", help="train from a recipe; report vs baselines, plot, CSV")
    t.add_argument(
        "recipe", nargs="?", help="YAML recipe with task: forecast (e.g. "
        "configs/forecast_airline.yaml); optional with --resume, which then reuses the run's "
        "saved config"
    )
    t.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe value"
    )
    t.add_argument("--out", metavar="DIR", help="run directory")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the killed run in RUN_DIR "
                   "exactly from its last/ checkpoint, then score it as a finished one")
    t.add_argument(
        "--data-dir", metavar="DIR", help="directory a relative data.path is looked up in"
    )
    e = sub.add_parser("evaluate", help="metrics of a checkpoint and the baselines on a split")
    e.add_argument("checkpoint", help="checkpoint directory (a run's best/ or last/)")
    e.add_argument(
        "--data", metavar="FILE", help="another file with the same columns (default: the recipe's)"
    )
    e.add_argument("--split", default="test", choices=["train", "valid", "test"])
    e.add_argument("--data-dir", metavar="DIR")
    e.add_argument("--plot", metavar="PNG", help="write a plot of the last window of each series")
    e.add_argument("--csv", metavar="CSV", help="write every window's forecasts")
    e.add_argument("--calibration", choices=["none", "split", "rolling"],
                   help="calibrate the interval on past windows (default: the recipe's "
                        "data.interval_calibration)")
    f = sub.add_parser("predict", help="forecast the steps after the end of each series, to CSV")
    f.add_argument("checkpoint")
    f.add_argument(
        "--data", required=True, metavar="FILE", help="history (plus future-covariate rows)"
    )
    f.add_argument("--output", required=True, metavar="CSV", help="where to write the forecasts")
    f.add_argument("--plot", metavar="PNG", help="also plot history, forecast and interval")
    f.add_argument("--calibration", choices=["none", "split", "rolling"],
                   help="calibrate the interval: on the history's own last windows (rolling) or "
                        "the recipe's validation windows (split); default: the recipe's "
                        "data.interval_calibration")
    f.add_argument("--data-dir", metavar="DIR",
                   help="where the recipe's data file is looked up (split calibration)")
    b = sub.add_parser("backtest", help="rolling-origin backtest, retraining for each fold")
    b.add_argument("recipe")
    b.add_argument("--folds", type=int, default=3)
    b.add_argument("--step", type=int, help="steps between fold origins (default: the horizon)")
    b.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    b.add_argument("--out", default="runs/backtest", metavar="DIR")
    b.add_argument("--data-dir", metavar="DIR")
    m = sub.add_parser("blend", help="blend a trained SegRNN with a linear forecaster "
                                     "(weights fitted on the validation windows)")
    m.add_argument("checkpoint", help="a SegRNN point forecaster's checkpoint (best/)")
    m.add_argument("--out", required=True, metavar="DIR", help="the blended checkpoint")
    m.add_argument("--partner", choices=("linear_ar", "nlinear"), default="linear_ar",
                   help="what SegRNN is blended with (model.ar_blend_partner): the linear AR "
                        "baseline, or NLinear fitted in closed form on the training windows")
    m.add_argument("--weights", choices=("per_step", "shared", "equal"), default="per_step",
                   help="how the weights are fitted on the validation windows "
                        "(model.ar_blend_weights): one per horizon step, one shared by the "
                        "steps, or 0.5 fitted on nothing")
    m.add_argument("--data-dir", metavar="DIR")
    c = sub.add_parser("compare", help="Diebold-Mariano test of two forecasters (and the "
                                       "baselines) on the same windows")
    c.add_argument("checkpoints", nargs="+", metavar="CKPT",
                   help="the forecaster to test (several: e.g. one per seed, errors averaged)")
    c.add_argument("--null-reps", type=int, default=1000, metavar="N",
                   help="draws of a simulated null at these windows and lag, for the test's "
                        "real size and 5%% cut-off (few windows per horizon make the nominal "
                        "p too small); 0: none")
    c.add_argument("--against", nargs="+", required=True, metavar="CKPT",
                   help="the forecaster it is compared with (one or more checkpoints)")
    c.add_argument("--split", default="test", choices=("train", "valid", "test"))
    c.add_argument("--data-dir", metavar="DIR")


def run(a: argparse.Namespace) -> int:
    """Run the parsed ``forecast`` action; prints the report and one JSON line."""
    from rnnkit.tasks.forecast import (
        backtest,
        blend_checkpoint,
        evaluate_checkpoint,
        format_report,
        predict_checkpoint,
        train_forecast,
    )

    if a.forecast_command == "train":
        s = train_forecast(a.recipe, overrides=a.set, out=a.out, data_dir=a.data_dir,
                           resume=a.resume)
        print(format_report(s["report"]["metrics"]))
        print(json.dumps({"run_dir": s["run_dir"], "split": s["report"]["split"],
                          "metrics": s["report"]["metrics"]}))
    elif a.forecast_command == "evaluate":
        r = evaluate_checkpoint(
            a.checkpoint, data=a.data, split=a.split, data_dir=a.data_dir, plot=a.plot, csv=a.csv,
            calibration=a.calibration,
        )
        print(format_report(r["metrics"]))
        print(json.dumps(r))
    elif a.forecast_command == "predict":
        df = predict_checkpoint(a.checkpoint, a.data, output=a.output, plot=a.plot,
                                calibration=a.calibration, data_dir=a.data_dir)
        print(
            json.dumps(
                {"output": a.output, "rows": len(df), "series": int(df["series_id"].nunique()),
                 "calibration": df.attrs["calibration"]}
            )
        )
    elif a.forecast_command == "blend":
        fitted = blend_checkpoint(a.checkpoint, a.out, partner=a.partner, weights=a.weights,
                                  data_dir=a.data_dir)
        r = evaluate_checkpoint(a.out, data_dir=a.data_dir)
        print(format_report(r["metrics"]))
        print(json.dumps({"out": a.out, "fitted": fitted, "split": r["split"],
                          "metrics": r["metrics"]}))
    elif a.forecast_command == "compare":
        from rnnkit.tasks.forecast_compare import compare_checkpoints, null_cutoff

        if a.null_reps < 0:
            raise ValueError(f"--null-reps {a.null_reps}: expected 0 (no null) or more draws")
        r = compare_checkpoints(a.checkpoints, a.against, split=a.split, data_dir=a.data_dir)
        if a.null_reps > 0:
            r["null"] = null_cutoff(r["windows"], r["lag"], reps=a.null_reps)
        print(f"{'against':16s} {'MSE':>10s} {'their MSE':>10s} {'diff':>8s} {'DM':>7s} "
              f"{'p':>9s}   ({r['windows']} {r['split']} windows, lag {r['lag']})")
        for k, v in r.items():
            if k.startswith("a_vs_"):
                name = "--against" if k == "a_vs_b" else k[5:]
                print(f"{name:16s} {v['mean_a']:10.4f} {v['mean_b']:10.4f} "
                      f"{v['relative_diff']:+8.2%} {v['stat']:+7.2f} {v['p_value']:9.3g}")
        if r["series"] > 1:
            print(f"note: {r['series']} series, taken one after another: what they share at the "
                  "same time steps is ignored, so the p-values are too small")
        if "null" in r:
            nl = r["null"]
            print(f"note: under a simulated null of overlapping windows ({nl['reps']} draws), "
                  f"this test rejects {nl['size']:.1%} of the time at 5% with {nl['n']} windows "
                  f"at lag {nl['lag']}; its 5% cut-off is p < {nl['cutoff']:.3g}")

        def finite(x: Any) -> Any:  # JSON has no Infinity
            if isinstance(x, dict):
                return {k: finite(v) for k, v in x.items()}
            return None if isinstance(x, float) and not math.isfinite(x) else x

        print(json.dumps(finite(r)))
    else:
        r = backtest(
            a.recipe, folds=a.folds, step=a.step, overrides=a.set, out=a.out, data_dir=a.data_dir
        )
        print(format_report(r["mean"]))
        print(json.dumps({"out": a.out, "mean": r["mean"]}))
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``forecast`` on the ``rnnkit`` sub-command parsers (``func`` = :func:`run`)."""
    p = subparsers.add_parser(
        "forecast",
        help="time-series forecasting: train, evaluate, predict, backtest, blend, compare",
        description="Time-series forecasting: train, evaluate, predict, backtest, blend, compare.",
    )
    add_arguments(p)
    p.set_defaults(func=run)
    return p
