"""``rnnkit predict CKPT INPUT...``: run a trained checkpoint on new inputs.

``predict`` reads the checkpoint's task (``config.json``), gathers the inputs and calls that
pipeline's :attr:`~rnnkit.train.task.TaskSpec.predict`::

    $ rnnkit predict runs/fsdd/best 7_theo_0.wav 3_george_1.wav          # audio files
    7_theo_0.wav    7    0.998
    $ rnnkit predict runs/digits_ctc/best utt.wav                        # speech: transcript
    utt.wav    three one four
    $ rnnkit predict runs/imdb/best "A wonderful film." --file reviews.txt  # texts
    $ echo "Ein Hund läuft." | rnnkit predict runs/multi30k/best --file -    # stdin

A pipeline's predict is ``predict(checkpoint, inputs: list[str], **options) -> list[dict]``:
one JSON-able dict per input, with at least ``"input"`` and a ``"text"`` key holding the line
to print (``--json`` prints the dicts instead).  Inputs are the positional arguments
followed by the lines of ``--file`` (``-`` = stdin).  ``--top-k``, ``--beam-size`` and
``--max-len`` are passed on by name; one the pipeline does not take is an error.
"""
from __future__ import annotations

import argparse
import inspect
import json
import sys

__all__ = ["add_parser", "cmd_predict", "gather_inputs", "OPTIONS"]

#: the flags passed on to the pipeline's predict, by keyword, when given
OPTIONS = ("top_k", "beam_size", "max_len")


def gather_inputs(a: argparse.Namespace) -> list[str]:
    """Positional inputs, then the non-empty lines of ``--file`` (``-`` reads stdin)."""
    items = list(a.inputs)
    if a.file is not None:
        if a.file == "-":
            lines = sys.stdin.read().splitlines()
        else:
            try:
                with open(a.file, encoding="utf-8") as f:
                    lines = f.read().splitlines()
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"--file {a.file}: not UTF-8 text ({e.reason} at byte {e.start})"
                ) from None
        items.extend(line for line in lines if line.strip())
    if not items:
        raise ValueError("predict: no input; give inputs as arguments or --file FILE (- for stdin)")
    return items


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``predict`` to an ``argparse`` sub-parser set; returns the new parser."""
    help_text = ("run a trained checkpoint (classifier, tagger, translator, audio, speech) on "
                 "new inputs")
    p = subparsers.add_parser(
        "predict", help=help_text, description=help_text[0].upper() + help_text[1:] + "."
    )
    p.add_argument("checkpoint", help="checkpoint directory (a run's best/ or last/)")
    p.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="inputs: audio files (WAV, FLAC, OGG) or texts, depending on the checkpoint",
    )
    p.add_argument(
        "--file", metavar="FILE", help="read more inputs from FILE, one per line ('-' = stdin)"
    )
    p.add_argument("--top-k", type=int, metavar="K", help="classifiers: show the K most likely "
                   "labels (default 1)")
    p.add_argument("--beam-size", type=int, metavar="N",
                   help="translation: beam width; 1 = greedy (default 5); asr: beam "
                   "search with the recipe's lexicon (default 1, greedy)")
    p.add_argument("--max-len", type=int, metavar="N",
                   help="translation: longest output in tokens (default 100)")
    p.add_argument("--json", action="store_true", help="print one JSON object per input")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: torch's, or 1 on a busy machine)")
    p.set_defaults(func=cmd_predict)
    return p


def cmd_predict(a: argparse.Namespace) -> int:
    from rnnkit.commands import set_threads
    from rnnkit.train.checkpoint import read_config
    from rnnkit.train.task import get_task_spec, task_names

    options = {k: getattr(a, k) for k in OPTIONS if getattr(a, k) is not None}
    for k, v in options.items():
        if v < 1:
            raise ValueError(f"--{k.replace('_', '-')}: expected a positive integer, got {v}")
    task = read_config(a.checkpoint).get("task")
    spec = get_task_spec(task) if isinstance(task, str) else None
    if spec is None or spec.predict is None:
        have = [n for n in task_names() if get_task_spec(n).predict is not None]
        raise ValueError(f"predict: {a.checkpoint} is a {task!r} checkpoint; predict supports "
                         f"{', '.join(have)} checkpoints")
    takes = inspect.signature(spec.predict).parameters
    for k in options:
        if k not in takes:
            raise ValueError(
                f"predict: --{k.replace('_', '-')} does not apply to {task} checkpoints"
            )
    set_threads(a.threads)
    for r in spec.predict(a.checkpoint, gather_inputs(a), **options):
        print(json.dumps(r) if a.json else r["text"])
    return 0
