"""``rnnkit demo [shakespeare|adding] [--minutes M] [--out DIR]``: the main job on the shipped
data."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "add_arguments", "run"]

HELP = "train a char-level LSTM on tinyshakespeare for ~3 minutes and sample from it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "which",
        nargs="?",
        default="shakespeare",
        choices=["shakespeare", "adding"],
        help="shakespeare (default): char-level LSTM on the shipped tinyshakespeare, then a "
        "sample; adding: the adding problem (its own options follow)",
    )
    p.add_argument("--minutes", type=float, default=3.0, help="training time budget (default 3)")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/demo-shakespeare[-N])")
    p.add_argument("--seed", type=int, default=1234, help="random seed (default 1234)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments passed on to the adding demo")


def run(a: argparse.Namespace) -> int:
    if a.which == "adding":
        from rnnkit.demos.adding import main as adding_main

        return int(adding_main(a.rest) or 0)
    if a.rest:
        raise ValueError(f"demo shakespeare: unrecognized arguments {' '.join(a.rest)}")
    from rnnkit.tasks.lm import shakespeare_demo

    shakespeare_demo(minutes=a.minutes, out=a.out, seed=a.seed, threads=a.threads)
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``demo`` to the ``rnnkit`` sub-command parsers (``func`` = :func:`run`)."""
    p = subparsers.add_parser("demo", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_arguments(p)
    p.set_defaults(func=run)
    return p
