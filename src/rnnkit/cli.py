"""The ``rnnkit`` command line: a table of subcommands, each parsing into a typed call.

::

    rnnkit train RECIPE.yaml [--set key=value ...] [--resume RUN_DIR] [--data-dir DIR] [--out DIR]
    rnnkit evaluate CKPT [--data DATA] [--split test] [--data-dir DIR] [...]   (dispatches on the task)
    rnnkit generate CKPT --prompt TEXT --length N [--temperature T] [--top-k K] [--top-p P] [--seed S]
    rnnkit demo [shakespeare|adding] [--minutes M] [--out DIR]

Pipelines add their own subcommands (``rnnkit forecast ...``) from ``rnnkit/tasks/*_cli.py``
through ``add_parser(subparsers)``.

Bad input (a missing file, a wrong recipe value, a corrupted checkpoint, ...) prints one
line ``rnnkit: error: ...`` and exits with status 2; set ``RNNKIT_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["main", "build_parser", "COMMANDS"]


# --------------------------------------------------------------------------- commands


def cmd_train(a: argparse.Namespace) -> int:
    from rnnkit.train.checkpoint import read_config, recover_interrupted
    from rnnkit.train.config import ConfigError, apply_overrides, build_run_config, load_recipe
    from rnnkit.train.run import run_training

    if a.recipe is None and a.resume is None:
        raise ConfigError("train: give a RECIPE.yaml, or --resume RUN_DIR to continue a run")
    if a.resume is not None:
        recover_interrupted(Path(a.resume) / "last")  # a kill between the two renames of a save
    if a.recipe is not None:
        cfg = load_recipe(a.recipe, a.set)
        name = Path(a.recipe).stem
    else:  # the run's own config, as saved in its last checkpoint
        meta = read_config(Path(a.resume) / "last")
        cfg = build_run_config(apply_overrides(meta["config"], a.set))
        name = Path(a.resume).name
    summary = run_training(cfg, recipe_name=name, out=a.out, resume=a.resume, data_dir=a.data_dir)
    if summary:
        print(json.dumps({k: summary[k] for k in ("run_dir", "stopped", "val", "test") if k in summary}))
    return 0


def _evaluate_lm(a: argparse.Namespace) -> dict:
    from rnnkit.tasks.lm import evaluate_checkpoint

    return evaluate_checkpoint(a.checkpoint, split=a.split, data=a.data, data_dir=a.data_dir,
                               batch_size=a.batch_size)


def _evaluate_audio(a: argparse.Namespace) -> dict:
    from rnnkit.tasks.audio import evaluate_audio_checkpoint

    return evaluate_audio_checkpoint(a.checkpoint, split=a.split or "test", data_dir=a.data_dir)


def _evaluate_classify(a: argparse.Namespace) -> dict:
    from rnnkit.tasks.classify import evaluate_classify_checkpoint

    return evaluate_classify_checkpoint(a.checkpoint, split=a.split or "test", path=a.data,
                                        data_dir=a.data_dir, plot=a.plot)


def _evaluate_tag(a: argparse.Namespace) -> dict:
    from rnnkit.tasks.tag import evaluate_tag_checkpoint

    return evaluate_tag_checkpoint(a.checkpoint, split=a.split or "test", file=a.data,
                                   data_dir=a.data_dir, report_dir=a.report_dir)


def _evaluate_translate(a: argparse.Namespace) -> dict:
    from rnnkit.tasks.translate import evaluate_translate_checkpoint

    return evaluate_translate_checkpoint(a.checkpoint, split=a.split or "test", beam_size=a.beam_size,
                                         data_dir=a.data_dir, plot=a.plot)


#: checkpoint task -> evaluator (forecast and anomaly have their own ``rnnkit forecast|anomaly evaluate``)
EVALUATORS: dict[str, Callable[[argparse.Namespace], dict]] = {
    "lm": _evaluate_lm,
    "audio": _evaluate_audio,
    "classify": _evaluate_classify,
    "tag": _evaluate_tag,
    "translate": _evaluate_translate,
}


def cmd_evaluate(a: argparse.Namespace) -> int:
    from rnnkit.train.checkpoint import read_config

    task = read_config(a.checkpoint).get("task", "lm")
    if task not in EVALUATORS:
        hint = f" (use rnnkit {task} evaluate)" if task in ("forecast", "anomaly") else ""
        raise ValueError(f"evaluate: {a.checkpoint} is a {task!r} checkpoint; evaluate supports "
                         f"{', '.join(sorted(EVALUATORS))} checkpoints{hint}")
    print(json.dumps(EVALUATORS[task](a)))
    return 0


def cmd_generate(a: argparse.Namespace) -> int:
    from rnnkit.generate import generate
    from rnnkit.tasks.lm import load_lm_checkpoint

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


def cmd_demo(a: argparse.Namespace) -> int:
    if a.which == "adding":
        from rnnkit.demos.adding import main as adding_main

        return int(adding_main(a.rest) or 0)
    if a.rest:
        raise ValueError(f"demo shakespeare: unrecognized arguments {' '.join(a.rest)}")
    from rnnkit.tasks.lm import shakespeare_demo

    shakespeare_demo(minutes=a.minutes, out=a.out, seed=a.seed, threads=a.threads)
    return 0


# --------------------------------------------------------------------------- parser


def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", nargs="?", help="YAML recipe (e.g. configs/shakespeare_char.yaml); optional "
                   "with --resume, which then reuses the run's saved config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, e.g. --set optim.lr=0.001 --set trainer.devices=2 "
                   "(repeatable; the value is converted to the key's type)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly from its last/ "
                   "checkpoint (model, optimizer, schedule, RNG, position in the epoch)")
    p.add_argument("--data-dir", metavar="DIR", help="directory holding known corpora (ptb/, wikitext2/, ...); "
                   "overrides data.data_dir and $RNNKIT_DATA")
    p.add_argument("--out", metavar="DIR", help="run directory (default: <trainer.out_dir>/<recipe name>, "
                   "with -2, -3, ... appended if taken)")


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint directory (a run's best/ or last/) of a language model, "
                   "classifier, tagger, translator or audio classifier")
    p.add_argument("--data", metavar="CORPUS", help="data to evaluate on instead of the checkpoint's own: "
                   "a corpus name, text file or directory (lm), a CSV/TSV/JSONL file (classify), a "
                   "CoNLL file (tag)")
    p.add_argument("--split", help="split to evaluate (default: test if the data has one; lm: else valid; "
                   "translate: the recipe's test split name, e.g. test_2016_flickr)")
    p.add_argument("--data-dir", metavar="DIR", help="directory holding known datasets")
    p.add_argument("--batch-size", type=int, metavar="N",
                   help="lm: parallel evaluation streams (default: the recipe's data.eval_batch_size)")
    p.add_argument("--plot", metavar="PNG", help="classify: confusion-matrix PNG; translate: attention "
                   "heatmap PNG of the first sentence")
    p.add_argument("--report-dir", metavar="DIR", help="tag: per-tag report and confusion PNG here")
    p.add_argument("--beam-size", type=int, metavar="N", help="translate: beam width (default: the recipe's)")


def _add_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint directory of a language model")
    p.add_argument("--prompt", default="", help="text to continue (default: start a new line)")
    p.add_argument("--length", type=int, default=500, metavar="N", help="tokens to generate (default 500)")
    p.add_argument("--temperature", type=float, default=1.0, metavar="T",
                   help="softmax temperature; 0 = greedy (default 1.0)")
    p.add_argument("--top-k", type=int, metavar="K", help="sample among the K most likely tokens only")
    p.add_argument("--top-p", type=float, metavar="P", help="nucleus sampling: smallest set of tokens "
                   "with total probability >= P")
    p.add_argument("--seed", type=int, metavar="S", help="random seed (same seed, same text)")


def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("which", nargs="?", default="shakespeare", choices=["shakespeare", "adding"],
                   help="shakespeare (default): char-level LSTM on the shipped tinyshakespeare, then a "
                   "sample; adding: the adding problem (its own options follow)")
    p.add_argument("--minutes", type=float, default=3.0, help="training time budget (default 3)")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/demo-shakespeare[-N])")
    p.add_argument("--seed", type=int, default=1234, help="random seed (default 1234)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments passed on to the adding demo")


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "train": ("train a model from a YAML recipe", _add_train, cmd_train),
    "evaluate": ("evaluate a checkpoint on a split of its data (lm, classify, tag, translate, audio)", _add_evaluate, cmd_evaluate),
    "generate": ("generate text from a language-model checkpoint, printed as it is produced",
                 _add_generate, cmd_generate),
    "demo": ("train a char-level LSTM on tinyshakespeare for ~3 minutes and sample from it",
             _add_demo, cmd_demo),
}


def _pipeline_clis() -> list:
    """``rnnkit/tasks/*_cli.py`` modules: each adds its subcommands with ``add_parser(subparsers)``
    (e.g. ``rnnkit forecast ...``); they import only argparse at load time."""
    import importlib
    import pkgutil
    import warnings

    import rnnkit.tasks

    mods = []
    for m in sorted(pkgutil.iter_modules(rnnkit.tasks.__path__), key=lambda m: m.name):
        if not m.name.endswith("_cli"):
            continue
        try:
            mod = importlib.import_module(f"rnnkit.tasks.{m.name}")
        except Exception as e:  # one broken pipeline must not take the whole CLI down
            warnings.warn(f"rnnkit.tasks.{m.name}: not loaded ({type(e).__name__}: {e})", stacklevel=2)
            continue
        if hasattr(mod, "add_parser"):
            mods.append(mod)
    return mods


def build_parser() -> argparse.ArgumentParser:
    from rnnkit.runtime import __version__

    parser = argparse.ArgumentParser(prog="rnnkit", description="Recurrent neural networks on PyTorch.")
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add, func) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        add(p)
        p.set_defaults(func=func)
    for mod in _pipeline_clis():
        mod.add_parser(sub)
    from rnnkit.diagnostics.cli import add_parser as add_explain

    add_explain(sub)  # rnnkit explain CKPT|RUN_DIR|RECIPE.yaml|adding: works across pipelines
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
