"""``rnnkit predict CKPT FILE...``: the label and probability of each audio file.

``predict`` dispatches on the checkpoint's task (``config.json``); this module serves
audio-classification checkpoints::

    $ rnnkit predict runs/fsdd/best 7_theo_0.wav 3_george_1.wav
    7_theo_0.wav    7    0.998
    3_george_1.wav  3    0.991

``--top-k K`` prints the K most likely labels; ``--json`` one JSON object per file.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_parser", "cmd_predict", "PREDICTORS"]


def _predict_audio(a: argparse.Namespace) -> list[dict]:
    from rnnkit.tasks.audio import predict_files

    return predict_files(a.checkpoint, a.files, top_k=a.top_k)


#: checkpoint task -> predictor; other pipelines add theirs here
PREDICTORS = {"audio": _predict_audio}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``predict`` to an ``argparse`` sub-parser set; returns the new parser."""
    help_text = "predict the label of input files with a classifier checkpoint"
    p = subparsers.add_parser("predict", help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
    p.add_argument("checkpoint", help="checkpoint directory (a run's best/ or last/)")
    p.add_argument("files", nargs="+", metavar="FILE", help="input files (audio: WAV, FLAC, OGG)")
    p.add_argument("--top-k", type=int, default=1, metavar="K", help="show the K most likely labels (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object per file")
    p.set_defaults(func=cmd_predict)
    return p


def cmd_predict(a: argparse.Namespace) -> int:
    from rnnkit.train.checkpoint import read_config

    if a.top_k < 1:
        raise ValueError(f"--top-k: expected a positive integer, got {a.top_k}")
    task = read_config(a.checkpoint).get("task")
    if task not in PREDICTORS:
        raise ValueError(f"predict: {a.checkpoint} is a {task!r} checkpoint; predict supports "
                         f"{', '.join(sorted(PREDICTORS))} checkpoints")
    for r in PREDICTORS[task](a):
        if a.json:
            print(json.dumps(r))
        else:
            rest = "  ".join(f"{label} {p:.3f}" for label, p in r["top"][1:])
            print(f"{Path(r['file']).name}\t{r['label']}\t{r['prob']:.3f}" + (f"\t{rest}" if rest else ""))
    return 0
