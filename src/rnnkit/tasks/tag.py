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
"""
from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from rnnkit.data.conll import (
    ConllError,
    Sentence,
    convert_tags,
    detect_scheme,
    read_tagged,
    resolve_tagging_data,
)
from rnnkit.data.vocab import Vocab
from rnnkit.models.tagger import TagBatch, Tagger, TaggerConfig
from rnnkit.tasks.predictors import text_predictor
from rnnkit.train.checkpoint import CheckpointError, load_model_weights, read_config
from rnnkit.train.config import ConfigError, RunConfig, build_run_config
from rnnkit.train.sizing import build_model
from rnnkit.train.task import StepOutput, TaskSpec, register_task

__all__ = ["TagDataConfig", "TagTask", "TagEncoder", "load_tag_checkpoint", "predict_tags",
           "predict_inputs", "evaluate_tag_checkpoint", "tag_metrics", "plot_confusion"]

PAD, UNK = "<pad>", "<unk>"


@dataclass
class TagDataConfig:
    """The ``data:`` section of a tagging recipe.

    Attributes:
        source: "ud_english_ewt", a folder (files named *train*, *dev*/*valid*, *test*) or
            a training file.
        data_dir: where known datasets live (else ``--data-dir``, $RNNKIT_DATA, the cache).
        train / valid / test: explicit files; override what ``source`` found.
        format: "conllu", "columns" (CoNLL-2003 style) or "auto" (by name/content).
        column: CoNLL-U tag column, "upos" or "xpos".
        token_column / tag_column: column files: where the token and the tag are.
        scheme: tag scheme of column files: "bio", "bioes", "none" or "auto" (detected).
        encoding: scheme the model predicts: "same" as the files, "bio" or "bioes".
        lowercase: look words up lowercased (the characters always keep case).
        min_freq: training words rarer than this are <unk>.
        unk_replace: probability that a training word seen once is fed as <unk>.
        max_chars: longer tokens keep their first and last max_chars/2 characters.
        valid_fraction: share of the training sentences held out when there is no valid split.
        max_sentences: use only the first N training sentences (quick experiments).
        batch_size / eval_batch_size: sentences per batch.
    """

    source: str = "ud_english_ewt"
    data_dir: str | None = None
    train: str | None = None
    valid: str | None = None
    test: str | None = None
    format: Literal["auto", "conllu", "columns"] = "auto"
    column: Literal["upos", "xpos"] = "upos"
    token_column: int = 0
    tag_column: int = -1
    scheme: Literal["auto", "none", "bio", "bioes"] = "auto"
    encoding: Literal["same", "bio", "bioes"] = "same"
    lowercase: bool = True
    min_freq: int = 1
    unk_replace: float = 0.5
    max_chars: int = 30
    valid_fraction: float = 0.1
    max_sentences: int | None = None
    batch_size: int = 32
    eval_batch_size: int = 256


# --------------------------------------------------------------------------- encoding


class TagEncoder:
    """Sentences <-> :class:`TagBatch` with the word, character and tag vocabularies.

    Args:
        words / chars / tags: vocabularies (``words`` and ``chars`` start with <pad>, <unk>).
        lowercase / max_chars: as in :class:`TagDataConfig`.
        rare: word ids eligible for <unk> replacement during training (seen once).
    """

    def __init__(self, words: Vocab, chars: Vocab, tags: Vocab, *, lowercase: bool = True,
                 max_chars: int = 30, rare: set[int] | None = None):
        self.words, self.chars, self.tags = words, chars, tags
        self.lowercase, self.max_chars = lowercase, max_chars
        self.rare = torch.tensor(sorted(rare or ()), dtype=torch.long)
        self._char_cache: dict[str, list[int]] = {}

    def word_ids(self, tokens: Sequence[str]) -> list[int]:
        return self.words.encode(t.lower() if self.lowercase else t for t in tokens)

    def char_ids(self, token: str) -> list[int]:
        ids = self._char_cache.get(token)
        if ids is None:
            t, h = token, self.max_chars // 2
            if len(t) > self.max_chars:
                t = t[:h] + t[len(t) - (self.max_chars - h):]
            ids = self._char_cache[token] = self.chars.encode(t)
        return ids

    def tag_ids(self, s: Sentence, source: str | os.PathLike) -> list[int]:
        """Tag ids; a tag outside the training tags is a :class:`ConllError` naming the line."""
        out = []
        for k, t in enumerate(s.tags):
            i = self.tags.stoi.get(t)
            if i is None:
                where = f"{source}:{s.lines[k]}" if s.lines else str(source)
                raise ConllError(f"{where}: tag {t!r} was never seen in training; expected one of "
                                 f"{', '.join(self.tags.itos)}")
            out.append(i)
        return out

    def batch(self, sents: Sequence[tuple[list[str], list[int], list[int] | None]], *,
              unk_replace: float = 0.0, generator: torch.Generator | None = None) -> TagBatch:
        """Pad ``(tokens, word_ids, tag_ids or None)`` triples into a :class:`TagBatch`."""
        B, T = len(sents), max(len(s[0]) for s in sents)
        words = torch.zeros(B, T, dtype=torch.long)
        index = torch.zeros(B, T, dtype=torch.long)
        has_tags = sents[0][2] is not None
        tags = torch.zeros(B, T, dtype=torch.long) if has_tags else None
        rows: dict[str, int] = {}
        for b, (tokens, wids, tids) in enumerate(sents):
            words[b, :len(wids)] = torch.tensor(wids)
            index[b, :len(tokens)] = torch.tensor([rows.setdefault(t, len(rows)) for t in tokens])
            if has_tags:
                tags[b, :len(tids)] = torch.tensor(tids)
        lengths = torch.tensor([len(s[0]) for s in sents])
        if unk_replace > 0 and len(self.rare):
            drop = torch.isin(words, self.rare) & (
                torch.rand(B, T, generator=generator) < unk_replace
            )
            words = words.masked_fill(drop, self.words.unk_id)
        cids = [self.char_ids(t) for t in rows]
        char_lengths = torch.tensor([len(c) for c in cids])
        chars = torch.zeros(len(cids), int(char_lengths.max()), dtype=torch.long)
        for u, c in enumerate(cids):
            chars[u, :len(c)] = torch.tensor(c)
        return TagBatch(words, lengths, chars, char_lengths, index, tags)


def _prepare(sents: list[Sentence], scheme: str, encoding: str) -> list[Sentence]:
    if scheme in ("bio", "bioes") and encoding != "same":
        return [Sentence(s.words, convert_tags(s.tags, encoding), s.lines) for s in sents]
    return sents


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

    def __init__(self, config: RunConfig, *, data_dir: str | None = None):
        d: TagDataConfig = config.data
        for key in ("batch_size", "eval_batch_size", "max_chars", "min_freq"):
            if getattr(d, key) < 1:
                raise ConfigError(f"config key 'data.{key}': expected a positive integer, "
                                  f"got {getattr(d, key)}")
        if not 0.0 <= d.unk_replace <= 1.0 or not 0.0 <= d.valid_fraction < 1.0:
            raise ConfigError(f"data.unk_replace={d.unk_replace} / data.valid_fraction="
                              f"{d.valid_fraction}: expected probabilities")
        self.config, self.seed = config, config.trainer.seed
        self.files = _data_files(d, data_dir)
        raw = {s: _read(d, p) for s, p in self.files.items()}
        self.scheme = _file_scheme(d, raw["train"])
        # the tag set is the whole training file's, also when max_sentences takes a subset
        tagset = {t for x in _prepare(raw["train"], self.scheme, d.encoding) for t in x.tags}
        if d.max_sentences:
            raw["train"] = raw["train"][:d.max_sentences]
        if "valid" not in raw and d.valid_fraction > 0:
            rng = np.random.default_rng(self.seed)
            perm = rng.permutation(len(raw["train"]))
            cut = round(d.valid_fraction * len(perm))
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


def _data_files(d: TagDataConfig, data_dir: str | None) -> dict[str, Path]:
    files: dict[str, Path] = {}
    if d.source:
        root = data_dir or d.data_dir
        files = resolve_tagging_data(d.source, data_dir=root)
    for split in ("train", "valid", "test"):
        if getattr(d, split):
            p = Path(getattr(d, split)).expanduser()
            if not p.is_file():
                raise FileNotFoundError(f"data.{split} {p}: no such file")
            files[split] = p
    if "train" not in files:
        raise ConfigError("data: no training file; set data.source or data.train")
    return files


def _read(d: TagDataConfig, path: Path) -> list[Sentence]:
    return read_tagged(path, d.format, d.column, d.token_column, d.tag_column, d.scheme)


def _file_scheme(d: TagDataConfig, train: list[Sentence]) -> str:
    if d.scheme != "auto":
        return d.scheme
    return detect_scheme(t for s in train for t in s.tags)


def build_encoder(train: list[Sentence], d: TagDataConfig, tags: set[str] | None = None
                  ) -> TagEncoder:
    """Vocabularies from the training sentences (words lowercased if ``d.lowercase``); the
    tags are ``tags`` if given (sorted), else those of ``train``."""
    words = [w.lower() if d.lowercase else w for s in train for w in s.words]
    wv = Vocab.build(words, min_freq=d.min_freq, specials=(PAD, UNK), level="word")
    cv = Vocab.build((c for s in train for w in s.words for c in w), specials=(PAD, UNK),
                     level="char")
    tv = Vocab(sorted(tags if tags is not None else {t for s in train for t in s.tags}), unk=None)
    counts = Counter(words)
    rare = {wv.stoi[w] for w, c in counts.items() if c == 1 and w in wv.stoi}
    return TagEncoder(wv, cv, tv, lowercase=d.lowercase, max_chars=d.max_chars, rare=rare)


def build_tag_task(config: RunConfig, data_dir: str | None = None) -> TagTask:
    return TagTask(config, data_dir=data_dir)




# --------------------------------------------------------------------------- checkpoints


def load_tag_checkpoint(directory: str | Path, *, map_location: str = "cpu"
                        ) -> tuple[Tagger, TagEncoder, RunConfig]:
    """``(model (eval mode), encoder with the training vocabularies, run config)``."""
    d = Path(directory)
    meta = read_config(d, task="tag")
    try:
        cfg = build_run_config(meta["config"])
    except ConfigError as e:
        raise CheckpointError(f"{d / 'config.json'}: invalid config ({e})") from None
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
    scheme = _file_scheme(d, sents) if d.scheme == "auto" else d.scheme
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
