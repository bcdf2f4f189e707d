"""Labelled-text file formats: CSV/TSV/JSONL tables and folder-per-class trees.

:func:`read_labeled` reads a folder (:func:`read_folders`, one sub-folder per class) or a
table (:func:`read_table`) into :class:`LabeledTexts`; every problem is a one-line
:class:`TextDataError` naming the file and line. :mod:`rnnkit.data.textcls` describes
the formats and re-exports these names.
"""
from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnkit.data._show import shown, shown_list
from rnnkit.data.text import TextFileError, read_text

__all__ = ["TextDataError", "LabeledTexts", "read_table", "read_folders", "read_labeled"]


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
                row = json.loads(line, parse_constant=_no_constant, parse_float=_finite_float,
                                 object_pairs_hook=_unique_keys(f"{p}:{n}"))
            except TextDataError:
                raise
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
    reader = csv.reader(io.StringIO(content, newline=""), delimiter="," if kind == "csv" else "\t",
                        strict=True)  # '"good" good' is malformed, not the text 'good good'
    try:
        header = next(reader)
    except StopIteration:
        raise TextDataError(f"{p}: empty file; expected a header row") from None
    except csv.Error as e:
        raise TextDataError(f"{p}:1: malformed {kind.upper()} ({e})") from None
    header = [h.strip() for h in header]
    twice = next((h for h in header if header.count(h) > 1), None)
    if twice is not None:  # dict(zip(header, row)) would keep the last column silently
        raise TextDataError(f"{p}:1: column {shown(twice)} appears twice in the header")
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


def _label_name(cell: object, where: str, col: str) -> str:
    """A JSON label as a class name: 1 and 1.0 are one class, "1"; true is not a name."""
    if isinstance(cell, bool):
        raise TextDataError(f"{where}: {shown(col)} is {str(cell).lower()}; expected a label name "
                            "(a string or a number)")
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)


def _unique_keys(where: str):
    """``object_pairs_hook``: a key given twice is an error (json keeps the last silently)."""
    def hook(pairs: list) -> dict:
        keys = [k for k, _ in pairs]
        twice = next((k for k in keys if keys.count(k) > 1), None)
        if twice is not None:
            raise TextDataError(f"{where}: key {shown(twice)} appears twice in one object")
        return dict(pairs)
    return hook


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
            cell = (sep or "").join(_label_name(c, where, label_col) for c in cell)
        elif isinstance(cell, dict):
            raise TextDataError(
                f"{where}: {shown(label_col)} holds an object; expected a label name "
                "(a string or number) or a list of them"
            )
        labels = _split_labels(_label_name(cell, where, label_col) if cell is not None else "",
                               sep, where, allow_empty)
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
