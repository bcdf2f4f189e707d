"""The ``rnnkit`` command line: each subcommand parses, calls a typed function and prints.

::

    rnnkit train RECIPE.yaml [--set key=value ...] [--resume RUN_DIR] [--data-dir DIR] [--out DIR]
    rnnkit evaluate CKPT [--data DATA] [--split test] [--data-dir DIR] [...]   (any pipeline)
    rnnkit predict CKPT INPUT... | generate CKPT --prompt TEXT | demo [shakespeare|adding]
    rnnkit forecast|anomaly ... | explain ... | tune | prune | quantize | export | serve | bench

One module per subcommand (:data:`MODULES`), each with ``add_parser(subparsers)`` that sets
``func``.  This package is the only place that sees ``argparse``: everything below it takes
typed arguments (the per-pipeline functions come from :func:`rnnkit.train.task.get_task_spec`).

Bad input (a missing file, a wrong recipe value, a corrupted checkpoint, ...) prints one
line ``rnnkit: error: ...`` and exits with status 2; set ``RNNKIT_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

__all__ = ["main", "build_parser", "set_threads", "MODULES", "COMMANDS"]

#: the subcommand modules, in the order ``rnnkit --help`` lists them; each imports only
#: argparse at load time, so building the parser stays fast
MODULES = ("train", "evaluate", "generate", "demo", "anomaly", "bench", "compress", "export",
           "forecast", "predict", "serve", "steps", "tune", "explain")

#: the commands every pipeline shares (the rest are a pipeline's or a tool's)
COMMANDS = ("train", "evaluate", "generate", "demo")


def set_threads(threads: int | None) -> None:
    """torch's CPU threads for a command: ``threads`` if given, else one on a busy machine
    (several threads competing for busy cores are much slower: ``rnnkit generate`` took 15 s
    at torch's default and 4.6 s at one thread on the loaded 2-core Intel Xeon VM, torch
    2.13), else torch's."""
    from rnnkit.runtime import busy

    if threads is not None or busy():
        import torch

        torch.set_num_threads(threads or 1)


def build_parser() -> argparse.ArgumentParser:
    """The ``rnnkit`` parser with every subcommand of :data:`MODULES`."""
    from rnnkit.runtime import __version__

    parser = argparse.ArgumentParser(
        prog="rnnkit", description="Recurrent neural networks on PyTorch."
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    from rnnkit.train.checkpoint import CheckpointError
    from rnnkit.train.trainer import TrainingError

    return (ValueError, OSError, CheckpointError, TrainingError)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``rnnkit`` and ``python -m rnnkit``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from rnnkit.runtime import tune_malloc

    tune_malloc()  # this process is ours: keep freed memory for the scans' buffers
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("rnnkit: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as e:
        if os.environ.get("RNNKIT_DEBUG"):
            raise
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"rnnkit: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
