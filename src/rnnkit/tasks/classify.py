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

The parts, bottom up: :mod:`rnnkit.tasks.classify_data` (the ``data:`` section, splits,
encoded texts, batches), :mod:`rnnkit.tasks.classify_task` (metrics and the Task the
Trainer runs) and this module: checkpoints (load, predict, evaluate with a confusion plot)
and the pipeline's TaskSpec. It re-exports the parts' public names.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnkit.data.textcls import TextDataError
from rnnkit.data.tokenize import TextTokenizer
from rnnkit.models.classify import ClassifierConfig, TextClassifier
from rnnkit.tasks.classify_data import KNOWN_TEXTS as KNOWN_TEXTS
from rnnkit.tasks.classify_data import ClassifyDataConfig, _prepare
from rnnkit.tasks.classify_data import collate as collate
from rnnkit.tasks.classify_task import (
    ClassifyTask,
    _logits,
    build_classify_task,
    classification_report,
)
from rnnkit.tasks.predictors import text_predictor
from rnnkit.train.checkpoint import (
    CheckpointError,
    load_model_weights,
    read_run_config,
)
from rnnkit.train.config import RunConfig
from rnnkit.train.sizing import build_model
from rnnkit.train.task import TaskSpec, register_task

__all__ = ["ClassifyDataConfig", "ClassifyTask", "load_classify_checkpoint", "predict_texts",
           "predict_inputs", "evaluate_classify_checkpoint", "classification_report",
           "plot_confusion"]


# --------------------------------------------------------------------------- reports


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


def _read_assets(d: Path) -> tuple[TextTokenizer, list[str], bool]:
    """``(tokenizer, classes, multi_label)`` of a classify checkpoint."""
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
    return tok, classes, multi


def load_classify_task(directory: Path, config: RunConfig,
                       data_dir: str | None = None) -> ClassifyTask:
    """The task of a checkpoint's run with the checkpoint's tokenizer and classes (a resume:
    trained again, a WordPiece vocabulary can number its tokens otherwise)."""
    tok, classes, multi = _read_assets(Path(directory))
    return ClassifyTask(config, data_dir=data_dir, tokenizer=tok, classes=classes,
                        multi_label=multi)


def load_classify_checkpoint(directory: str | Path, *, map_location: str = "cpu"):
    """``(model (eval mode), tokenizer, classes, multi_label, run config)``."""
    d = Path(directory)
    _, cfg = read_run_config(d, task="classify")
    tok, classes, multi = _read_assets(d)
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
    load=load_classify_task,
    evaluate=evaluate_classify_checkpoint,
    predict=predict_inputs,
    predictor=text_predictor,
))
