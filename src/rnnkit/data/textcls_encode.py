"""From labelled texts to model inputs: label indices, cleaned and cut texts, word vectors.

:func:`label_classes` and :func:`encode_labels` turn label names into indices (a label
never seen in training is an error naming its file and line); :func:`clean_markup` and
:func:`truncate` prepare texts and token ids; :func:`load_vectors` reads GloVe/word2vec
rows for a tokenizer's vocabulary. :mod:`rnnkit.data.textcls` re-exports these names.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnkit.data._show import shown
from rnnkit.data.text import TextFileError, read_text
from rnnkit.data.textcls_formats import LabeledTexts, TextDataError

__all__ = ["label_classes", "encode_labels", "clean_markup", "truncate", "load_vectors"]


# ----------------------------------------------------------------------------- labels, text


def label_classes(labels: Sequence[tuple[str, ...]]) -> list[str]:
    """Sorted distinct label names (numeric names sort numerically: "2" before "10")."""
    names = {name for ls in labels for name in ls}
    return sorted(names, key=lambda s: (0, float(s), s) if _is_number(s) else (1, 0.0, s))


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def encode_labels(data: LabeledTexts, classes: Sequence[str]) -> np.ndarray:
    """Label indices ``(N,)`` (int64), or for multi-label data a 0/1 matrix ``(N, K)``.

    Raises:
        TextDataError: a label not in ``classes`` (never seen in training), naming the
            file and line.
    """
    index = {c: k for k, c in enumerate(classes)}
    y = (
        np.zeros((len(data), len(classes)), np.float32)
        if data.multi_label
        else np.zeros(len(data), np.int64)
    )
    for i, ls in enumerate(data.labels):
        for name in ls:
            if name not in index:
                known = ", ".join(map(shown, list(classes)[:20])) + (
                    " ..." if len(classes) > 20 else ""
                )
                raise TextDataError(
                    f"{data.where[i]}: label {shown(name)} was never seen in training; "
                    f"known labels: {known}"
                )
        if data.multi_label:
            y[i, [index[n] for n in ls]] = 1.0
        else:
            if len(ls) != 1:
                raise TextDataError(f"{data.where[i]}: expected one label, got {len(ls)}")
            y[i] = index[ls[0]]
    return y


_MARKUP = re.compile(r"<[^>]{0,40}>")


def clean_markup(text: str) -> str:
    """Replace HTML-like tags (IMDB's ``<br />``) by a space."""
    return _MARKUP.sub(" ", text)


def truncate(ids: list[int], max_tokens: int | None, mode: str = "head") -> list[int]:
    """Cut ``ids`` to ``max_tokens``: keep the ``head``, the ``tail``, or ``head_tail``
    (the first half and the last half, where reviews give their verdict)."""
    if max_tokens is None or len(ids) <= max_tokens:
        return ids
    if mode == "head":
        return ids[:max_tokens]
    if mode == "tail":
        return ids[-max_tokens:]
    if mode == "head_tail":
        h = max_tokens // 2
        return ids[:h] + ids[len(ids) - (max_tokens - h):]
    raise ValueError(f"truncation={mode!r}; expected head, tail or head_tail")


# ----------------------------------------------------------------------------- vectors


def _vector(cells: list[str], where: str, word: str) -> np.ndarray:
    """The values of one vector line as float32; a non-number or a value that is not a finite
    float32 (``inf``, ``nan``, ``1e39``) names its column (the word is column 1)."""
    v = np.empty(len(cells), np.float64)
    for k, c in enumerate(cells):
        try:
            v[k] = float(c)
        except ValueError:
            raise TextDataError(f"{where}: column {k + 2}: non-numeric vector value {shown(c)} for "
                                f"{shown(word)}") from None
    with np.errstate(over="ignore"):
        v32 = v.astype(np.float32)  # beyond float32's range becomes inf
    if not np.isfinite(v32).all():
        k = int(np.flatnonzero(~np.isfinite(v32))[0])
        raise TextDataError(
            f"{where}: column {k + 2}: non-finite vector value {shown(cells[k])} for "
            f"{shown(word)} (expected a finite float32 number)"
        )
    return v32


def load_vectors(path: str | os.PathLike, tokenizer, *, lowercase_fallback: bool = True):
    """Rows of pretrained word vectors for a tokenizer's vocabulary.

    Reads a GloVe (``word v1 ... vd`` per line) or word2vec text file (the same, after a
    ``count dim`` header line), plain or gzip. A vocabulary entry's ``▁`` word-start marker
    is ignored, and with ``lowercase_fallback`` a lowercased entry is tried too.

    Returns:
        ``(vectors (V, d) float32, found (V,) bool)``; rows not found are zero.

    Raises:
        TextDataError: a line with the wrong number of values, a non-number or a value that
            is not a finite float32 (``inf``, ``nan``, ``1e39``), naming the file, line and column.
    """
    p = Path(path).expanduser()
    wanted: dict[str, list[int]] = {}
    for i in range(tokenizer.vocab_size):
        tok = tokenizer.id_to_token(i)
        if tok is None or tok.startswith("<") and tok.endswith(">"):
            continue
        key = tok.lstrip("▁") or tok
        wanted.setdefault(key, []).append(i)
    try:
        content = read_text(p)
    except TextFileError as e:
        raise TextDataError(str(e)) from None
    vecs: np.ndarray | None = None
    found = np.zeros(tokenizer.vocab_size, bool)
    dim = None
    for n, line in enumerate(content.split("\n"), 1):
        parts = line.rstrip().split(" ")
        if len(parts) < 2:
            if line.strip():
                raise TextDataError(f"{p}:{n}: expected a word and its vector values")
            continue
        if n == 1 and len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            dim = int(parts[1])  # word2vec header "count dim"
            continue
        if dim is None:
            dim = len(parts) - 1
        if len(parts) - 1 != dim:
            raise TextDataError(f"{p}:{n}: {len(parts) - 1} values; expected {dim}")
        word = parts[0]
        rows = wanted.get(word) or (wanted.get(word.lower()) if lowercase_fallback else None)
        if not rows:
            continue
        rows = [r for r in rows if not found[r]] if word not in wanted else rows
        if not rows:
            continue
        v = _vector(parts[1:], f"{p}:{n}", word)
        if vecs is None:
            vecs = np.zeros((tokenizer.vocab_size, dim), np.float32)
        vecs[rows] = v
        found[rows] = True
    if dim is None:
        raise TextDataError(f"{p}: no vectors found; expected GloVe or word2vec text")
    if vecs is None:
        vecs = np.zeros((tokenizer.vocab_size, dim), np.float32)
    return vecs, found
