"""``rnnkit generate CKPT [--prompt P] [--length N] [--temperature T] [--seed S] [...]``: new
output from a generative checkpoint, through its pipeline's
:attr:`~rnnkit.train.task.TaskSpec.generate`.

- language model: text continuing ``--prompt TEXT``, printed as it is produced
  (``--top-k``, ``--top-p``);
- music: a piece written to ``--out chorale.mid`` and a piano-roll PNG (``--png``),
  optionally continuing ``--prompt FILE.mid`` (``--tempo``).

The options are passed on by name (``--top-k`` as ``top_k``); one the pipeline's function
does not take is an error naming the flag and the task.
"""
from __future__ import annotations

import argparse
import inspect
import sys

__all__ = ["add_parser", "add_arguments", "run"]

HELP = ("generate from a checkpoint: text from a language model, or a MIDI piece and its "
        "piano roll from a music model")

#: the flags passed on to a pipeline's generate, by keyword
OPTIONS = ("prompt", "length", "temperature", "top_k", "top_p", "seed", "out", "png", "tempo")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint directory of a language or music model")
    p.add_argument("--prompt", help="lm: text to continue (default: start a new line); every "
                   "character or word must be in the model's vocabulary; music: a MIDI file to "
                   "continue")
    p.add_argument("--length", type=int, metavar="N",
                   help="tokens (lm, default 500) or steps (music, default 64) to generate")
    p.add_argument("--temperature", type=float, metavar="T",
                   help="divides the logits (default 1.0); lm: 0 = greedy")
    p.add_argument(
        "--top-k", type=int, metavar="K", help="lm: sample among the K most likely tokens only"
    )
    p.add_argument(
        "--top-p",
        type=float,
        metavar="P",
        help="lm: nucleus sampling: smallest set of tokens with total probability >= P",
    )
    p.add_argument("--seed", type=int, metavar="S",
                   help="random seed, -2**63 to 2**64 - 1 (same seed, same output)")
    p.add_argument("--out", metavar="FILE.mid", help="music: the MIDI file to write")
    p.add_argument("--png", metavar="FILE.png",
                   help="music: the piano-roll picture (default: --out with .png)")
    p.add_argument("--tempo", type=float, metavar="QPM",
                   help="music: quarter notes per minute of the MIDI file (default 100)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: torch's, or 1 on a busy machine)")


def _stream_lm(checkpoint: str, *, prompt: str | None = None, length: int | None = None,
               temperature: float | None = None, top_k: int | None = None,
               top_p: float | None = None, seed: int | None = None) -> dict:
    """Language models: text printed as it is produced (their spec has no ``generate``)."""
    from rnnkit.generate import generate
    from rnnkit.tasks.lm import load_lm_checkpoint

    model, vocab, _ = load_lm_checkpoint(checkpoint)
    prompt = prompt or ""
    pieces = generate(model, vocab, prompt, 500 if length is None else length,
                      temperature=1.0 if temperature is None else temperature, top_k=top_k,
                      top_p=top_p, seed=seed)
    first = next(pieces, None)  # prompt errors surface before anything is printed
    sys.stdout.write(prompt)
    for piece in ([first] if first is not None else []):
        sys.stdout.write(piece)
    sys.stdout.flush()
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return {}


def run(a: argparse.Namespace) -> int:
    from rnnkit.commands import set_threads
    from rnnkit.generate import check_seed
    from rnnkit.train.checkpoint import read_config
    from rnnkit.train.task import get_task_spec, task_names

    set_threads(a.threads)
    task = read_config(a.checkpoint).get("task", "lm")
    spec = get_task_spec(task)
    fn = spec.generate or (_stream_lm if task == "lm" else None)
    if fn is None:
        have = ["lm"] + [n for n in task_names() if n != "lm" and get_task_spec(n).generate]
        raise ValueError(f"generate: {a.checkpoint}: checkpoint is from task {task!r}; expected a "
                         + " or a ".join(repr(n) for n in have) + " checkpoint")
    check_seed(a.seed)  # before torch or numpy see it: their overflow names no flag
    options = {k: getattr(a, k) for k in OPTIONS if getattr(a, k) is not None}
    takes = inspect.signature(fn).parameters
    for k in options:
        if k not in takes:
            raise ValueError(
                f"generate: --{k.replace('_', '-')} does not apply to {task} checkpoints"
            )
    result = fn(a.checkpoint, **options)
    if result.get("text"):
        print(result["text"])
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``generate`` to the ``rnnkit`` sub-command parsers (``func`` = :func:`run`)."""
    p = subparsers.add_parser("generate", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_arguments(p)
    p.set_defaults(func=run)
    return p
