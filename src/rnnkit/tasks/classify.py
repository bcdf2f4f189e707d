"""Text classification: labelled texts -> tokenizer -> embedding/CNN/BiRNN/pooling -> label(s).

The data (IMDB, or CSV/TSV/JSONL files, or a folder per class; see
:mod:`rnnkit.data.textcls`) is read once, a tokenizer (:mod:`rnnkit.data.tokenize`) is
trained on the training part only, and every text is encoded and cut to ``max_tokens``.
Batches hold texts of similar length (:func:`~rnnkit.data.tokenize.length_buckets`).
Per batch::

    ids, lengths                                   (B, T) padded with 0, (B,)
    logits = model(ids, lengths)                   (B, K)
    loss   = mean_b -log softmax(logits)[b, y_b]   single-label; metrics: loss, acc, macro_f1
    loss   = mean_bk BCE(sigmoid(logits), y)       multi-label (label_sep set); p >= 0.5 is on

Splits: ``train`` (+ optional ``valid`` and ``test`` files); without a ``valid`` file a
seeded, per-class ``valid_fraction`` of train is held out for early stopping and model
selection, so ``test`` is only touched for the final number. A checkpoint stores
``tokenizer.json`` and ``labels.json``, so prediction needs nothing else.

Example::

    cfg = load_recipe("configs/imdb_bilstm.yaml")
    summary = run_training(cfg, recipe_name="imdb", data_dir="../shared/datasets")
    predict_texts("runs/imdb/best", ["A wonderful film."])  # [{"label": "pos", "prob": 0.97, ...}]
    evaluate_classify_checkpoint("runs/imdb/best", split="test", plot="confusion.png")
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.textcls import (
    LabeledTexts,
    TextDataError,
    clean_markup,
    encode_labels,
    label_classes,
    load_vectors,
    read_labeled,
    resolve_imdb,
    truncate,
)
from rnnkit.data.tokenize import TextTokenizer, length_buckets, train_tokenizer
from rnnkit.models.classify import ClassifierConfig, TextClassifier
from rnnkit.tasks.predictors import text_predictor
from rnnkit.train.checkpoint import CheckpointError, load_model_weights, read_config
from rnnkit.train.config import ConfigError, RunConfig, build_run_config
from rnnkit.train.sizing import build_model
from rnnkit.train.task import StepOutput, TaskSpec, register_task

__all__ = ["ClassifyDataConfig", "ClassifyTask", "load_classify_checkpoint", "predict_texts",
           "predict_inputs", "evaluate_classify_checkpoint", "classification_report",
           "plot_confusion"]

#: known datasets: name -> label renames (IMDB's CSV labels 1/0 are aclImdb's pos/neg)
KNOWN_TEXTS = {"imdb": {"0": "neg", "1": "pos"}}


@dataclass
class ClassifyDataConfig:
    """The ``data:`` section of a classify recipe.

    Attributes:
        source: "imdb" (a known dataset), or None to read ``train``/``valid``/``test``.
        train / valid / test: CSV, TSV, JSONL files (plain or .gz) or folders per class.
        format: "auto" (from the suffix), "csv", "tsv" or "jsonl".
        text_column / label_column: the columns (JSONL: keys) of tables.
        label_sep: separator of several labels in one cell (multi-label); None = one label.
        label_names: renames of label values, e.g. {"0": "neg", "1": "pos"}.
        valid_fraction: share of train held out (per class, seeded) when no ``valid`` file.
        clean_markup: replace HTML-like tags (IMDB's ``<br />``) by spaces.
        tokenizer: "word", "bpe" or "wordpiece" (trained on the training part).
        vocab_size / min_freq / lowercase: tokenizer training (see train_tokenizer).
        reversible: word-start markers in word/bpe tokens (exact decode); False gives one
            vocabulary entry per word form (word only).
        max_tokens / truncation: keep at most this many tokens: "head", "tail" or "head_tail".
        vectors: a GloVe/word2vec text file to initialise the embedding (None: random).
        batch_size / eval_batch_size / bucket_factor: batching (see length_buckets).
        max_train / max_eval: use only the first N texts of train / of each eval split
            after shuffling (quick experiments; None = all).
        data_dir: where known datasets live (else ``--data-dir``, $RNNKIT_DATA, the cache).
    """

    source: str | None = "imdb"
    train: str | None = None
    valid: str | None = None
    test: str | None = None
    format: Literal["auto", "csv", "tsv", "jsonl"] = "auto"
    text_column: str = "text"
    label_column: str = "label"
    label_sep: str | None = None
    label_names: dict[str, str] = field(default_factory=dict)
    valid_fraction: float = 0.1
    clean_markup: bool = False
    tokenizer: Literal["word", "bpe", "wordpiece"] = "word"
    vocab_size: int = 25_000
    min_freq: int = 1
    lowercase: bool = True
    reversible: bool = False
    max_tokens: int | None = 400
    truncation: Literal["head", "tail", "head_tail"] = "head"
    vectors: str | None = None
    batch_size: int = 64
    eval_batch_size: int = 256
    bucket_factor: int = 50
    max_train: int | None = None
    max_eval: int | None = None
    data_dir: str | None = None


def _read_splits(d: ClassifyDataConfig, data_dir: str | None) -> dict[str, LabeledTexts]:
    """Every split present, labels renamed; ``train`` always."""
    if d.source is not None:
        if d.source not in KNOWN_TEXTS:
            raise ConfigError(
                f"config key 'data.source': unknown dataset {d.source!r}; expected one "
                f"of {', '.join(KNOWN_TEXTS)} or null with data.train set"
            )
        paths = resolve_imdb(data_dir or d.data_dir)
        renames = {**KNOWN_TEXTS[d.source], **d.label_names}
    else:
        if d.train is None:
            raise ConfigError(
                "config key 'data.train': expected a file or folder (or set data.source)"
            )
        paths = {s: p for s in ("train", "valid", "test") if (p := getattr(d, s)) is not None}
        renames = d.label_names
    out = {}
    for split, path in paths.items():
        data = read_labeled(
            path, d.text_column, d.label_column, fmt=d.format, label_sep=d.label_sep
        )
        if renames:
            data.labels = [tuple(renames.get(x, x) for x in ls) for ls in data.labels]
        out[split] = data
    return out


def _hold_out(data: LabeledTexts, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, valid) indices: per class (first label) a seeded ``fraction`` goes to valid."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for i, ls in enumerate(data.labels):
        by_class.setdefault(ls[0] if ls else "", []).append(i)
    valid: list[int] = []
    for key in sorted(by_class):
        idx = np.array(by_class[key])
        rng.shuffle(idx)
        valid.extend(idx[:round(fraction * len(idx))].tolist())
    vs = set(valid)
    return [i for i in range(len(data)) if i not in vs], sorted(valid)


def _prepare(texts: list[str], tok: TextTokenizer, d: ClassifyDataConfig) -> list[Tensor]:
    """Clean, encode and truncate; each text keeps at least one id (``<unk>`` if none)."""
    if d.clean_markup:
        texts = [clean_markup(t) for t in texts]
    ids = tok.encode_batch(texts)
    return [torch.tensor(truncate(x, d.max_tokens, d.truncation) or [tok.unk_id]) for x in ids]


def collate(seqs: list[Tensor], pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """Pad 1-D id tensors into ``(ids (B, T), lengths (B,))``."""
    lengths = torch.tensor([len(s) for s in seqs])
    ids = torch.full((len(seqs), int(lengths.max())), pad_id, dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, :len(s)] = s
    return ids, lengths


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

    def __init__(self, config: RunConfig, *, data_dir: str | None = None,
                 tokenizer: TextTokenizer | None = None, classes: list[str] | None = None,
                 multi_label: bool | None = None):
        d: ClassifyDataConfig = config.data
        for key in ("batch_size", "eval_batch_size", "bucket_factor"):
            if getattr(d, key) < 1:
                raise ConfigError(
                    f"config key 'data.{key}': expected a positive integer, got {getattr(d, key)}"
                )
        if d.max_tokens is not None and d.max_tokens < 1:
            raise ConfigError(
                "config key 'data.max_tokens': expected a positive integer or null, "
                f"got {d.max_tokens}"
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
        rng = np.random.default_rng(self.seed)
        for split, data in splits.items():  # quick experiments: a seeded subset
            limit = d.max_train if split == "train" else d.max_eval
            if limit is not None and limit < len(data):
                splits[split] = data.subset(sorted(rng.permutation(len(data))[:limit].tolist()))
        self.multi_label = splits["train"].multi_label if multi_label is None else multi_label
        self.classes = classes if classes is not None else label_classes(splits["train"].labels)
        if len(self.classes) < (1 if self.multi_label else 2):
            raise TextDataError(f"{d.train or d.source}: found {len(self.classes)} label(s) "
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


def plot_confusion(confusion: list, classes: list[str], path: str | Path, title: str = "") -> Path:
    """A confusion-matrix heat map with counts (single-label: K x K; rows = true class)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(confusion)
    if m.ndim == 3:  # multi-label: one 2x2 per label, stacked as rows [tn fp fn tp]
        m = m.reshape(len(classes), 4)
        cols, rows = ["tn", "fp", "fn", "tp"], classes
    else:
        cols, rows = classes, classes
    size = max(3.0, 0.5 * len(cols) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, max(3.0, 0.5 * len(rows) + 2)))
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(int(m[i, j])), ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=45 if len(cols) > 4 else 0)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted" if m.shape[1] == len(classes) and cols is classes else "")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- checkpoints


def load_classify_checkpoint(directory: str | Path, *, map_location: str = "cpu"):
    """``(model (eval mode), tokenizer, classes, multi_label, run config)``."""
    d = Path(directory)
    meta = read_config(d, task="classify")
    try:
        cfg = build_run_config(meta["config"])
    except ConfigError as e:
        raise CheckpointError(f"{d / 'config.json'}: invalid config ({e})") from None
    for name in ("tokenizer.json", "labels.json"):
        if not (d / name).is_file():
            raise CheckpointError(f"{d}: not a complete classify checkpoint ({name} is missing)")
    try:
        labels = json.loads((d / "labels.json").read_text(encoding="utf-8"))
        classes, multi = list(labels["classes"]), bool(labels["multi_label"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{d / 'labels.json'}: corrupted ({type(e).__name__}: {e})") from None
    try:
        tok = TextTokenizer.load(d / "tokenizer.json")
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    model = build_model(
        TextClassifier,
        cfg.model,
        tok.vocab_size,
        len(classes),
        run=cfg,
        training=False,
        source=d / "config.json",
    )
    load_model_weights(model, d)
    model.to(map_location).eval()
    return model, tok, classes, multi, cfg


@torch.no_grad()
def predict_texts(directory: str | Path, texts: list[str], top_k: int = 1) -> list[dict[str, Any]]:
    """Label and probability of each text.

    Returns ``[{"input", "label", "prob", "top": [[label, prob], ...]}]``; multi-label
    checkpoints give ``"labels"`` (every label with p >= 0.5) and ``label`` = the likeliest.
    """
    model, tok, classes, multi, cfg = load_classify_checkpoint(directory)
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise TextDataError(f"input {i + 1}: empty text")
    ids = _prepare(list(texts), tok, cfg.data)
    logits = _logits(model, ids, cfg.data.eval_batch_size, tok.pad_id)
    probs = torch.sigmoid(logits) if multi else torch.softmax(logits, -1)  # (N, K)
    out = []
    for text, p in zip(texts, probs):
        q, idx = p.topk(min(top_k, len(classes)))
        top = [[classes[int(i)], float(v)] for v, i in zip(q, idx)]
        r = {"input": text, "label": top[0][0], "prob": top[0][1], "top": top}
        if multi:
            r["labels"] = [classes[k] for k in range(len(classes)) if p[k] >= 0.5]
        out.append(r)
    return out


def predict_inputs(
    checkpoint: str | Path, inputs: list[str], *, top_k: int = 1
) -> list[dict[str, Any]]:
    """``rnnkit predict`` for classify checkpoints: each input is a text.

    Each result's ``"text"``: ``label<TAB>prob[<TAB>label2 prob2 ...]<TAB>text`` (the text cut
    to 60 chars).
    """
    out = predict_texts(checkpoint, inputs, top_k=top_k)
    for r in out:
        rest = "  ".join(f"{label} {p:.3f}" for label, p in r["top"][1:])
        head = ",".join(r["labels"]) if "labels" in r else r["label"]
        snippet = r["input"] if len(r["input"]) <= 60 else r["input"][:57] + "..."
        r["text"] = f"{head}\t{r['prob']:.3f}" + (f"\t{rest}" if rest else "") + f"\t{snippet}"
    return out


def evaluate_classify_checkpoint(directory: str | Path, *, split: str = "test",
                                 data: str | Path | None = None, data_dir: str | None = None,
                                 plot: str | Path | None = None) -> dict[str, Any]:
    """Loss, accuracy, macro F1, per-class precision/recall and confusion matrix of a checkpoint.

    Args:
        directory: the checkpoint (``best/`` or ``last/``).
        split: a split of the checkpoint's own data ("valid", "test").
        data: instead, a labelled file or folder (same columns as the training data).
        data_dir: where the data lives (as ``--data-dir``).
        plot: write the confusion-matrix PNG here.

    Raises:
        TextDataError: a label the checkpoint never saw in training (file and line named).
    """
    model, tok, classes, multi, cfg = load_classify_checkpoint(directory)
    d: ClassifyDataConfig = cfg.data
    d.vectors = None  # the weights are in the checkpoint
    if data is not None:
        d.source, d.train, d.valid, d.test, d.valid_fraction = None, str(data), None, None, 0.0
        d.max_train = None
        split = "train"
    task = ClassifyTask(cfg, data_dir=data_dir, tokenizer=tok, classes=classes, multi_label=multi)
    if split not in task.data:
        raise ValueError(f"split={split!r}: not in the data; available: {', '.join(task.data)}")
    logits, y = task.predict_split(model, split)
    loss = float(task.loss(logits, y, reduction="sum")) / len(y) / (len(classes) if multi else 1)
    rep = classification_report(logits, y, classes, multi_label=multi)
    res = {"split": str(data) if data is not None else split, "texts": len(y), "loss": loss, **rep}
    if plot is not None:
        res["plot"] = str(plot_confusion(rep["confusion"], classes, plot,
                                         title=f"{Path(directory).parent.name} {res['split']}: "
                                               f"acc {rep['acc']:.4f}"))
    return res


SPEC = register_task(TaskSpec(
    name="classify",
    data_config=ClassifyDataConfig,
    model_config=ClassifierConfig,
    build=build_classify_task,
    description="text classification (tokenizer, optional CNN, bidirectional RNN, pooling)",
    evaluate=evaluate_classify_checkpoint,
    predict=predict_inputs,
    predictor=text_predictor,
))
