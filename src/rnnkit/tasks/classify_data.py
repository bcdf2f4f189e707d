"""The classify pipeline's data: the ``data:`` section, the splits, encoded texts, batches.

:class:`ClassifyDataConfig` is the recipe's ``data:`` section. :func:`_read_splits` reads
every split (IMDB by name, or files; see :mod:`rnnkit.data.textcls`) and renames labels;
:func:`_hold_out` holds a seeded, per-class share of train out for validation;
:func:`_prepare` cleans, encodes and truncates texts; :func:`collate` pads them into a
batch. Used by :mod:`rnnkit.tasks.classify_task` and :mod:`rnnkit.tasks.classify`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from rnnkit.data.textcls import (
    LabeledTexts,
    TextDataError,
    clean_markup,
    read_labeled,
    resolve_imdb,
    truncate,
)
from rnnkit.data.tokenize import TextTokenizer
from rnnkit.train.config import ConfigError, pick_source

__all__ = ["ClassifyDataConfig", "KNOWN_TEXTS", "collate"]


#: known datasets: name -> label renames (IMDB's CSV labels 1/0 are aclImdb's pos/neg)
KNOWN_TEXTS = {"imdb": {"0": "neg", "1": "pos"}}
#: the known dataset a recipe that names no file reads
DEFAULT_SOURCE = "imdb"


@dataclass
class ClassifyDataConfig:
    """The ``data:`` section of a classify recipe.

    Attributes:
        source: a known dataset ("imdb"), or None to read ``train``/``valid``/``test``.
            Unset, it is "imdb" only when no file is named; naming both is an error.
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
        max_train / max_eval: use only N seeded-random texts of train / of each eval split
            (quick experiments; None = all); see :func:`_subsets`.
        data_dir: where known datasets live (else ``--data-dir``, $RNNKIT_DATA, the cache).
    """

    source: str | None = None
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

    #: keys that change only the evaluation splits, never the training texts or their batches
    #: (see :func:`_subsets`): a mid-epoch resume may change them
    EVAL_ONLY_KEYS: ClassVar[tuple[str, ...]] = ("max_eval", "test")


def _read_splits(d: ClassifyDataConfig, data_dir: str | None) -> dict[str, LabeledTexts]:
    """Every split present, labels renamed; ``train`` always."""
    files = {s: getattr(d, s) for s in ("train", "valid", "test")}
    source = pick_source("data", d.source, files, DEFAULT_SOURCE)
    if source is not None:
        if source not in KNOWN_TEXTS:
            raise ConfigError(
                f"config key 'data.source': unknown dataset {source!r}; expected one "
                f"of {', '.join(KNOWN_TEXTS)}, or data.train set instead"
            )
        paths = resolve_imdb(data_dir or d.data_dir)
        renames = {**KNOWN_TEXTS[source], **d.label_names}
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
        if not len(data):  # a header-only test file would otherwise mean "no test split"
            raise TextDataError(f"{path}: no examples for the {split} split (only a header, or "
                                "empty); expected at least one labelled text")
        if split == "train":
            _check_renames(d.label_names, data, path)
        if renames:
            data.labels = [tuple(renames.get(x, x) for x in ls) for ls in data.labels]
        out[split] = data
    return out


def _check_renames(names: dict[str, str], train: LabeledTexts, path: str) -> None:
    """Every ``label_names`` key is a training label (a typo, or ``yes`` read as a boolean,
    would otherwise rename nothing, silently)."""
    seen = {x for ls in train.labels for x in ls}
    for key in names:
        if key not in seen:
            labels = sorted(seen)
            shown = ", ".join(map(repr, labels[:20])) + (" ..." if len(labels) > 20 else "")
            raise ConfigError(
                f"config key 'data.label_names.{repr(key)[1:-1]}': no training label {key!r} "
                f"in {path}; expected one of its labels: {shown}"
            )


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


#: each eval split's subset generator is ``default_rng([seed, stream])``
_EVAL_STREAMS = {"valid": 1, "test": 2}


def _subsets(splits: dict[str, LabeledTexts], max_train: int | None, max_eval: int | None,
             seed: int) -> dict[str, LabeledTexts]:
    """Each split cut to a seeded subset of ``max_train`` (train) or ``max_eval`` texts (kept
    in file order); None or a limit >= the split's size keeps it whole.

    train draws from ``default_rng(seed)`` alone, so its texts depend on neither max_eval
    nor which eval splits exist (a mid-epoch resume may change those). That generator's
    first draw is what every earlier rnnkit gave train (train came first in the splits and
    drew first), so old checkpoints resume onto the same texts. Each eval split draws from
    its own generator, so its subset depends on no other split either.
    """
    out = dict(splits)
    for split, data in splits.items():
        limit = max_train if split == "train" else max_eval
        if limit is None or limit >= len(data):
            continue
        rng = np.random.default_rng(seed if split == "train" else [seed, _EVAL_STREAMS[split]])
        out[split] = data.subset(sorted(rng.permutation(len(data))[:limit].tolist()))
    return out


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
