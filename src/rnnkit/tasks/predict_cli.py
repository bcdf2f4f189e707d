"""``rnnkit predict CKPT INPUT...``: run a trained checkpoint on new inputs.

``predict`` reads the checkpoint's task (``config.json``) and hands the parsed arguments to
that pipeline's predictor, named in :data:`PREDICTORS` as ``"module:function"`` so that
nothing heavy is imported before it is needed::

    $ rnnkit predict runs/fsdd/best 7_theo_0.wav 3_george_1.wav          # audio files
    7_theo_0.wav    7    0.998
    $ rnnkit predict runs/imdb/best "A wonderful film." --file reviews.txt  # texts
    $ echo "Ein Hund läuft." | rnnkit predict runs/multi30k/best --file -    # stdin

A predictor is ``function(args: argparse.Namespace) -> list[dict]``: one JSON-able dict
per input, with at least ``"input"`` and a ``"text"`` key holding the line to print
(``--json`` prints the dicts instead).  Inputs are ``args.inputs`` (positional) followed by
the lines of ``--file`` (``-`` = stdin); :func:`gather_inputs` does that for text tasks.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys

__all__ = ["add_parser", "cmd_predict", "PREDICTORS", "gather_inputs"]

#: checkpoint task -> "module:function" of its predictor; pipelines add theirs here
PREDICTORS: dict[str, str] = {
    "audio": "rnnkit.tasks.audio:predict_cli",
    "classify": "rnnkit.tasks.classify:predict_cli",
    "tag": "rnnkit.tasks.tag:predict_cli",
    "translate": "rnnkit.tasks.translate:predict_cli",
}


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
                raise ValueError(f"--file {a.file}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        items.extend(line for line in lines if line.strip())
    if not items:
        raise ValueError("predict: no input; give inputs as arguments or --file FILE (- for stdin)")
    return items


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``predict`` to an ``argparse`` sub-parser set; returns the new parser."""
    help_text = "run a trained checkpoint (classifier, tagger, translator, audio) on new inputs"
    p = subparsers.add_parser("predict", help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
    p.add_argument("checkpoint", help="checkpoint directory (a run's best/ or last/)")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="inputs: audio files (WAV, FLAC, OGG) or texts, depending on the checkpoint")
    p.add_argument("--file", metavar="FILE", help="read more inputs from FILE, one per line ('-' = stdin)")
    p.add_argument("--top-k", type=int, default=1, metavar="K", help="classifiers: show the K most likely "
                   "labels (default 1)")
    p.add_argument("--beam-size", type=int, default=5, metavar="N",
                   help="translation: beam width; 1 = greedy (default 5)")
    p.add_argument("--max-len", type=int, default=100, metavar="N",
                   help="translation: longest output in tokens (default 100)")
    p.add_argument("--json", action="store_true", help="print one JSON object per input")
    p.set_defaults(func=cmd_predict)
    return p


def cmd_predict(a: argparse.Namespace) -> int:
    from rnnkit.train.checkpoint import read_config

    if a.top_k < 1:
        raise ValueError(f"--top-k: expected a positive integer, got {a.top_k}")
    if a.beam_size < 1 or a.max_len < 1:
        raise ValueError(f"--beam-size/--max-len: expected positive integers, got {a.beam_size}/{a.max_len}")
    task = read_config(a.checkpoint).get("task")
    if task not in PREDICTORS:
        raise ValueError(f"predict: {a.checkpoint} is a {task!r} checkpoint; predict supports "
                         f"{', '.join(sorted(PREDICTORS))} checkpoints")
    module, func = PREDICTORS[task].split(":")
    for r in getattr(importlib.import_module(module), func)(a):
        print(json.dumps(r) if a.json else r["text"])
    return 0
