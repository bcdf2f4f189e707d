"""The tagging pipeline's data: the ``data:`` section, the encoder, and reading the files.

:class:`TagDataConfig` is the recipe's ``data:`` section. :class:`TagEncoder` turns
sentences into padded :class:`~rnnkit.models.tagger.TagBatch` objects with the word,
character and tag vocabularies that :func:`build_encoder` makes from the training
sentences. The readers find the split files (:func:`_data_files`), read them
(:func:`_read`, see :mod:`rnnkit.data.conll`), tell their tag scheme (:func:`_file_scheme`)
and convert it to the one the model predicts (:func:`_prepare`). Used by
:mod:`rnnkit.tasks.tag_task` and :mod:`rnnkit.tasks.tag`.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from rnnkit.data.conll import (
    ConllError,
    Sentence,
    check_span_tags,
    convert_tags,
    detect_scheme,
    read_tagged,
    resolve_tagging_data,
)
from rnnkit.data.vocab import Vocab
from rnnkit.models.tagger import TagBatch
from rnnkit.train.config import ConfigError, pick_source

__all__ = ["TagDataConfig", "TagEncoder", "build_encoder"]

PAD, UNK = "<pad>", "<unk>"


@dataclass
class TagDataConfig:
    """The ``data:`` section of a tagging recipe.

    Attributes:
        source: "ud_english_ewt", a folder (files named *train*, *dev*/*valid*, *test*) or
            a training file. Unset, it is "ud_english_ewt" only when no file is named below;
            setting both is an error.
        data_dir: where known datasets live (else ``--data-dir``, $RNNKIT_DATA, the cache).
        train / valid / test: your own files (instead of ``source``).
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

    source: str | None = None
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
    """The sentences with their tags converted to ``encoding`` ("same": as read).

    Span tags are converted whatever ``scheme`` the file was detected as (one of only ``O``
    tags is "none"); :func:`_read` has checked every tag is ``O`` or ``B-/I-/E-/S-TYPE``.
    """
    if encoding == "same":
        return sents
    return [Sentence(s.words, convert_tags(s.tags, encoding), s.lines) for s in sents]


# --------------------------------------------------------------------------- reading


def _data_files(d: TagDataConfig, data_dir: str | None) -> dict[str, Path]:
    files: dict[str, Path] = {}
    source = pick_source("data", d.source, {s: getattr(d, s) for s in ("train", "valid", "test")},
                         "ud_english_ewt")
    if source:
        root = data_dir or d.data_dir
        files = resolve_tagging_data(source, data_dir=root)
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
    """The file's sentences; with a scheme conversion (``data.encoding`` not "same") every tag
    must be a span tag (a stray ``0`` for ``O`` would otherwise make the file scheme "none"
    and skip the conversion): a :class:`ConllError` naming ``path:line`` and the tag."""
    sents = read_tagged(path, d.format, d.column, d.token_column, d.tag_column, d.scheme)
    if d.encoding != "same":
        check_span_tags(sents, path, f"data.encoding={d.encoding} needs BIO, IOB or BIOES tags")
    return sents


_SPAN = re.compile(r"[BIES]-.+")  # a span tag other than O


def _file_scheme(d: TagDataConfig, train: list[Sentence], path: str | os.PathLike = "<tags>"
                 ) -> str:
    """``data.scheme``, or the one the tags show. A file that mixes span tags (``B-LOC``) with
    others (``0`` typed for ``O``) is an error at the first other tag: detected as "none", it
    would train without its span metrics and with the typo as a tag of its own."""
    if d.scheme != "auto":
        return d.scheme
    scheme = detect_scheme(t for s in train for t in s.tags)
    if scheme == "none":
        span = next((t for s in train for t in s.tags if t != "O" and _SPAN.fullmatch(t)), None)
        if span is not None:
            check_span_tags(train, path, f"other tags in the file are, e.g. {span!r}; set "
                            "data.scheme: none to read every tag as a plain label")
    return scheme


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
