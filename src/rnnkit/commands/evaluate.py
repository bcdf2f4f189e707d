"""``rnnkit evaluate CKPT [--data DATA] [--split SPLIT] [--data-dir DIR] [...]``: metrics of any
checkpoint, through its pipeline's :attr:`~rnnkit.train.task.TaskSpec.evaluate`.

The options are passed on by name (``--beam-size`` as ``beam_size``); one the pipeline's
function does not take is an error naming the flag and the task.
"""
from __future__ import annotations

import argparse
import inspect
import json

#: the flags passed on to the pipeline's evaluate, by keyword
OPTIONS = ("split", "data", "data_dir", "batch_size", "plot", "report_dir", "beam_size", "csv")
#: the options that are counts: a value below 1 is an error, never a fallback
POSITIVE = ("batch_size", "beam_size")

__all__ = ["add_parser", "add_arguments", "run"]

HELP = "evaluate a checkpoint on a split of its data (any pipeline)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "checkpoint", help="checkpoint directory (a run's best/ or last/) of any pipeline"
    )
    p.add_argument(
        "--data",
        metavar="CORPUS",
        help="data to evaluate on instead of the checkpoint's own: "
        "a corpus name, text file or directory (lm), a CSV/TSV/JSONL file (classify), a "
        "CoNLL file (tag), a CSV (forecast)",
    )
    p.add_argument(
        "--split",
        help="split to evaluate (default: test if the data has one; lm: else valid, and with "
        "--data FILE the whole file; "
        "translate: the recipe's test split name, e.g. test_2016_flickr)",
    )
    p.add_argument("--data-dir", metavar="DIR", help="directory holding known datasets")
    p.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="lm: parallel evaluation streams (default: the recipe's data.eval_batch_size)",
    )
    p.add_argument(
        "--plot",
        metavar="PNG",
        help="classify: confusion-matrix PNG; translate: attention "
        "heatmap PNG of the first sentence",
    )
    p.add_argument("--report-dir", metavar="DIR", help="tag: per-tag report and confusion PNG here")
    p.add_argument(
        "--beam-size", type=int, metavar="N", help="translate: beam width (default: the recipe's)"
    )
    p.add_argument("--csv", metavar="CSV", help="forecast: write every window's forecasts")


def run(a: argparse.Namespace) -> int:
    from rnnkit.train.checkpoint import read_config
    from rnnkit.train.task import get_task_spec, task_names

    for k in POSITIVE:
        v = getattr(a, k, None)
        if v is not None and v < 1:
            raise ValueError(f"--{k.replace('_', '-')}: expected a positive integer, got {v}")
    task = read_config(a.checkpoint).get("task", "lm")
    spec = get_task_spec(task)
    if spec.evaluate is None:
        have = [n for n in task_names() if get_task_spec(n).evaluate is not None]
        raise ValueError(f"evaluate: {a.checkpoint} is a {task!r} checkpoint; evaluate supports "
                         f"{', '.join(have)} checkpoints")
    options = {k: getattr(a, k) for k in OPTIONS if getattr(a, k) is not None}
    takes = inspect.signature(spec.evaluate).parameters
    for k in options:
        if k not in takes:
            raise ValueError(
                f"evaluate: --{k.replace('_', '-')} does not apply to {task} checkpoints"
            )
    print(json.dumps(spec.evaluate(a.checkpoint, **options)))
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``evaluate`` to the ``rnnkit`` sub-command parsers (``func`` = :func:`run`)."""
    p = subparsers.add_parser("evaluate", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_arguments(p)
    p.set_defaults(func=run)
    return p
