"""Language modeling: char- or word-level, truncated BPTT with the hidden state carried.

The corpus (a known name, a text file, or a PTB/WikiText-2-style directory) is read by
:func:`rnnkit.data.load_corpus`, laid out as ``B`` parallel streams (:func:`batchify`) and
cut into ``(T, B)`` batches (:class:`BPTTBatches`, fixed or variable length).  Per batch::

    logits, s = model(x, s_prev)                   x, y: (T, B); logits: (T, B, V)
    ce        = mean_{t,b} -log p(y_tb | x_<=t)     nats per token
    loss      = ce                (loss_reduction "mean")
              = T * ce            ("sum_time": summed over time, mean over the batch, the
                                   convention of Zaremba et al. 2014 with lr 1, clip 5)
    s_prev    = detach(s)         truncated BPTT: state carried, gradient cut

Metrics: cross-entropy ``loss`` (nats/token), ``ppl = exp(loss)``, and for char level
``bpc = loss / ln 2`` (bits per character).  In DDP, rank ``r`` of ``W`` trains on
columns ``[r B/W, (r+1) B/W)`` of the global batch, so gradients averaged over ranks
equal the single-process gradient of the global batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data import BPTTBatches, LMCorpus, Vocab, batchify, load_corpus
from rnnkit.data.registry import KNOWN
from rnnkit.models.lm import LanguageModel, LMConfig, detach_state
from rnnkit.runtime import busy
from rnnkit.tasks.export_steps import ExportSpec, lm_export_spec
from rnnkit.tasks.predictors import LMPredictor, maybe_int8
from rnnkit.train.checkpoint import (
    CheckpointError,
    load_model_weights,
    read_run_config,
)
from rnnkit.train.config import ConfigError, RunConfig, build_run_config
from rnnkit.train.sizing import build_model
from rnnkit.train.task import StepOutput, TaskSpec, register_task

__all__ = [
    "LMDataConfig",
    "LMTask",
    "evaluate_ids",
    "evaluate_checkpoint",
    "load_lm_checkpoint",
    "lm_metrics",
    "DEMO_RECIPE",
    "DEMO_STEPS",
    "shakespeare_demo",
]


@dataclass
class LMDataConfig:
    """The ``data:`` section of a language-modeling recipe.

    Attributes:
        corpus: "ptb", "wikitext2", "tinyshakespeare", a text file or a directory.
        level: "char" or "word" (default: the known corpus's, else "char").
        data_dir: where known corpora live (else ``--data-dir``, $RNNKIT_DATA, the cache).
        download: allow downloading a known corpus that is not found locally.
        valid_fraction / test_fraction: chronological split of a single-file corpus.
        min_freq / max_vocab: word-level vocabulary limits.
        batch_size: global number of parallel streams B (split over DDP ranks).
        eval_batch_size: streams for evaluation (1 = one continuous stream).
        bptt: time steps per batch T (the mean when ``variable_bptt``).
        eval_bptt: time steps per evaluation batch (default ``bptt``).
        variable_bptt: AWD-LSTM random lengths (see BPTTBatches).
        carry_state: carry the hidden state across batches (else start each from zeros).
        loss_reduction: "mean" over tokens, or "sum_time" (sum over time, mean over batch).
    """

    corpus: str = "tinyshakespeare"
    level: Literal["char", "word"] | None = None
    data_dir: str | None = None
    download: bool = True
    valid_fraction: float | None = None
    test_fraction: float = 0.0
    min_freq: int = 1
    max_vocab: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 10
    bptt: int = 35
    eval_bptt: int | None = None
    variable_bptt: bool = False
    carry_state: bool = True
    loss_reduction: Literal["mean", "sum_time"] = "mean"


def lm_metrics(loss: float, level: str) -> dict[str, float]:
    """``{"loss", "ppl"}`` plus ``"bpc"`` for char level, from mean cross-entropy in nats."""
    out = {"loss": loss, "ppl": math.exp(min(loss, 700.0))}
    if level == "char":
        out["bpc"] = loss / math.log(2)
    return out


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


class LMTask:
    """The language-modeling task for :class:`~rnnkit.train.Trainer`.

    Args:
        config: the run config (``data``: :class:`LMDataConfig`, ``model``: LMConfig).
        data_dir: overrides ``data.data_dir`` (the CLI's ``--data-dir``).
        vocab: a fixed vocabulary (a checkpoint's) instead of building one.
    """

    name = "lm"
    item_name = "tokens"
    loss_name = "cross-entropy (nats per token)"  # the y-label of curves.png

    def __init__(
        self, config: RunConfig, *, data_dir: str | None = None, vocab: Vocab | None = None
    ):
        d: LMDataConfig = config.data
        for key in ("batch_size", "eval_batch_size", "bptt"):
            if getattr(d, key) < 1:
                raise ConfigError(
                    f"config key 'data.{key}': expected a positive integer, got {getattr(d, key)}"
                )
        for key in ("valid_fraction", "test_fraction"):
            v = getattr(d, key)
            if v is not None and not 0.0 <= v < 1.0:  # also NaN; -0.1 is not "no split"
                raise ConfigError(f"config key 'data.{key}': expected a number in [0, 1), got {v}")
        self.config = config
        self.corpus: LMCorpus = load_corpus(
            d.corpus, level=d.level, data_dir=data_dir or d.data_dir, download=d.download,
            valid_fraction=d.valid_fraction, test_fraction=d.test_fraction, vocab=vocab,
            min_freq=d.min_freq, max_size=d.max_vocab,
        )
        self.vocab = self.corpus.vocab
        self.level = self.corpus.level
        self.model = build_model(LanguageModel, config.model, len(self.vocab), run=config)
        self.eval_splits = tuple(s for s in self.corpus.splits if s != "train")
        self.batches: BPTTBatches | None = None

    # ------------------------------------------------------------------ training

    def describe(self) -> dict[str, str]:
        """What the run's header says of the data (rnnkit.train.run)."""
        sizes = ", ".join(f"{s} {ids.numel():,}" for s, ids in self.corpus.splits.items())
        return {"tokens": sizes, "vocabulary": f"{len(self.vocab):,} ({self.level} level)"}

    def setup(self, rank: int, world_size: int) -> None:
        d: LMDataConfig = self.config.data
        if d.batch_size % world_size:
            raise ConfigError(
                f"config key 'data.batch_size': {d.batch_size} streams cannot be split "
                f"evenly over {world_size} processes"
            )
        b = d.batch_size // world_size
        data = batchify(self.corpus.splits["train"], d.batch_size)  # (L, B)
        if data.size(0) < 2:
            raise ConfigError(
                f"data.corpus {d.corpus!r}: the training split is too short for "
                f"batch_size={d.batch_size}"
            )
        data = data[:, rank * b:(rank + 1) * b].contiguous()  # (L, B/W): this rank's streams
        self.batches = BPTTBatches(
            data, d.bptt, variable=d.variable_bptt, seed=self.config.trainer.seed
        )

    def steps_per_epoch(self, epoch: int) -> int:
        return self.batches.num_batches(epoch)

    def train_batches(self, epoch: int, start_step: int) -> Iterator[tuple[Tensor, Tensor]]:
        return self.batches.iter_epoch(epoch, start_step)

    def initial_carry(self) -> Any:
        return None

    def training_step(
        self, model: nn.Module, batch: tuple[Tensor, Tensor], carry: Any
    ) -> StepOutput:
        d: LMDataConfig = self.config.data
        dev = _device_of(model)
        x, y = batch[0].to(dev), batch[1].to(dev)  # (T, B)
        logits, state = model(x, carry if d.carry_state else None)  # (T, B, V)
        ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1))  # (T*B, V)
        loss = ce * x.size(0) if d.loss_reduction == "sum_time" else ce
        carry = detach_state(state) if d.carry_state else None
        return StepOutput(loss, carry, x.numel(), float(ce.detach()))

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Mean cross-entropy over ``split`` as ``eval_batch_size`` continuous streams."""
        if split not in self.corpus.splits:
            raise ValueError(
                f"split {split!r} is not in the corpus; available: {', '.join(self.corpus.splits)}"
            )
        return lm_metrics(
            evaluate_ids(model, self.corpus.splits[split], self.config.data), self.level
        )

    def data_splits(self) -> dict[str, Any]:
        """The token ids of each split, hashed for ``--resume`` (``rnnkit.train.fingerprint``)."""
        return dict(self.corpus.splits)

    def write_assets(self, directory: Path) -> None:
        self.vocab.save(directory / "vocab.json")


@torch.no_grad()
def evaluate_ids(model: nn.Module, ids: Tensor, d: LMDataConfig) -> float:
    """Mean next-token cross-entropy (nats) of ``model`` on the id stream ``ids``."""
    was = model.training
    model.eval()
    dev = _device_of(model)
    data = batchify(ids, min(d.eval_batch_size, max(1, (ids.numel() - 1) // 2)))  # (L, B)
    total, count, state = 0.0, 0, None
    for x, y in BPTTBatches(data, d.eval_bptt or d.bptt):
        logits, state = model(x.to(dev), state)  # (T, B, V)
        total += float(
            F.cross_entropy(
                logits.reshape(-1, logits.size(-1)).float(), y.to(dev).reshape(-1), reduction="sum"
            )
        )
        count += y.numel()
    model.train(was)
    return total / count


def build_lm_task(config: RunConfig, data_dir: str | None = None) -> LMTask:
    return LMTask(config, data_dir=data_dir)


def load_lm_checkpoint(
    directory: str | Path, *, map_location: str = "cpu"
) -> tuple[LanguageModel, Vocab, RunConfig]:
    """Model (eval mode), vocabulary and run config of an LM checkpoint directory.

    Raises:
        CheckpointError: not a checkpoint, another task's, truncated or corrupted.
    """
    d = Path(directory)
    _, cfg = read_run_config(d, task="lm")
    vocab_path = d / "vocab.json"
    if not vocab_path.is_file():
        raise CheckpointError(f"{d}: not a complete LM checkpoint (vocab.json is missing)")
    try:
        vocab = Vocab.load(vocab_path)
    except (ValueError, OSError) as e:
        raise CheckpointError(f"{vocab_path}: corrupted vocabulary ({e})") from None
    _check_level(cfg, vocab, d)
    model = build_model(
        LanguageModel, cfg.model, len(vocab), run=cfg, training=False, source=d / "config.json"
    )
    load_model_weights(model, d)
    model.to(map_location).eval()
    return model, vocab, cfg




def _check_level(cfg: RunConfig, vocab: Vocab, d: Path) -> None:
    """The level of ``config.json`` (``data.level``, or its corpus's default) must be the
    vocabulary's: a word-level config on a char vocabulary would read text another way than
    the model was trained on."""
    data: LMDataConfig = cfg.data
    known = KNOWN.get(str(data.corpus))
    level = data.level or (known.level if known else "char")
    if vocab.level is not None and level != vocab.level:
        raise CheckpointError(
            f"{d / 'config.json'}: field 'config.data.level': {level!r}"
            f"{'' if data.level else ' (the corpus default)'} does not match the level of "
            f"vocab.json; expected {vocab.level!r}"
        )


def evaluate_checkpoint(
    directory: str | Path,
    *,
    split: str | None = None,
    data: str | None = None,
    data_dir: str | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Metrics of an LM checkpoint on ``split`` of its corpus (or of ``data``, with its vocab).

    Without ``split``: the corpus's test split, else its valid split (cut as in training);
    but ``data`` that is one file (no valid/test files beside it) is scored whole, as split
    ``"file"``: evaluating a file is not evaluating its last 10%. With ``split`` given,
    ``data`` is split as the training corpus was.

    Returns ``{"split", "corpus", "tokens", "loss", "ppl"[, "bpc"]}``.
    """
    model, vocab, cfg = load_lm_checkpoint(directory)
    d: LMDataConfig = cfg.data
    if data is not None:
        d.corpus = data
    if batch_size is not None:
        d.eval_batch_size = batch_size
    whole = data is not None and split is None
    corpus = load_corpus(
        d.corpus,
        level=vocab.level,
        data_dir=data_dir or d.data_dir,
        download=d.download,
        valid_fraction=0.0 if whole else d.valid_fraction,
        test_fraction=0.0 if whole else d.test_fraction,
        vocab=vocab,
    )
    if whole and list(corpus.splits) == ["train"]:  # one file, nothing cut from it
        corpus.splits = {"file": corpus.splits["train"]}
    if split is None:
        split = next(s for s in ("test", "valid", "file", "train") if s in corpus.splits)
    if split not in corpus.splits:
        raise ValueError(
            f"--split {split}: not in {d.corpus!r}; available: {', '.join(corpus.splits)}"
        )
    ids = corpus.splits[split]
    loss = evaluate_ids(model, ids, d)
    return {
        "split": split,
        "corpus": d.corpus,
        "tokens": int(ids.numel()),
        **lm_metrics(loss, corpus.level),
    }


# --------------------------------------------------------------------------- demo

#: the demo's length: a fixed amount of work, so its result does not depend on how busy the
#: machine is; 3-4 minutes on this project's 2-core machine (docs/getting-started.md)
DEMO_STEPS = 1200

DEMO_RECIPE: dict[str, Any] = {
    "task": "lm",
    "data": {
        "corpus": "tinyshakespeare",
        "level": "char",
        "batch_size": 32,
        "bptt": 100,
        "eval_batch_size": 50,
    },
    "model": {
        "cell": "lstm",
        "embedding_size": 64,
        "hidden_size": 256,
        "num_layers": 2,
        "dropout": 0.1,
    },
    "optim": {"name": "adam", "lr": 3e-3},
    "schedule": {"name": "cosine", "warmup_steps": 50, "min_lr": 3e-4},
    "trainer": {
        "max_epochs": 100,
        "max_steps": DEMO_STEPS,
        "val_every_steps": 200,
        "checkpoint_every_steps": 200,
        "grad_clip": 5.0,
        "log_every_steps": 25,
        "out_dir": "runs",
        "name": "demo-shakespeare",
    },
}


def shakespeare_demo(
    *,
    steps: int = DEMO_STEPS,
    minutes: float | None = None,
    out: str | None = None,
    seed: int = 1234,
    threads: int | None = None,
    sample_length: int = 500,
    console=None,
) -> dict[str, Any]:
    """Train a char-level LSTM on the shipped tinyshakespeare for ``steps``, then sample.

    ``minutes`` trains for a wall-clock budget instead (the result then depends on the
    machine and how busy it is).

    Shows a progress bar, validation loss and bits per char; writes the run directory
    (``best/``, ``last/``, ``curves.png``, logs) and prints a generated passage.
    Needs nothing but the installed package (the corpus is inside it).
    """
    from rich.console import Console

    from rnnkit.generate import generate
    from rnnkit.train.run import run_training

    console = console or Console(highlight=False, soft_wrap=True)
    if threads is None and busy():
        threads = 1
        console.print(
            "the CPU is busy (load average >= cores): using 1 torch thread, which is much "
            "faster than several threads competing for the cores (--threads to choose)"
        )
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEMO_RECIPE.items()}
    if minutes is not None:
        raw["trainer"].update(max_time_minutes=float(minutes), max_steps=None)
        length = f"{minutes:g} min"
    else:
        if steps < 1:
            raise ValueError(f"--steps: expected a positive integer, got {steps}")
        raw["trainer"].update(max_steps=int(steps))
        measured = " (4 min 10 s on a 2-core Xeon VM, 1 thread)"
        length = f"{steps:,} steps" + (measured if steps == DEMO_STEPS else "")
    raw["trainer"].update(seed=seed, threads=threads)
    cfg = build_run_config(raw)
    console.print(
        f"[bold]rnnkit demo[/]: char-level LSTM ({cfg.model.num_layers}x{cfg.model.hidden_size}) "
        f"on tinyshakespeare for {length} (first 90% train, last 10% validation)"
    )
    summary = run_training(
        cfg, recipe_name="demo-shakespeare", out=out, test_split=None, console=console
    )
    run_dir = Path(summary["run_dir"])
    val = summary.get("val", {})
    console.print(
        f"validation loss {val.get('val_loss', float('nan')):.4f} nats/char, "
        f"{val.get('val_bpc', float('nan')):.4f} bits/char "
        f"(best {summary.get('best') or float('nan'):.4f})"
    )
    console.print(f"checkpoint: {run_dir / 'best'}   curves: {run_dir / 'curves.png'}")
    model, vocab, _ = load_lm_checkpoint(run_dir / "best")
    console.print("[bold]sample[/] (temperature 0.8, top-k 40, seed 0):")
    prompt = "ROMEO:"
    console.file.write(prompt)
    for piece in generate(model, vocab, prompt, sample_length, temperature=0.8, top_k=40, seed=0):
        console.file.write(piece)
        console.file.flush()
    console.file.write("\n")
    summary["sample_prompt"] = prompt
    return summary


def load_lm_task(directory: Path, cfg: RunConfig, data_dir: str | None = None) -> LMTask:
    """The LM task of a checkpoint's recipe with the checkpoint's own vocabulary (not one
    rebuilt from the corpus), before its weights are loaded."""
    if not (directory / "vocab.json").is_file():
        raise CheckpointError(f"{directory}: not a complete LM checkpoint (vocab.json is missing)")
    vocab = Vocab.load(directory / "vocab.json")
    _check_level(cfg, vocab, directory)
    return LMTask(cfg, data_dir=data_dir, vocab=vocab)


def _predictor(directory: Path, int8: bool) -> LMPredictor:
    model, vocab, cfg = load_lm_checkpoint(directory)
    return LMPredictor(maybe_int8(model, int8), vocab, cfg)


def _export(directory: Path) -> ExportSpec:
    return lm_export_spec(*load_lm_checkpoint(directory))


SPEC = register_task(TaskSpec(
    name="lm",
    data_config=LMDataConfig,
    model_config=LMConfig,
    build=build_lm_task,
    description="language modeling (char or word level) with truncated BPTT",
    load=load_lm_task,
    evaluate=evaluate_checkpoint,
    predictor=_predictor,
    export=_export,
))
