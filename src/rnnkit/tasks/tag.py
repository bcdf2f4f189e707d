"""Sequence tagging: CoNLL-U / CoNLL-2003 sentences -> char+word BiRNN -> softmax or CRF tags.

The data (UD English EWT by name, a folder with train/dev/test files, or explicit files;
see :mod:`rnnkit.data.conll`) is read once; vocabularies of lowercased words, characters
and tags come from the training split. Per batch of sentences::

    w_t   = words[lower(token_t)]; training: a word seen once in training becomes <unk>
            with probability unk_replace (so the character features learn unknown words)
    e     = model(batch)                               (B, T, K) emissions
    loss  = sum over tokens -log softmax(e_t)[y_t] / tokens     (or the CRF's -log p(y|x))
    metrics: loss (per token), acc (token accuracy); with BIO/BIOES tags also span
             precision, recall and f1 (seqeval, CoNLL-style exact spans)

A checkpoint stores ``words.json``, ``chars.json`` and ``tags.json`` (:class:`Vocab`), so
:func:`predict_tags` needs nothing else. :func:`evaluate_tag_checkpoint` adds a per-tag
report and a confusion-matrix PNG. A gold tag that training never saw is an error naming
its file and line.

Example::

    cfg = load_recipe("configs/ud_ewt_upos.yaml")
    summary = run_training(cfg, recipe_name="ud_ewt_upos")
    predict_tags("runs/ud_ewt_upos/best", ["I saw her duck ."])
    # [{"tokens": ["I", "saw", ...], "tags": ["PRON", "VERB", "PRON", "NOUN", "PUNCT"], ...}]

The parts, bottom up: :mod:`rnnkit.tasks.tag_data` (the ``data:`` section, the encoder,
reading the files), :mod:`rnnkit.tasks.tag_task` (metrics and the Task the Trainer runs)
and this module: checkpoints (load, predict, evaluate with reports) and the pipeline's
TaskSpec. It re-exports the parts' public names.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnkit.data.vocab import Vocab
from rnnkit.models.tagger import Tagger, TaggerConfig
from rnnkit.tasks.predictors import text_predictor
from rnnkit.tasks.tag_data import PAD as PAD
from rnnkit.tasks.tag_data import UNK as UNK
from rnnkit.tasks.tag_data import (
    TagDataConfig,
    TagEncoder,
    _data_files,
    _file_scheme,
    _prepare,
    _read,
)
from rnnkit.tasks.tag_data import build_encoder as build_encoder
from rnnkit.tasks.tag_task import TagTask, _run, build_tag_task, tag_metrics
from rnnkit.train.checkpoint import (
    CheckpointError,
    load_model_weights,
    read_run_config,
)
from rnnkit.train.config import RunConfig
from rnnkit.train.sizing import build_model
from rnnkit.train.task import TaskSpec, register_task

__all__ = ["TagDataConfig", "TagTask", "TagEncoder", "load_tag_checkpoint", "predict_tags",
           "predict_inputs", "evaluate_tag_checkpoint", "tag_metrics", "plot_confusion"]


# --------------------------------------------------------------------------- checkpoints


def load_tag_checkpoint(directory: str | Path, *, map_location: str = "cpu"
                        ) -> tuple[Tagger, TagEncoder, RunConfig]:
    """``(model (eval mode), encoder with the training vocabularies, run config)``."""
    d = Path(directory)
    _, cfg = read_run_config(d, task="tag")
    vocabs = {}
    for name in ("words.json", "chars.json", "tags.json"):
        if not (d / name).is_file():
            raise CheckpointError(f"{d}: not a complete tagging checkpoint ({name} is missing)")
        try:
            vocabs[name] = Vocab.load(d / name)
        except ValueError as e:
            raise CheckpointError(f"{d / name}: corrupted ({e})") from None
    enc = TagEncoder(vocabs["words.json"], vocabs["chars.json"], vocabs["tags.json"],
                     lowercase=cfg.data.lowercase, max_chars=cfg.data.max_chars)
    model = build_model(Tagger, cfg.model, len(enc.words), len(enc.chars), len(enc.tags), run=cfg,
                        training=False, source=d / "config.json")
    load_model_weights(model, d)
    model.to(map_location).eval()
    return model, enc, cfg


@torch.no_grad()
def predict_tags(directory: str | Path, sentences: Sequence[str | Sequence[str]],
                 batch_size: int = 64) -> list[dict[str, Any]]:
    """Tags of each sentence (a string, split on whitespace, or a list of tokens).

    Returns ``[{"input", "tokens", "tags"}]``, one per sentence, in order.
    """
    model, enc, _ = load_tag_checkpoint(directory)
    toks = [s.split() if isinstance(s, str) else list(s) for s in sentences]
    for k, t in enumerate(toks):
        if not t:
            raise ValueError(f"input {k + 1}: empty sentence; expected at least one token")
    data = [(t, enc.word_ids(t), None) for t in toks]
    _, paths = _run(model, enc, data, batch_size)
    return [{"input": s if isinstance(s, str) else " ".join(s), "tokens": t,
             "tags": enc.tags.decode(p)} for s, t, p in zip(sentences, toks, paths)]


def predict_inputs(checkpoint: str | Path, inputs: list[str]) -> list[dict[str, Any]]:
    """``rnnkit predict`` for tagging checkpoints: each input is a sentence; its ``"text"`` is
    ``token/TAG`` pairs separated by spaces."""
    out = predict_tags(checkpoint, inputs)
    for r in out:
        r["text"] = " ".join(f"{w}/{t}" for w, t in zip(r["tokens"], r["tags"]))
    return out


def _per_tag(gold: list[str], pred: list[str], labels: list[str]) -> tuple[dict, np.ndarray]:
    """Per-tag precision/recall/F1/support and the confusion matrix (rows gold, cols predicted)."""
    k = {t: i for i, t in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(cm, ([k[g] for g in gold], [k[p] for p in pred]), 1)
    tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    report = {}
    for i, t in enumerate(labels):
        p = tp[i] / predicted[i] if predicted[i] else 0.0
        r = tp[i] / support[i] if support[i] else 0.0
        report[t] = {"precision": float(p), "recall": float(r),
                     "f1": float(2 * p * r / (p + r)) if p + r else 0.0, "support": int(support[i])}
    return report, cm


def plot_confusion(cm: np.ndarray, labels: list[str], path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (gold rows, predicted columns) as a PNG, written
    atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * n + 2), max(4.0, 0.45 * n + 1.5)))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title or "tag confusion (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a figure is not
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return path


def evaluate_tag_checkpoint(directory: str | Path, *, split: str = "test", data: str | None = None,
                            data_dir: str | None = None, report_dir: str | Path | None = None
                            ) -> dict[str, Any]:
    """Loss, token accuracy, span P/R/F1 (BIO/BIOES), per-tag report of a checkpoint.

    Args:
        split: a split of the checkpoint's own data ("valid", "test"), unless ``data`` is given.
        data: a tagged file in the training format to evaluate instead.
        report_dir: if given, ``confusion_<split>.png`` and ``report_<split>.json`` go there.
    """
    model, enc, cfg = load_tag_checkpoint(directory)
    d: TagDataConfig = cfg.data
    if data is not None:
        source: str | Path = Path(data)
        sents = _read(d, Path(data))
        split = Path(data).name
    else:
        files = _data_files(d, data_dir)
        if split not in files:
            raise ValueError(f"--split {split}: not in the data; available: {', '.join(files)}")
        source = files[split]
        sents = _read(d, source)
    scheme = _file_scheme(d, sents, source) if d.scheme == "auto" else d.scheme
    sents = _prepare(sents, scheme, d.encoding)
    tag_scheme = scheme if d.encoding == "same" else d.encoding
    data = [(s.words, enc.word_ids(s.words), enc.tag_ids(s, source)) for s in sents]
    loss, paths = _run(model, enc, data, d.eval_batch_size)
    gold = [enc.tags.decode(x[2]) for x in data]
    pred = [enc.tags.decode(p) for p in paths]
    n = sum(len(g) for g in gold)
    out: dict[str, Any] = {"split": split, "sentences": len(data), "tokens": n,
                           "loss": loss / n, **tag_metrics(gold, pred, tag_scheme)}
    flat_g = [t for g in gold for t in g]
    flat_p = [t for p in pred for t in p]
    out["per_tag"], cm = _per_tag(flat_g, flat_p, list(enc.tags.itos))
    if tag_scheme in ("bio", "bioes"):
        from seqeval.metrics import classification_report

        rep = classification_report(gold, pred, output_dict=True, zero_division=0)
        out["per_span_type"] = {k: {m: float(v) for m, v in r.items()} for k, r in rep.items()}
    if report_dir is not None:
        rd = Path(report_dir)
        rd.mkdir(parents=True, exist_ok=True)
        out["confusion_png"] = str(
            plot_confusion(
                cm,
                list(enc.tags.itos),
                rd / f"confusion_{split}.png",
                f"{split}: token accuracy {out['acc']:.4f}",
            )
        )
        rep_path = rd / f"report_{split}.json"
        tmp = rep_path.with_name(f".{rep_path.name}.tmp")
        tmp.write_text(json.dumps(out, indent=2) + "\n")
        os.replace(tmp, rep_path)
    return out


SPEC = register_task(TaskSpec(
    name="tag",
    data_config=TagDataConfig,
    model_config=TaggerConfig,
    build=build_tag_task,
    description="sequence tagging (CoNLL-U / CoNLL-2003; char+word BiRNN, softmax or CRF)",
    evaluate=evaluate_tag_checkpoint,
    predict=predict_inputs,
    predictor=text_predictor,
))
