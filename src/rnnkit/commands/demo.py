"""``rnnkit demo [shakespeare|adding] [--steps N | --minutes M] [--out DIR]``: the main job on
the shipped data, or the adding problem::

    rnnkit demo adding [--T 100] [--steps 2000] [--hidden 64] [--lr 0.01] [--seed 0]
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "add_arguments", "adding_parser", "run"]

HELP = ("train a char-level LSTM on tinyshakespeare (1,200 steps: 4 min 10 s on a 2-core Intel "
        "Xeon VM, 1 thread) and sample from it")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "which",
        nargs="?",
        default="shakespeare",
        choices=["shakespeare", "adding"],
        help="shakespeare (default): char-level LSTM on the shipped tinyshakespeare, then a "
        "sample; adding: the adding problem (its own options follow)",
    )
    p.add_argument("--steps", type=int, default=1200,
                   help="training steps (default 1200: 4 min 10 s on a 2-core Intel Xeon VM, 1 "
                        "thread, torch 2.13)")
    p.add_argument("--minutes", type=float,
                   help="train for this wall-clock budget instead of a number of steps")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/demo-shakespeare[-N])")
    p.add_argument("--seed", type=int, default=1234, help="random seed (default 1234)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments passed on to the adding demo")


def adding_parser() -> argparse.ArgumentParser:
    """The options of ``rnnkit demo adding`` (:func:`rnnkit.demos.adding.adding_demo`)."""
    ap = argparse.ArgumentParser(prog="rnnkit demo adding",
                                 description="The adding problem: who can remember two numbers "
                                 "across T steps? (RNN, GRU and LSTM, the same budget)")
    ap.add_argument("--T", type=int, default=100, help="sequence length (default 100)")
    ap.add_argument("--steps", type=int, default=2000,
                    help="training steps per model (default 2000)")
    ap.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate (default 0.01)")
    ap.add_argument("--hidden", type=int, default=64, help="hidden size (default 64)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--out", default="runs/demo-adding", metavar="DIR",
                    help="where results.json, table.md and gradient_flow.png go "
                    "(default runs/demo-adding)")
    return ap


def run(a: argparse.Namespace) -> int:
    if a.which == "adding":
        from rnnkit.demos.adding import adding_demo

        o = adding_parser().parse_args(a.rest)
        adding_demo(o.T, o.steps, o.hidden, o.lr, o.seed, out=o.out)
        return 0
    if a.rest:
        raise ValueError(f"demo shakespeare: unrecognized arguments {' '.join(a.rest)}")
    from rnnkit.tasks.lm import shakespeare_demo

    shakespeare_demo(steps=a.steps, minutes=a.minutes, out=a.out, seed=a.seed,
                     threads=a.threads)
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``demo`` to the ``rnnkit`` sub-command parsers (``func`` = :func:`run`)."""
    p = subparsers.add_parser("demo", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_arguments(p)
    p.set_defaults(func=run)
    return p
