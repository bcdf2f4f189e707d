"""The Numenta Anomaly Benchmark (NAB) corpus: data files, anomaly windows and labels.

NAB's layout (numenta/NAB, v1.x) is::

    <root>/data/<family>/<file>.csv          timestamp,value   (one reading per row)
    <root>/labels/combined_windows.json      {"<family>/<file>.csv": [[start, end], ...]}
    <root>/labels/combined_labels.json       {"<family>/<file>.csv": [timestamp, ...]}

Each CSV is read by :func:`rnnkit.data.timeseries.read_timeseries` (``regular=False``:
NAB streams are strictly increasing but not always on one grid), so a bad file fails with
one line naming the file, the row and the column.  Window limits must be timestamps that
occur in their file (as NAB's ``CorpusLabel`` demands); they become inclusive row indices
``(a, b)``, 0-based, ``a <= b``, sorted and disjoint.

The first ``probation_length(n)`` rows of every file are NAB's *probationary period*:
``min(floor(0.15 n), 0.15 * 5000)``.  Detectors may learn from it; the scorer ignores it.

Example::

    corpus = load_nab_corpus("../shared/datasets/nab", families=["realKnownCause"])
    s = corpus[0]                     # NABSeries
    s.key, len(s), s.windows          # 'realKnownCause/ambient_...csv', 7267, [(2769, 3494), ...]
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rnnkit.data._show import shown, shown_list
from rnnkit.data._table import (
    MAX_TIMESTAMP_CHARS,
    TimeSeriesError,
    numeric_column,
    read_csv,
    timestamp_column,
)
from rnnkit.data.text import TextFileError, read_text
from rnnkit.data.timeseries import read_timeseries

__all__ = [
    "NABFormatError",
    "TimeSeriesError",
    "NABSeries",
    "PROBATION_PERCENT",
    "probation_length",
    "default_nab_root",
    "read_nab_csv",
    "read_windows_json",
    "read_labels_json",
    "load_nab_series",
    "load_nab_corpus",
    "window_mask",
]

PROBATION_PERCENT = 0.15


class NABFormatError(ValueError):
    """A NAB data or label file that cannot be used (one line: file, row/key, what)."""


@dataclass
class NABSeries:
    """One NAB data file with its ground truth.  ``N`` rows.

    Attributes:
        key: ``"<family>/<file>.csv"``, the key in the label files.
        timestamps: (N,) DatetimeIndex, strictly increasing.
        values: (N,) float64 readings.
        windows: inclusive row-index limits ``(a, b)`` of the anomaly windows.
        labels: row indices of the labelled anomaly points (inside the windows).
        path: the CSV file.
    """

    key: str
    timestamps: pd.DatetimeIndex
    values: np.ndarray
    windows: list[tuple[int, int]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    path: str = ""

    def __len__(self) -> int:
        return len(self.values)

    @property
    def family(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def probation(self) -> int:
        return probation_length(len(self))


def probation_length(n: int, percent: float = PROBATION_PERCENT) -> int:
    """NAB's probationary rows: ``min(floor(percent * n), percent * 5000)`` (750 for 15%)."""
    return int(min(math.floor(percent * n), percent * 5000))


def default_nab_root(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir`` (a NAB root or a folder holding ``nab/``), else ``$RNNKIT_DATA/nab``, else
    ``../shared/datasets/nab`` (relative to the working directory)."""
    candidates = []
    if data_dir is not None:
        candidates += [Path(data_dir), Path(data_dir) / "nab"]
    elif os.environ.get("RNNKIT_DATA"):
        candidates.append(Path(os.environ["RNNKIT_DATA"]) / "nab")
    else:
        candidates.append(Path("../shared/datasets/nab"))
    for c in candidates:
        if (c / "data").is_dir() and (c / "labels").is_dir():
            return c
    raise FileNotFoundError(f"{candidates[0]}: not a NAB root (expected data/ and labels/ folders, "
                            "as in numenta/NAB); pass --data-dir")


# --------------------------------------------------------------------------- files


def read_nab_csv(
    path: str | os.PathLike, *, strict: bool = True
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Timestamps and values of a NAB ``timestamp,value`` CSV (plain or .gz), in file order.

    With ``strict`` (the default for user files) the file is read by
    :func:`~rnnkit.data.timeseries.read_timeseries`, so duplicate or decreasing timestamps are
    errors.  ``strict=False`` accepts them: the published NAB corpus has 11 repeated
    ``2014-03-09 03:00:00`` rows (a daylight-saving artefact) in three files and one backward
    jump in ``machine_temperature_system_failure.csv``, and NAB scores every row by position.
    Unparsable timestamps, rows with the wrong number of fields, and non-numeric, infinite
    or missing values are errors either way.

    Raises:
        TimeSeriesError: naming the file, the row (the header is row 1) and the column.
    """
    if strict:
        data = read_timeseries(path, time_col="timestamp", targets=["value"], regular=False)
        s = data.series[0]
        return s.index, s.target[:, 0].copy()
    path = Path(path)
    if not path.is_file():
        raise TimeSeriesError(f"{path}: file not found")
    frame, rows = read_csv(path)
    for col in ("timestamp", "value"):
        if col not in frame.columns:
            raise TimeSeriesError(
                f"{path}: row 1: no column {col!r}; the columns are {shown_list(frame.columns)}"
            )
    if len(frame) == 0:
        raise TimeSeriesError(f"{path}: no data rows")
    ts = timestamp_column(path, frame, rows, "timestamp")
    values = numeric_column(path, frame, rows, "value")
    if np.isnan(values).any():
        i = int(np.flatnonzero(np.isnan(values))[0])
        raise TimeSeriesError(
            f"{path}: row {rows[i]}, column 'value': missing value (expected a number)"
        )
    return ts, values


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise NABFormatError(f"{path}: file not found")
    try:
        obj = json.loads(read_text(path))  # UTF-8 with or without a BOM, plain or gzip
    except TextFileError as e:  # empty, not UTF-8 (names line and column), corrupt gzip
        raise NABFormatError(str(e)) from None
    except json.JSONDecodeError as e:
        raise NABFormatError(f"{path}:{e.lineno}:{e.colno}: invalid JSON ({e.msg})") from None
    except (ValueError, RecursionError) as e:  # an integer of over 4300 digits; deep nesting
        raise NABFormatError(
            f"{path}: invalid JSON ({str(e)[:120] or 'nested too deeply'})"
        ) from None
    if not isinstance(obj, dict):
        raise NABFormatError(f"{path}: expected an object mapping '<family>/<file>.csv' to a list")
    return obj


def _parse_time(path: Path, key: str, what: str, text: object) -> pd.Timestamp:
    try:
        # pandas is slow to refuse a long one
        if not isinstance(text, str) or len(text) > MAX_TIMESTAMP_CHARS:
            raise ValueError
        t = pd.Timestamp(text)
    except ValueError:
        raise NABFormatError(f"{path}: {shown(key)}: {what} {shown(text)} is not a timestamp "
                             "(expected 'YYYY-mm-dd HH:MM:SS[.ffffff]')") from None
    if t.tzinfo is not None:  # NAB's series are zone-less: comparing with them would raise
        raise NABFormatError(f"{path}: {shown(key)}: {what} {shown(text)} has a time zone; "
                             "expected a zone-less 'YYYY-mm-dd HH:MM:SS[.ffffff]', as the "
                             "series' timestamps are")
    return t


def read_windows_json(
    path: str | os.PathLike,
) -> dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    """NAB ``combined_windows.json``: file key -> sorted, disjoint ``(start, end)`` timestamps."""
    path = Path(path)
    out = {}
    for key, wins in _read_json(path).items():
        if not isinstance(wins, list):
            raise NABFormatError(
                f"{path}: {shown(key)}: expected a list of [start, end] windows, got {shown(wins)}"
            )
        limits = []
        for j, w in enumerate(wins):
            if not (isinstance(w, list) and len(w) == 2):
                raise NABFormatError(
                    f"{path}: {shown(key)}: window {j} is {shown(w)}; expected [start, end]"
                )
            a = _parse_time(path, key, f"window {j} start", w[0])
            b = _parse_time(path, key, f"window {j} end", w[1])
            if b < a:
                raise NABFormatError(
                    f"{path}: {shown(key)}: window {j} ends ({b}) before it starts ({a})"
                )
            if limits and a <= limits[-1][1]:
                raise NABFormatError(
                    f"{path}: {shown(key)}: window {j} starts at {a}, not after the end of "
                    f"window {j - 1} ({limits[-1][1]}); windows must be sorted and disjoint"
                )
            limits.append((a, b))
        out[str(key)] = limits
    return out


def read_labels_json(path: str | os.PathLike) -> dict[str, list[pd.Timestamp]]:
    """NAB ``combined_labels.json``: file key -> anomaly timestamps."""
    path = Path(path)
    out = {}
    for key, times in _read_json(path).items():
        if not isinstance(times, list):
            raise NABFormatError(
                f"{path}: {shown(key)}: expected a list of timestamps, got {shown(times)}"
            )
        out[str(key)] = [_parse_time(path, key, f"label {j}", t) for j, t in enumerate(times)]
    return out


def _row_of(
    ts: pd.DatetimeIndex, t: pd.Timestamp, csv: str, label_file: Path, key: str, what: str
) -> int:
    """First row holding ``t`` (NAB's ``timestamps.index(t)``)."""
    hits = np.flatnonzero(np.asarray(ts == t))
    if len(hits) == 0:
        raise NABFormatError(
            f"{label_file}: {shown(key)}: {what} {t} does not occur in {csv} (label timestamps "
            "must equal a row's timestamp exactly)"
        )
    return int(hits[0])


# --------------------------------------------------------------------------- corpus


def load_nab_series(root: str | os.PathLike, key: str, *, windows: dict | None = None,
                    labels: dict | None = None, strict: bool = False) -> NABSeries:
    """One NAB file ``key`` (e.g. ``"realKnownCause/nyc_taxi.csv"``) with its windows and labels.

    ``windows`` / ``labels`` are the parsed label files (read from ``root/labels`` if None);
    ``strict`` as in :func:`read_nab_csv` (off: the published corpus is read as NAB reads it).
    """
    root = Path(root)
    wpath, lpath = (
        root / "labels" / "combined_windows.json",
        root / "labels" / "combined_labels.json",
    )
    windows = read_windows_json(wpath) if windows is None else windows
    labels = read_labels_json(lpath) if labels is None and lpath.is_file() else (labels or {})
    csv = root / "data" / key
    if not csv.is_file() and Path(str(csv) + ".gz").is_file():
        csv = Path(str(csv) + ".gz")
    if key not in windows:
        raise NABFormatError(
            f"{wpath}: no windows for {shown(key)} (every scored file needs an entry, "
            "possibly an empty list)"
        )
    ts, values = read_nab_csv(csv, strict=strict)
    rows = [
        (
            _row_of(ts, a, str(csv), wpath, key, "window start"),
            _row_of(ts, b, str(csv), wpath, key, "window end"),
        )
        for a, b in windows[key]
    ]
    for (a, b), (ta, tb) in zip(rows, windows[key]):
        if b < a:
            raise NABFormatError(
                f"{wpath}: {shown(key)}: window [{ta}, {tb}] ends at row {b + 2} of {csv}, "
                f"before its start at row {a + 2}"
            )
    points = [_row_of(ts, t, str(csv), lpath, key, "label") for t in labels.get(key, [])]
    return NABSeries(key, ts, values, rows, points, str(csv))


def load_nab_corpus(
    root: str | os.PathLike | None = None,
    families: list[str] | tuple[str, ...] | None = None,
    files: list[str] | None = None,
    strict: bool = False,
) -> list[NABSeries]:
    """All NAB files under ``root/data`` (sorted by key), optionally only some ``families``
    (``"realKnownCause"``, ...) or the given ``files`` keys."""
    root = default_nab_root(root)
    data = root / "data"
    keys = sorted(str(p.relative_to(data)).removesuffix(".gz") for p in data.glob("*/*.csv*"))
    if families:
        have = {k.split("/", 1)[0] for k in keys}
        for f in families:
            if f not in have:
                raise NABFormatError(
                    f"{data}: no family {f!r}; found {', '.join(sorted(have)) or 'none'}"
                )
        keys = [k for k in keys if k.split("/", 1)[0] in families]
    if files:
        missing = [f for f in files if f not in keys]
        if missing:
            raise NABFormatError(f"{data}: no data file {missing[0]!r}")
        keys = [k for k in keys if k in files]
    windows = read_windows_json(root / "labels" / "combined_windows.json")
    lpath = root / "labels" / "combined_labels.json"
    labels = read_labels_json(lpath) if lpath.is_file() else {}
    return [load_nab_series(root, k, windows=windows, labels=labels, strict=strict) for k in keys]


def window_mask(n: int, windows: list[tuple[int, int]]) -> np.ndarray:
    """(N,) bool: True on rows inside an anomaly window."""
    m = np.zeros(n, dtype=bool)
    for a, b in windows:
        m[a:b + 1] = True
    return m
