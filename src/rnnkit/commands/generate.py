"""``rnnkit generate CKPT --prompt TEXT --length N [--temperature T] [--top-k K] [--top-p P]
[--seed S]``: text from a language-model checkpoint, printed as it is produced."""
from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "add_arguments", "run"]

HELP = "generate text from a language-model checkpoint, printed as it is produced"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint directory of a language model")
    p.add_argument("--prompt", default="", help="text to continue (default: start a new line)")
    p.add_argument(
        "--length", type=int, default=500, metavar="N", help="tokens to generate (default 500)"
    )
    p.add_argument("--temperature", type=float, default=1.0, metavar="T",
                   help="softmax temperature; 0 = greedy (default 1.0)")
    p.add_argument(
        "--top-k", type=int, metavar="K", help="sample among the K most likely tokens only"
    )
    p.add_argument(
        "--top-p",
        type=float,
        metavar="P",
        help="nucleus sampling: smallest set of tokens with total probability >= P",
    )
    p.add_argument("--seed", type=int, metavar="S", help="random seed (same seed, same text)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: torch's, or 1 on a busy machine)")


def run(a: argparse.Namespace) -> int:
    from rnnkit.commands import set_threads
    from rnnkit.generate import generate
    from rnnkit.tasks.lm import load_lm_checkpoint

    set_threads(a.threads)
    model, vocab, _ = load_lm_checkpoint(a.checkpoint)
    pieces = generate(model, vocab, a.prompt, a.length, temperature=a.temperature, top_k=a.top_k,
                      top_p=a.top_p, seed=a.seed)
    first = next(pieces, None)  # prompt errors surface before anything is printed
    sys.stdout.write(a.prompt)
    for piece in ([first] if first is not None else []):
        sys.stdout.write(piece)
    sys.stdout.flush()
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``generate`` to the ``rnnkit`` sub-command parsers (``func`` = :func:`run`)."""
    p = subparsers.add_parser("generate", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_arguments(p)
    p.set_defaults(func=run)
    return p
