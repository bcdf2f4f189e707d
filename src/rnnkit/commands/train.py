"""``rnnkit train RECIPE.yaml [--set key=value ...] [--resume RUN_DIR] [--data-dir DIR]
[--out DIR]``."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "add_arguments", "run"]

HELP = "train a model from a YAML recipe"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "recipe",
        nargs="?",
        help="YAML recipe (e.g. configs/shakespeare_char.yaml); optional "
        "with --resume, which then reuses the run's saved config",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set optim.lr=0.001 --set trainer.devices=2 "
        "(repeatable; the value is converted to the key's type)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR exactly from its last/ "
        "checkpoint (model, optimizer, schedule, RNG, position in the epoch)",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="directory holding known corpora (ptb/, wikitext2/, ...); "
        "overrides data.data_dir and $RNNKIT_DATA",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="run directory (default: <trainer.out_dir>/<recipe name>, "
        "with -2, -3, ... appended if taken)",
    )


def run(a: argparse.Namespace) -> int:
    from rnnkit.train.run import recipe_or_resume, run_training

    cfg, name = recipe_or_resume(a.recipe, a.set, a.resume)
    summary = run_training(cfg, recipe_name=name, out=a.out, resume=a.resume, data_dir=a.data_dir)
    if summary:
        print(summary_lines(summary))
    return 0


def summary_lines(summary: dict) -> str:
    """A run's end in a few lines (the whole summary is the run directory's summary.json)."""

    def metrics(d: dict) -> str:
        return "  ".join(f"{k} {v:.4f}" for k, v in d.items() if isinstance(v, float))

    run_dir = Path(summary["run_dir"])
    seconds = summary.get("elapsed_seconds") or summary.get("wall_seconds") or 0.0
    lines = [f"stopped ({summary.get('stopped')}) at step {summary.get('step')} after "
             f"{summary.get('epoch')} full epoch(s), {seconds:.1f} s of training"]
    if summary.get("val"):
        lines.append(f"last validation: {metrics(summary['val'])}")
    if summary.get("test"):
        lines.append(f"test (best checkpoint): {metrics(summary['test'])}")
    lines.append(f"run directory: {run_dir}   summary: {run_dir / 'summary.json'}")
    return "\n".join(lines)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``train`` to the ``rnnkit`` sub-command parsers (``func`` = :func:`run`)."""
    p = subparsers.add_parser("train", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_arguments(p)
    p.set_defaults(func=run)
    return p
