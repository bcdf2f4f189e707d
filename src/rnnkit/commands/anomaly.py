"""``rnnkit anomaly ...``: parse, call a typed function of :mod:`rnnkit.tasks.anomaly`, print.

::

    rnnkit anomaly nab [RECIPE | --detector random|windowed_gaussian] [--set K=V] [--families F ...]
                       [--data-dir DIR] [--out DIR] [--seed S] [--no-plots]
    rnnkit anomaly evaluate RESULTS_DIR --detector NAME [--families F ...] [--data-dir DIR]
    rnnkit anomaly train CSV --out CKPT [--recipe RECIPE] [--set K=V] [--fit-fraction F]
    rnnkit anomaly score CKPT CSV [--out SCORES.csv] [--threshold T] [--streaming]

This module imports only argparse at load time, so ``rnnkit --help`` stays fast;
:func:`add_parser` adds it to the ``rnnkit`` subcommands (:data:`rnnkit.commands.MODULES`).
"""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["HELP", "add_arguments", "add_parser", "run"]

HELP = "time-series anomaly detection: NAB benchmark, train a detector, score a CSV"
IN_FILE_ORDER_HELP = ("read the rows in file order even where timestamps repeat or go back, as "
                      "NAB does (its own files repeat one at a daylight-saving change); "
                      "timestamp,value columns only")


def _nab(a: argparse.Namespace) -> int:
    from rnnkit.tasks.anomaly import AnomalyDataConfig, load_anomaly_recipe, run_nab

    if (a.recipe is None) == (a.detector is None):
        raise ValueError(
            "anomaly nab: give a RECIPE.yaml or --detector random|windowed_gaussian (one of them)"
        )
    if a.recipe is not None:
        cfg = load_anomaly_recipe(a.recipe, a.set)
        detector, data = cfg.model, cfg.data
    else:
        detector, data = a.detector, AnomalyDataConfig()
    if a.families:
        data.families = a.families
    if a.data_dir:
        data.data_dir = a.data_dir
    report = run_nab(detector, data, out=a.out, seed=a.seed, plots=not a.no_plots,
                     log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(json.dumps(_summary(report), indent=1))
    return 0


def _summary(report: dict) -> dict:
    return {
        "detector": report["detector"],
        "files": len(report["files"]),
        "windows": report["windows"],
        **{p: round(v["score"], 2) for p, v in report["profiles"].items()},
        "threshold_standard": report["profiles"]["standard"]["threshold"],
        "point": report["point"],
        "window": report["window"],
    }


def _evaluate(a: argparse.Namespace) -> int:
    from pathlib import Path

    from rnnkit.anomaly.benchmark import evaluate_nab, read_results_csv
    from rnnkit.anomaly.nab_scoring import ScoredFile
    from rnnkit.data.nab import default_nab_root, load_nab_corpus

    corpus = load_nab_corpus(default_nab_root(a.data_dir), families=a.families or None)
    files = []
    for s in corpus:
        family, fname = s.key.split("/", 1)
        path = Path(a.results) / family / f"{a.detector}_{fname}"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no results file for {s.key} (expected NAB's layout "
                                    "<RESULTS_DIR>/<family>/<detector>_<file>.csv)")
        files.append(ScoredFile(s.key, read_results_csv(path, s), s.windows, s.probation))
    print(json.dumps(_summary({"detector": a.detector, **evaluate_nab(files)}), indent=1))
    return 0


def _train(a: argparse.Namespace) -> int:
    from rnnkit.anomaly.detectors import DetectorConfig
    from rnnkit.tasks.anomaly import load_anomaly_recipe, train_series
    from rnnkit.train.config import apply_overrides, from_dict

    if a.recipe is not None:
        cfg = load_anomaly_recipe(a.recipe, a.set)
        detector, data = cfg.model, cfg.data
        fit_fraction = a.fit_fraction if a.fit_fraction is not None else data.fit_fraction
        cols = (data.time_col, data.value_col)
    else:
        raw = apply_overrides(
            {"model": {}}, [s if s.startswith("model.") else f"model.{s}" for s in a.set]
        )
        detector = from_dict(DetectorConfig, raw["model"], "model")
        fit_fraction = a.fit_fraction if a.fit_fraction is not None else 0.15
        cols = ("timestamp", "value")
    det = train_series(
        a.csv, detector, a.out, fit_fraction=fit_fraction, time_col=cols[0], value_col=cols[1],
        in_file_order=a.in_file_order,
    )
    print(
        json.dumps(
            {
                "checkpoint": a.out,
                "fit_rows": det.fit_end,
                "train_rows": det.train_end,
                **det.history,  # with "steps": the series' median step and its gaps
            }
        )
    )
    return 0


def _score(a: argparse.Namespace) -> int:
    from rnnkit.tasks.anomaly import score_csv

    frame = score_csv(a.checkpoint, a.csv, a.out, threshold=a.threshold, streaming=a.streaming,
                      any_step=a.any_step, in_file_order=a.in_file_order)
    info = {"rows": len(frame), "max_score": float(frame["anomaly_score"].max()),
            "steps": frame.attrs["steps"]}
    if a.threshold is not None:
        info["alarms"] = int(frame["is_anomaly"].sum())
    if a.out:
        info["out"] = a.out
    else:
        print(frame.to_csv(index=False), end="")
    print(json.dumps(info))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``nab | evaluate | train | score`` sub-commands to the ``anomaly`` parser."""
    sub = p.add_subparsers(dest="anomaly_command", metavar="ACTION", required=True)

    n = sub.add_parser(
        "nab", help="run a detector on NAB files and print NAB scores (3 profiles) and P/R/F1"
    )
    n.add_argument(
        "recipe", nargs="?", help="anomaly recipe, e.g. configs/anomaly_nab_prediction.yaml"
    )
    n.add_argument(
        "--detector",
        choices=["random", "windowed_gaussian"],
        help="a NAB baseline instead of a recipe",
    )
    n.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="recipe override (repeatable)",
    )
    n.add_argument(
        "--families", nargs="+", metavar="F", help="NAB families (default: the recipe's)"
    )
    n.add_argument("--data-dir", metavar="DIR", help="NAB root (with data/ and labels/)")
    n.add_argument("--out", metavar="DIR", help="write NAB results CSVs and per-file plots here")
    n.add_argument("--seed", type=int, default=42, help="random detector seed (NAB's: 42)")
    n.add_argument("--no-plots", action="store_true", help="skip the per-file PNGs")
    n.set_defaults(anomaly_func=_nab)

    e = sub.add_parser("evaluate", help="NAB-score results CSVs in NAB's layout (any detector's)")
    e.add_argument("results", help="directory holding <family>/<detector>_<file>.csv")
    e.add_argument("--detector", required=True, help="detector name used in the file names")
    e.add_argument(
        "--families", nargs="+", metavar="F", help="NAB families to score (default: all found)"
    )
    e.add_argument("--data-dir", metavar="DIR", help="NAB root (with data/ and labels/)")
    e.set_defaults(anomaly_func=_evaluate)

    t = sub.add_parser("train", help="fit a detector on the first rows of a timestamp,value CSV")
    t.add_argument(
        "csv", help="CSV with timestamp,value columns (or the recipe's data.time_col/value_col)"
    )
    t.add_argument("--out", required=True, metavar="CKPT", help="checkpoint directory to write")
    t.add_argument(
        "--recipe", help="anomaly recipe for the detector (default: DetectorConfig defaults)"
    )
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="detector override, e.g. --set model.kind=reconstruction")
    t.add_argument(
        "--fit-fraction",
        type=float,
        metavar="F",
        help="learn from the first F of the rows (default 0.15)",
    )
    t.add_argument("--in-file-order", action="store_true", help=IN_FILE_ORDER_HELP)
    t.set_defaults(anomaly_func=_train)

    s = sub.add_parser("score", help="score a CSV with a trained detector")
    s.add_argument("checkpoint", help="detector checkpoint directory")
    s.add_argument("csv", help="CSV with timestamp,value columns")
    s.add_argument(
        "--out", metavar="FILE", help="write timestamp,value,anomaly_score[,is_anomaly] here"
    )
    s.add_argument("--threshold", type=float, help="add is_anomaly = score >= threshold")
    s.add_argument(
        "--streaming", action="store_true", help="feed rows one at a time (carried state)"
    )
    s.add_argument("--any-step", action="store_true",
                   help="score a series whose median step differs from the training series'")
    s.add_argument("--in-file-order", action="store_true", help=IN_FILE_ORDER_HELP)
    s.set_defaults(anomaly_func=_score)


def run(a: argparse.Namespace) -> int:
    """Dispatch a parsed ``rnnkit anomaly ...`` command."""
    return a.anomaly_func(a)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``anomaly`` on the top-level ``subparsers`` (sets ``func=run``)."""
    p = subparsers.add_parser("anomaly", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_arguments(p)
    p.set_defaults(func=run)
    return p
