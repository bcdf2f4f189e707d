"""Labelled texts for classification: CSV/TSV/JSONL tables, folder-per-class, IMDB, vectors.

Readers return :class:`LabeledTexts` (texts, label tuples, and where each came from, for
error messages)::

    data = read_labeled("reviews.csv", text_column="review", label_column="sentiment")
    data = read_labeled("tags.jsonl.gz", label_sep="|")          # multi-label: "a|b"
    data = read_labeled("aclImdb/train")                         # folders pos/, neg/ (.txt)
    parts = resolve_imdb(data_dir="../shared/datasets")          # {"train": path, "test": path}
    classes = label_classes(data.labels)                         # sorted label names
    y = encode_labels(data, classes)                             # one label index per text
    vecs, found = load_vectors("glove.6B.100d.txt", tokenizer)   # (V, 100), found (V,) bool

Formats: ``.csv`` (RFC 4180), ``.tsv`` (tab-separated, same quoting), ``.jsonl`` (one JSON
object per line), each plain or gzip (detected by content); a folder holds one sub-folder
per class of ``.txt`` files (``unsup`` is skipped: aclImdb's unlabelled reviews). Multi-label
rows hold several labels separated by ``label_sep``; an empty label cell is then the empty
set. Every error is one line that names the file and the 1-based line (tables: the line
the row starts on): a missing column, an empty line, an empty text or label, a label never
seen in training.

IMDB (Maas et al. 2011, 25k/25k): looked up as ``imdb/{train,test}.csv[.gz]`` (header
``text,label``, 1 = positive) or an ``aclImdb/{train,test}/{pos,neg}`` tree under
``data_dir``, ``$RNNKIT_DATA`` and the cache ``~/.cache/rnnkit/imdb``; else the official
tarball is downloaded into the cache, checked against its sha256 and unpacked.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnkit.data._show import shown, shown_list
from rnnkit.data.registry import (
    ChecksumError,
    ChecksumWarning,
    DownloadError,
    cache_dir,
    content_sha256,
)
from rnnkit.data.text import TextFileError, read_text

__all__ = ["TextDataError", "LabeledTexts", "read_table", "read_folders", "read_labeled",
           "label_classes", "encode_labels", "clean_markup", "truncate", "IMDB",
           "resolve_imdb", "load_vectors"]


class TextDataError(ValueError):
    """Labelled text that cannot be used; the message names the file and line."""


@dataclass
class LabeledTexts:
    """Texts with their labels.

    Attributes:
        texts: one string per example.
        labels: one tuple of label names per example (one name unless multi-label;
            empty tuples only for unlabelled or multi-label data).
        where: ``"file:line"`` (or the file) of each example, for error messages.
        multi_label: the labels were read with a separator.
    """

    texts: list[str] = field(default_factory=list)
    labels: list[tuple[str, ...]] = field(default_factory=list)
    where: list[str] = field(default_factory=list)
    multi_label: bool = False

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: Sequence[int]) -> LabeledTexts:
        return LabeledTexts([self.texts[i] for i in idx], [self.labels[i] for i in idx],
                            [self.where[i] for i in idx], self.multi_label)


# ----------------------------------------------------------------------------- readers


class _NotJSON(ValueError):
    """A JSONL value that Python's json accepts but JSON does not (NaN, Infinity, 1e400)."""


def _no_constant(name: str):
    raise _NotJSON(f"{name} is not JSON; expected a string, number, list or object")


def _finite_float(text: str) -> float:
    x = float(text)
    if not np.isfinite(x):
        raise _NotJSON(f"number {shown(text)} is out of range; expected a finite number")
    return x


def _split_labels(cell: str, sep: str | None, where: str, allow_empty: bool) -> tuple[str, ...]:
    cell = cell.strip()
    if sep is None:
        if not cell:
            if allow_empty:
                return ()
            raise TextDataError(f"{where}: empty label")
        return (cell,)
    labels = tuple(s.strip() for s in cell.split(sep) if s.strip())
    return tuple(dict.fromkeys(labels))  # unique, in order


def _fmt_of(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    name = path.name.lower().removesuffix(".gz")
    for suffix, kind in ((".csv", "csv"), (".tsv", "tsv"), (".tab", "tsv"), (".jsonl", "jsonl"),
                         (".ndjson", "jsonl"), (".json", "jsonl")):
        if name.endswith(suffix):
            return kind
    raise TextDataError(f"{path}: unknown table format; expected .csv, .tsv or .jsonl "
                        "(optionally .gz), or set data.format")


def read_table(
    path: str | os.PathLike,
    text_column: str = "text",
    label_column: str | None = "label",
    *,
    fmt: str = "auto",
    label_sep: str | None = None,
    require_labels: bool = True,
) -> LabeledTexts:
    """Read a CSV / TSV (header row) or JSONL table of texts and labels.

    Args:
        path: the file (plain or gzip).
        text_column / label_column: the columns (JSONL: keys); ``label_column=None``
            reads texts only (prediction input).
        fmt: ``"auto"`` (from the suffix), ``"csv"``, ``"tsv"`` or ``"jsonl"``.
        label_sep: multi-label separator (e.g. ``"|"``); None = one label per row.
        require_labels: an empty label cell is an error (single-label data).

    Raises:
        TextDataError: a missing column, an empty line, an empty text or label, a row with
            the wrong number of fields, invalid JSON (each names file and line).
    """
    p = Path(path)
    kind = _fmt_of(p, fmt)
    try:
        content = read_text(p)
    except TextFileError as e:
        raise TextDataError(str(e)) from None
    out = LabeledTexts(multi_label=label_sep is not None)
    allow_empty = label_sep is not None or not require_labels
    if kind == "jsonl":
        lines = content.split("\n")
        while lines and not lines[-1].strip():  # blank lines are only allowed at the end
            lines.pop()
        for n, line in enumerate(lines, 1):
            if not line.strip():
                raise TextDataError(f"{p}:{n}: empty line; expected a JSON object")
            try:
                row = json.loads(line, parse_constant=_no_constant, parse_float=_finite_float)
            except json.JSONDecodeError as e:
                raise TextDataError(
                    f"{p}:{n}: invalid JSON ({e.msg} at column {e.colno})"
                ) from None
            except ValueError as e:  # NaN/Infinity, 1e400, an integer of over 4300 digits
                raise TextDataError(f"{p}:{n}: invalid JSON ({str(e)[:120]})") from None
            except RecursionError:
                raise TextDataError(
                    f"{p}:{n}: invalid JSON (nested too deeply); expected an object "
                    "of texts and labels"
                ) from None
            if not isinstance(row, dict):
                raise TextDataError(f"{p}:{n}: expected a JSON object, got {type(row).__name__}")
            _add(out, row, text_column, label_column, f"{p}:{n}", label_sep, allow_empty,
                 list(row))
        return out
    csv.field_size_limit(1 << 30)
    reader = csv.reader(io.StringIO(content, newline=""), delimiter="," if kind == "csv" else "\t")
    try:
        header = next(reader)
    except StopIteration:
        raise TextDataError(f"{p}: empty file; expected a header row") from None
    except csv.Error as e:
        raise TextDataError(f"{p}:1: malformed {kind.upper()} ({e})") from None
    header = [h.strip() for h in header]
    for col in (text_column, label_column):
        if col is not None and col not in header:
            raise TextDataError(
                f"{p}:1: no column {shown(col)}; the header has {shown_list(header)}"
            )
    start, blank = reader.line_num + 1, None
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise TextDataError(f"{p}:{start}: malformed {kind.upper()} ({e})") from None
        where = f"{p}:{start}"
        start = reader.line_num + 1
        if not row:  # blank lines are only allowed at the end of the file
            blank = blank or where
            continue
        if blank is not None:
            raise TextDataError(f"{blank}: empty line; expected a row of {len(header)} fields")
        if len(row) != len(header):
            raise TextDataError(f"{where}: {len(row)} fields; expected {len(header)} "
                                f"({', '.join(header)})")
        _add(out, dict(zip(header, row)), text_column, label_column, where, label_sep,
             allow_empty, header)
    return out


def _add(out: LabeledTexts, row: dict, text_col: str, label_col: str | None, where: str,
         sep: str | None, allow_empty: bool, columns: list) -> None:
    for col in (text_col, label_col):
        if col is not None and col not in row:
            raise TextDataError(f"{where}: no field {shown(col)}; found {shown_list(columns)}")
    text = row[text_col]
    if not isinstance(text, str):
        raise TextDataError(
            f"{where}: field {shown(text_col)} is {type(text).__name__}; expected a string"
        )
    if not text.strip():
        raise TextDataError(f"{where}: empty text in {shown(text_col)}")
    labels: tuple[str, ...] = ()
    if label_col is not None:
        cell = row[label_col]
        if isinstance(cell, list):  # JSONL: a list of labels
            if sep is None and len(cell) != 1:
                raise TextDataError(f"{where}: {shown(label_col)} holds a list; set data.label_sep "
                                    "for multi-label data")
            if not all(isinstance(c, (str, int, float)) for c in cell):
                raise TextDataError(
                    f"{where}: {shown(label_col)} holds a list with a "
                    f"{next(type(c).__name__ for c in cell if not isinstance(c, (str, int, float)))}"  # noqa: E501
                    "; expected label names (strings or numbers)"
                )
            cell = (sep or "").join(str(c) for c in cell)
        elif isinstance(cell, dict):
            raise TextDataError(
                f"{where}: {shown(label_col)} holds an object; expected a label name "
                "(a string or number) or a list of them"
            )
        labels = _split_labels(str(cell) if cell is not None else "", sep, where, allow_empty)
    out.texts.append(text)
    out.labels.append(labels)
    out.where.append(where)


def read_folders(root: str | os.PathLike, *, exclude: Sequence[str] = ("unsup",),
                 suffixes: Sequence[str] = (".txt", ".txt.gz")) -> LabeledTexts:
    """One class per sub-folder of ``root`` (aclImdb: ``train/pos/*.txt``, ``train/neg/*.txt``).

    Files are read in sorted order; a file's whole content is one text (stripped).
    """
    r = Path(root)
    if not r.is_dir():
        raise TextDataError(f"{r}: no such folder; expected one sub-folder of text files per class")
    out = LabeledTexts()
    for d in sorted(c for c in r.iterdir() if c.is_dir() and c.name not in exclude):
        files = sorted(
            f for f in d.iterdir() if f.is_file() and f.name.lower().endswith(tuple(suffixes))
        )
        for f in files:
            try:
                text = read_text(f).strip()
            except TextFileError as e:
                raise TextDataError(str(e)) from None
            if not text:
                raise TextDataError(f"{f}: empty text")
            out.texts.append(text)
            out.labels.append((d.name,))
            out.where.append(str(f))
    if not out.texts:
        raise TextDataError(f"{r}: no {'/'.join(suffixes)} files in any sub-folder; expected "
                            "one sub-folder of text files per class (e.g. pos/, neg/)")
    return out


def read_labeled(
    path: str | os.PathLike,
    text_column: str = "text",
    label_column: str | None = "label",
    *,
    fmt: str = "auto",
    label_sep: str | None = None,
    require_labels: bool = True,
) -> LabeledTexts:
    """:func:`read_folders` for a folder, else :func:`read_table`."""
    p = Path(path).expanduser()
    if p.is_dir():
        return read_folders(p)
    if not p.exists():
        raise TextDataError(f"{p}: no such file or folder; expected a CSV/TSV/JSONL file or a "
                            "folder per class")
    return read_table(p, text_column, label_column, fmt=fmt, label_sep=label_sep,
                      require_labels=require_labels)


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


# ----------------------------------------------------------------------------- IMDB


@dataclass(frozen=True)
class _KnownTexts:
    name: str
    files: dict[str, tuple[str, str]]  # split -> (file name, sha256 of the uncompressed CSV)
    archive_url: str
    archive_sha256: str
    archive_root: str  # folder inside the archive with {split}/{label}/*.txt
    description: str


#: the IMDB Large Movie Review Dataset v1.0 (official 25k/25k split)
IMDB = _KnownTexts(
    name="imdb",
    files={
        "train": ("train.csv", "c324c54e17ffceb54230d53ed26c7c43530fc5fe7374990773ce9871c2bf27ed"),
        "test": ("test.csv", "9c724df13b97942ce5d40e5df5d6832a522312f601e26de41cd1e7906744cf16"),
    },
    archive_url="https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
    archive_sha256="c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
    archive_root="aclImdb",
    description="IMDB Large Movie Review Dataset v1.0 (Maas et al. 2011), 25k train / 25k test",
)


def _find_imdb(root: Path) -> dict[str, Path] | None:
    for d in (root / IMDB.name, root):
        found = {}
        for split, (name, _) in IMDB.files.items():
            for cand in (d / name, d / f"{name}.gz", d / IMDB.archive_root / split):
                if cand.exists():
                    found[split] = cand
                    break
        if len(found) == len(IMDB.files):
            return found
    return None


def _check_imdb(found: dict[str, Path]) -> dict[str, Path]:
    for split, path in found.items():
        if path.is_file() and (got := content_sha256(path)) != IMDB.files[split][1]:
            warnings.warn(f"{path}: sha256 {got} differs from the canonical IMDB {split} CSV "
                          f"({IMDB.files[split][1]}); using it anyway as a user-provided copy",
                          ChecksumWarning, stacklevel=3)
    return found


def _download_imdb(dest: Path) -> dict[str, Path]:
    """Fetch and unpack the official tarball into ``dest`` (atomically, sha256-checked)."""
    import hashlib

    dest.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest, prefix=".aclImdb.", suffix=".part")
    tmp = Path(tmp_name)
    unpack = Path(tempfile.mkdtemp(dir=dest, prefix=".aclImdb."))
    try:
        req = urllib.request.Request(IMDB.archive_url, headers={"User-Agent": "rnnkit"})
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as f, urllib.request.urlopen(req, timeout=60) as r:
                while chunk := r.read(1 << 20):
                    h.update(chunk)
                    f.write(chunk)
        except OSError as e:
            reason = " ".join(str(getattr(e, "reason", e)).split())
            raise DownloadError(f"imdb: cannot download {IMDB.archive_url} ({reason}); without "
                                "network pass --data-dir DIR holding imdb/train.csv[.gz] and "
                                "test.csv[.gz] (or aclImdb/)") from None
        if h.hexdigest() != IMDB.archive_sha256:
            raise ChecksumError(
                f"{IMDB.archive_url}: sha256 mismatch (expected "
                f"{IMDB.archive_sha256}, got {h.hexdigest()}); the download was deleted"
            )
        with tarfile.open(tmp, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(f"{IMDB.archive_root}/")
                       and "/unsup/" not in f"{m.name}/" and (m.isdir() or m.name.endswith(".txt"))
                       and ".." not in m.name.split("/") and (m.isdir() or m.isfile())]
            if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
                tar.extractall(unpack, members=members, filter="data")
            else:  # the names were checked above to stay inside aclImdb/
                tar.extractall(unpack, members=members)  # noqa: S202
        os.replace(unpack / IMDB.archive_root, dest / IMDB.archive_root)
    finally:
        tmp.unlink(missing_ok=True)
        shutil.rmtree(unpack, ignore_errors=True)
    return {s: dest / IMDB.archive_root / s for s in IMDB.files}


def resolve_imdb(
    data_dir: str | os.PathLike | None = None, *, download: bool = True
) -> dict[str, Path]:
    """``{"train": path, "test": path}`` of IMDB: CSV files or aclImdb split folders.

    Looks in ``data_dir`` (an explicit ``data_dir`` that lacks IMDB is an error),
    ``$RNNKIT_DATA``, then the cache; else downloads the official tarball (84 MB).
    """
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if (found := _find_imdb(root)) is None:
            raise FileNotFoundError(
                f"data_dir {root}: no imdb/train.csv[.gz] and test.csv[.gz] "
                f"(or aclImdb/train, aclImdb/test) in {root / 'imdb'} or {root}"
            )
        return _check_imdb(found)
    roots = [Path(e).expanduser() for e in [os.environ.get("RNNKIT_DATA")] if e]
    roots.append(cache_dir(IMDB.name))
    for root in roots:
        if (found := _find_imdb(root)) is not None:
            return _check_imdb(found)
    if not download:
        raise FileNotFoundError(f"imdb: not found in {', '.join(map(str, roots))} and download "
                                "is off; pass --data-dir DIR or set RNNKIT_DATA")
    return _download_imdb(cache_dir(IMDB.name))


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
