"""The tagging Task the Trainer runs, and its metrics.

:func:`tag_metrics` scores decoded tags (token accuracy; span precision/recall/F1 for
BIO/BIOES); :func:`_run` decodes sentences in length-sorted batches. :class:`TagTask`
reads the data (:mod:`rnnkit.tasks.tag_data`), builds the :class:`~rnnkit.models.tagger.Tagger`
and serves the Trainer's batches and evaluations. :mod:`rnnkit.tasks.tag` registers it.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit.data.conll import check_span_tags
from rnnkit.models.tagger import TagBatch, Tagger
from rnnkit.tasks.tag_data import (
    TagDataConfig,
    TagEncoder,
    _data_files,
    _file_scheme,
    _prepare,
    _read,
    build_encoder,
)
from rnnkit.train.config import ConfigError, RunConfig
from rnnkit.train.sizing import build_model
from rnnkit.train.task import StepOutput

__all__ = ["TagTask", "build_tag_task", "tag_metrics"]


# --------------------------------------------------------------------------- metrics


def tag_metrics(gold: list[list[str]], pred: list[list[str]], scheme: str) -> dict[str, float]:
    """Token accuracy; with a span scheme also seqeval's CoNLL-style span precision/recall/F1."""
    n = sum(len(g) for g in gold)
    correct = sum(a == b for g, p in zip(gold, pred) for a, b in zip(g, p))
    out = {"acc": correct / max(n, 1)}
    if scheme in ("bio", "bioes"):
        from seqeval.metrics import f1_score, precision_score, recall_score

        out.update(precision=float(precision_score(gold, pred)),
                   recall=float(recall_score(gold, pred)), f1=float(f1_score(gold, pred)))
    return out


@torch.no_grad()
def _run(model: Tagger, enc: TagEncoder, data: list[tuple], batch_size: int
         ) -> tuple[float, list[list[int]]]:
    """Summed loss (if tags) and decoded tag ids, batches sorted by length, input order kept."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    order = sorted(range(len(data)), key=lambda i: len(data[i][0]))
    paths: list[list[int]] = [[] for _ in data]
    loss = 0.0
    for k in range(0, len(order), batch_size):
        idx = order[k:k + batch_size]
        b = enc.batch([data[i] for i in idx]).to(dev)
        if b.tags is not None:
            loss += float(model.loss(b)[0])
        for i, p in zip(idx, model.decode(b)):
            paths[i] = p
    model.train(was)
    return loss, paths


def _evaluate(model: Tagger, enc: TagEncoder, data: list[tuple], batch_size: int,
              scheme: str) -> dict[str, float]:
    loss, paths = _run(model, enc, data, batch_size)
    gold = [enc.tags.decode(s[2]) for s in data]
    pred = [enc.tags.decode(p) for p in paths]
    n = sum(len(g) for g in gold)
    return {"loss": loss / max(n, 1), **tag_metrics(gold, pred, scheme)}


# --------------------------------------------------------------------------- task


class TagTask:
    """The sequence-tagging task for :class:`~rnnkit.train.Trainer`.

    Args:
        config: the run config (``data``: :class:`TagDataConfig`, ``model``: TaggerConfig).
        data_dir: overrides ``data.data_dir`` (the CLI's ``--data-dir``).
    """

    name = "tag"
    item_name = "tokens"
    loss_name = "loss per token (cross-entropy or CRF NLL, nats)"  # curves.png

    def __init__(self, config: RunConfig, *, data_dir: str | None = None):
        d: TagDataConfig = config.data
        for key in ("batch_size", "eval_batch_size", "max_chars", "min_freq"):
            if getattr(d, key) < 1:
                raise ConfigError(f"config key 'data.{key}': expected a positive integer, "
                                  f"got {getattr(d, key)}")
        if d.max_sentences is not None and d.max_sentences < 1:
            raise ConfigError(f"config key 'data.max_sentences': expected a positive integer "
                              f"or null (all sentences), got {d.max_sentences}")
        if not 0.0 <= d.unk_replace <= 1.0:
            raise ConfigError(f"config key 'data.unk_replace': expected a probability in "
                              f"[0, 1], got {d.unk_replace}")
        if not 0.0 <= d.valid_fraction < 1.0:
            raise ConfigError(f"config key 'data.valid_fraction': expected a fraction in "
                              f"[0, 1), got {d.valid_fraction}")
        if d.scheme == "none" and d.encoding != "same":
            raise ConfigError(f"config keys 'data.scheme' (none) and 'data.encoding' "
                              f"({d.encoding}): a conversion needs BIO, IOB or BIOES tags; "
                              "expected data.scheme auto, bio or bioes, or data.encoding same")
        self.config, self.seed = config, config.trainer.seed
        self.files = _data_files(d, data_dir)
        raw = {s: _read(d, p) for s, p in self.files.items()}
        self.scheme = _file_scheme(d, raw["train"], self.files["train"])
        if self.scheme in ("bio", "bioes"):  # each file is detected alone: check them all
            why = (f"the training file's tags are {self.scheme.upper()}" if d.scheme == "auto"
                   else f"data.scheme={d.scheme}")
            for s in raw:
                check_span_tags(raw[s], self.files[s], why)
        # the tag set is the whole training file's, also when max_sentences takes a subset
        tagset = {t for x in _prepare(raw["train"], self.scheme, d.encoding)
                  for t in x.tags}
        if d.max_sentences is not None:
            raw["train"] = raw["train"][:d.max_sentences]
        if "valid" not in raw and d.valid_fraction > 0:
            rng = np.random.default_rng(self.seed)
            perm = rng.permutation(len(raw["train"]))
            cut = round(d.valid_fraction * len(perm))
            if cut == 0:  # valid_fraction > 0 asks for a validation split: never none
                raise ConfigError(
                    f"config key 'data.valid_fraction': {d.valid_fraction} of {len(perm)} "
                    "training sentences holds out none; expected a larger fraction, 0 for no "
                    "validation split, or a data.valid file"
                )
            if cut >= len(perm):
                raise ConfigError(
                    f"config key 'data.valid_fraction': {d.valid_fraction} of {len(perm)} "
                    f"training sentences holds out all {cut}, so the training split would be "
                    "empty; expected a smaller fraction or a data.valid file"
                )
            raw["valid"] = [raw["train"][i] for i in sorted(perm[:cut])]
            raw["train"] = [raw["train"][i] for i in sorted(perm[cut:])]
            self.files["valid"] = self.files["train"]
        raw = {s: _prepare(v, self.scheme, d.encoding) for s, v in raw.items()}
        self.tag_scheme = self.scheme if d.encoding == "same" else d.encoding
        self.encoder = build_encoder(raw["train"], d, tagset)
        enc = self.encoder
        self.data = {s: [(x.words, enc.word_ids(x.words), enc.tag_ids(x, self.files[s]))
                         for x in v] for s, v in raw.items() if v}
        self.model = build_model(
            Tagger, config.model, len(enc.words), len(enc.chars), len(enc.tags), run=config
        )
        self.eval_splits = tuple(s for s in ("valid", "test") if s in self.data)
        self.rank, self.world = 0, 1
        self._batches: dict[int, list[list[int]]] = {}

    def setup(self, rank: int, world_size: int) -> None:
        self.rank, self.world = rank, world_size

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        """Seeded shuffle; chunks of 50 batches sorted by length (little padding); batches
        shuffled."""
        if epoch not in self._batches:
            B, train = self.config.data.batch_size, self.data["train"]
            g = torch.Generator().manual_seed(self.seed * 1000 + epoch)
            order = torch.randperm(len(train), generator=g).tolist()
            span = 50 * B
            batches = []
            for k in range(0, len(order), span):
                chunk = sorted(order[k:k + span], key=lambda i: len(train[i][0]))
                batches += [chunk[j:j + B] for j in range(0, len(chunk), B)]
            if self.world > 1:
                batches = [b for b in batches if len(b) >= self.world]
            perm = torch.randperm(len(batches), generator=g).tolist()
            self._batches = {epoch: [batches[i] for i in perm]}
        return self._batches[epoch]

    def steps_per_epoch(self, epoch: int) -> int:
        return len(self._epoch_batches(epoch))

    def train_batches(self, epoch: int, start_step: int) -> Iterator[TagBatch]:
        train, d = self.data["train"], self.config.data
        g = torch.Generator().manual_seed(self.seed * 7919 + epoch * 131 + start_step)
        for ids in self._epoch_batches(epoch)[start_step:]:
            yield self.encoder.batch([train[i] for i in ids[self.rank::self.world]],
                                     unk_replace=d.unk_replace, generator=g)

    def initial_carry(self) -> Any:
        return None

    def training_step(self, model: nn.Module, batch: TagBatch, carry: Any) -> StepOutput:
        dev = next(model.parameters()).device
        loss, n = _loss(model, batch.to(dev))
        return StepOutput(loss / max(n, 1), None, n)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        if split not in self.data:
            raise ValueError(
                f"split {split!r} is empty or unknown; available: {', '.join(self.data)}"
            )
        return _evaluate(_unwrap(model), self.encoder, self.data[split],
                         self.config.data.eval_batch_size, self.tag_scheme)

    def data_splits(self) -> dict[str, Any]:
        """Each split's (words, word ids, tag ids) sentences, hashed for ``--resume``."""
        return dict(self.data)

    def write_assets(self, directory: Path) -> None:
        self.encoder.words.save(directory / "words.json")
        self.encoder.chars.save(directory / "chars.json")
        self.encoder.tags.save(directory / "tags.json")


def _unwrap(model: nn.Module) -> Tagger:
    """The Tagger inside a Fabric/DDP wrapper (its ``loss``/``decode`` are not ``forward``)."""
    for m in model.modules():
        if isinstance(m, Tagger):
            return m
    raise TypeError(f"expected a Tagger, got {type(model).__name__}")


def _loss(model: nn.Module, b: TagBatch):
    """The Tagger's loss; emissions through ``model``'s own forward, so that a DDP wrapper
    sees the graph."""
    tagger = _unwrap(model)
    return tagger.loss(b, None if tagger is model else model(b))


def build_tag_task(config: RunConfig, data_dir: str | None = None) -> TagTask:
    return TagTask(config, data_dir=data_dir)
