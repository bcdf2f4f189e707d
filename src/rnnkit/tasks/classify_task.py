"""The text-classification Task the Trainer runs, and its metrics.

:func:`classification_report` scores logits (accuracy, macro F1, per-class precision and
recall, confusion matrix); :class:`ClassifyTask` reads the data
(:mod:`rnnkit.tasks.classify_data`), trains or reuses a tokenizer, builds the
:class:`~rnnkit.models.classify.TextClassifier` and serves the Trainer's batches and
evaluations; :func:`_logits` runs a model over encoded texts in length-sorted batches.
:mod:`rnnkit.tasks.classify` registers it.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.textcls import (
    TextDataError,
    clean_markup,
    encode_labels,
    label_classes,
    load_vectors,
)
from rnnkit.data.tokenize import TextTokenizer, length_buckets, train_tokenizer
from rnnkit.models.classify import TextClassifier
from rnnkit.tasks.classify_data import (
    DEFAULT_SOURCE,
    ClassifyDataConfig,
    _hold_out,
    _prepare,
    _read_splits,
    _subsets,
    collate,
)
from rnnkit.train.config import ConfigError, RunConfig
from rnnkit.train.sizing import build_model
from rnnkit.train.task import StepOutput

__all__ = ["ClassifyTask", "build_classify_task", "classification_report"]


# --------------------------------------------------------------------------- metrics


def classification_report(logits: Tensor, y: Tensor, classes: list[str], *,
                          multi_label: bool = False) -> dict[str, Any]:
    """Accuracy, macro F1, per-class precision/recall and the confusion matrix (torchmetrics).

    Single-label: ``acc`` is the share of argmax hits; ``confusion[i][j]`` counts true
    class i predicted as j. Multi-label (p >= 0.5 per class): ``acc`` is the exact-match
    ratio, F1/precision/recall are per label, ``confusion`` is per label ``[[tn, fp], [fn, tp]]``.
    """
    from torchmetrics.functional.classification import (
        multiclass_accuracy,
        multiclass_confusion_matrix,
        multiclass_f1_score,
        multiclass_precision,
        multiclass_recall,
        multilabel_confusion_matrix,
        multilabel_exact_match,
        multilabel_f1_score,
        multilabel_precision,
        multilabel_recall,
    )

    K = len(classes)
    if multi_label:
        p, t = torch.sigmoid(logits.float()), y.long()
        acc = multilabel_exact_match(p, t, num_labels=K)
        f1 = multilabel_f1_score(p, t, num_labels=K, average="macro")
        prec = multilabel_precision(p, t, num_labels=K, average=None)
        rec = multilabel_recall(p, t, num_labels=K, average=None)
        conf = multilabel_confusion_matrix(p, t, num_labels=K)
    else:
        pred = logits.argmax(-1)
        acc = multiclass_accuracy(pred, y, num_classes=K, average="micro")
        f1 = multiclass_f1_score(pred, y, num_classes=K, average="macro")
        prec = multiclass_precision(pred, y, num_classes=K, average=None)
        rec = multiclass_recall(pred, y, num_classes=K, average=None)
        conf = multiclass_confusion_matrix(pred, y, num_classes=K)
    return {"acc": float(acc), "macro_f1": float(f1),
            "precision": {c: float(v) for c, v in zip(classes, prec)},
            "recall": {c: float(v) for c, v in zip(classes, rec)},
            "confusion": conf.tolist()}


# --------------------------------------------------------------------------- task


class ClassifyTask:
    """The text-classification task for :class:`~rnnkit.train.Trainer`.

    Args:
        config: the run config (``data``: :class:`ClassifyDataConfig`, ``model``:
            :class:`~rnnkit.models.classify.ClassifierConfig`).
        data_dir: overrides ``data.data_dir`` (the CLI's ``--data-dir``).
        tokenizer / classes: reuse a checkpoint's (evaluation) instead of training a
            tokenizer and taking the training labels; a label outside ``classes`` is an error.
    """

    name = "classify"
    item_name = "texts"
    loss_name = "cross-entropy (nats per text)"  # the y-label of curves.png

    def __init__(self, config: RunConfig, *, data_dir: str | None = None,
                 tokenizer: TextTokenizer | None = None, classes: list[str] | None = None,
                 multi_label: bool | None = None):
        d: ClassifyDataConfig = config.data
        for key in ("batch_size", "eval_batch_size", "bucket_factor"):
            if getattr(d, key) < 1:
                raise ConfigError(
                    f"config key 'data.{key}': expected a positive integer, got {getattr(d, key)}"
                )
        for key in ("max_tokens", "max_train", "max_eval"):  # x[:-3] would drop 3, not keep 3
            if getattr(d, key) is not None and getattr(d, key) < 1:
                raise ConfigError(
                    f"config key 'data.{key}': expected a positive integer or null, "
                    f"got {getattr(d, key)}"
                )
        if not 0.0 <= d.valid_fraction < 1.0:
            raise ConfigError(
                "config key 'data.valid_fraction': expected a fraction in [0, 1), "
                f"got {d.valid_fraction}"
            )
        self.config, self.seed = config, config.trainer.seed
        splits = _read_splits(d, data_dir)
        if "valid" not in splits and d.valid_fraction > 0:
            tr, va = _hold_out(splits["train"], d.valid_fraction, self.seed)
            splits["valid"], splits["train"] = (
                splits["train"].subset(va),
                splits["train"].subset(tr),
            )
        splits = _subsets(splits, d.max_train, d.max_eval, self.seed)  # quick experiments
        self.multi_label = splits["train"].multi_label if multi_label is None else multi_label
        self.classes = classes if classes is not None else label_classes(splits["train"].labels)
        if len(self.classes) < (1 if self.multi_label else 2):
            where = d.train or d.source or DEFAULT_SOURCE
            raise TextDataError(f"{where}: found {len(self.classes)} label(s) "
                                f"{self.classes}; expected at least 2 classes")
        labels = {s: encode_labels(data, self.classes) for s, data in splits.items()}
        if tokenizer is None:
            texts = splits["train"].texts
            tokenizer = train_tokenizer(
                [clean_markup(t) for t in texts] if d.clean_markup else texts, kind=d.tokenizer,
                vocab_size=d.vocab_size, lowercase=d.lowercase, min_freq=d.min_freq,
                reversible=d.reversible or d.tokenizer != "word")
        self.tokenizer = tokenizer
        self.data = {s: (_prepare(data.texts, tokenizer, d), torch.from_numpy(labels[s]))
                     for s, data in splits.items() if len(data)}
        self.where = {s: data.where for s, data in splits.items()}
        self.model = build_model(
            TextClassifier, config.model, tokenizer.vocab_size, len(self.classes), run=config
        )
        self.vectors_found = 0
        if d.vectors:
            vecs, found = load_vectors(d.vectors, tokenizer)
            self.vectors_found = self.model.load_vectors(
                torch.from_numpy(vecs), torch.from_numpy(found)
            )
        self.eval_splits = tuple(s for s in ("valid", "test") if s in self.data)
        self.rank, self.world = 0, 1

    # ------------------------------------------------------------------ Trainer contract

    def describe(self) -> dict[str, str]:
        """What the run's header says of the data (rnnkit.train.run)."""
        sizes = ", ".join(f"{s} {len(y):,}" for s, (_, y) in self.data.items())
        return {"texts": sizes, "vocabulary": f"{self.tokenizer.vocab_size:,} tokens",
                "classes": f"{len(self.classes)}" + (" (multi-label)" if self.multi_label else "")}

    def setup(self, rank: int, world_size: int) -> None:
        self.rank, self.world = rank, world_size

    def _batches(self, epoch: int) -> list[list[int]]:
        ids = self.data["train"][0]
        d = self.config.data
        return length_buckets([len(x) for x in ids], d.batch_size, shuffle=True,
                              seed=self.seed * 1000 + epoch, bucket_factor=d.bucket_factor)

    def steps_per_epoch(self, epoch: int) -> int:
        return len(self._batches(epoch))

    def train_batches(self, epoch: int, start_step: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Length-bucketed batches (seeded per epoch); each rank takes every W-th text of one."""
        ids, y = self.data["train"]
        for batch in self._batches(epoch)[start_step:]:
            idx = batch[self.rank::self.world] or batch[:1]
            x, lengths = collate([ids[i] for i in idx], self.tokenizer.pad_id)
            yield x, lengths, y[idx]

    def initial_carry(self) -> Any:
        return None

    def loss(self, logits: Tensor, y: Tensor, reduction: str = "mean") -> Tensor:
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(
                logits.float(), y.float(), reduction=reduction
            )
        return F.cross_entropy(logits.float(), y, reduction=reduction)

    def training_step(self, model: nn.Module, batch, carry: Any) -> StepOutput:
        dev = next(model.parameters()).device
        x, lengths, y = batch
        logits = model(x.to(dev), lengths.to(dev))  # (B, K)
        return StepOutput(self.loss(logits, y.to(dev)), None, int(len(y)))

    @torch.no_grad()
    def predict_split(self, model: nn.Module, split: str) -> tuple[Tensor, Tensor]:
        """``(logits (N, K), targets)`` of ``split`` in data order."""
        if split not in self.data:
            raise ValueError(
                f"split {split!r} is empty or unknown; available: {', '.join(self.data)}"
            )
        ids, y = self.data[split]
        return _logits(model, ids, self.config.data.eval_batch_size, self.tokenizer.pad_id), y

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        logits, y = self.predict_split(model, split)
        loss = float(self.loss(logits, y, reduction="sum")) / len(y)
        if self.multi_label:
            loss /= len(self.classes)
        rep = classification_report(logits, y, self.classes, multi_label=self.multi_label)
        return {"loss": loss, "acc": rep["acc"], "macro_f1": rep["macro_f1"]}

    def data_splits(self) -> dict[str, Any]:
        """Each split's (token ids, labels), hashed for ``--resume``."""
        return dict(self.data)

    def write_assets(self, directory: Path) -> None:
        self.tokenizer.save(directory / "tokenizer.json")
        labels = {"classes": self.classes, "multi_label": self.multi_label}
        (directory / "labels.json").write_text(json.dumps(labels) + "\n")


@torch.no_grad()
def _logits(model: nn.Module, ids: list[Tensor], batch_size: int, pad_id: int) -> Tensor:
    """Logits in data order; batches sorted by length to limit padding."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = torch.empty(len(ids), model.num_classes)
    for batch in length_buckets([len(x) for x in ids], batch_size, shuffle=False):
        x, lengths = collate([ids[i] for i in batch], pad_id)
        out[batch] = model(x.to(dev), lengths.to(dev)).float().cpu()
    model.train(was)
    return out


def build_classify_task(config: RunConfig, data_dir: str | None = None) -> ClassifyTask:
    return ClassifyTask(config, data_dir=data_dir)
