"""``rnnkit tune RECIPE [--trials N]``: Optuna search over a recipe's ``search:`` section.

::

    rnnkit tune configs/shakespeare_char_search.yaml --trials 20 [--out DIR] [--storage FILE|URL]
                [--study NAME] [--timeout SECONDS] [--data-dir DIR]

Run it again to resume; run it in several terminals with the same ``--storage`` to share the
study.  A killed worker's trial is run again with the same values by the other workers, or by
the next run of the command (which waits up to ``search.grace + 1`` s for it to be declared
dead), see :mod:`rnnkit.tune.heartbeat`.  Prints the summary as JSON; see :mod:`rnnkit.tune`.
"""

from __future__ import annotations

import argparse
import json

__all__ = ["add_parser"]


def _tune(a: argparse.Namespace) -> int:
    from rnnkit.tune import run_search

    s = run_search(a.recipe, trials=a.trials, out=a.out, storage=a.storage, study_name=a.study,
                   data_dir=a.data_dir, timeout=a.timeout)
    print(json.dumps(s))
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``tune`` to an ``argparse`` sub-parser set."""
    h = (
        "hyperparameter search (Optuna: TPE/random/grid, median/hyperband pruning, SQLite, "
        "resumable)"
    )
    p = subparsers.add_parser("tune", help=h, description=h[0].upper() + h[1:] + ".")
    p.add_argument(
        "recipe", help="a recipe with a search: section (e.g. configs/shakespeare_char_search.yaml)"
    )
    p.add_argument("--trials", type=int, metavar="N", help="finished trials the study should hold, "
                   ">= 1 (default search.trials); counted across resumes and workers")
    p.add_argument(
        "--out", metavar="DIR", help="output directory (default <trainer.out_dir>/tune/<recipe>)"
    )
    p.add_argument("--storage", metavar="FILE|URL", help="study storage: a SQLite file or a "
                   "SQLAlchemy URL such as sqlite:///runs/study.db (default OUT/study.db)")
    p.add_argument("--study", metavar="NAME", help="study name (default: the recipe's file name)")
    p.add_argument(
        "--timeout", type=float, metavar="S", help="stop starting trials after S seconds"
    )
    p.add_argument("--data-dir", metavar="DIR", help="directory holding known datasets")
    p.set_defaults(func=_tune)
    return p
