"""Strict reading of tabular time-series files: cells with their file rows, numbers, timestamps.

Shared by :mod:`rnnkit.data.timeseries` and :mod:`rnnkit.data.nab`.  A CSV is read with
Python's csv module, not pandas: pandas pads a short row, makes the first column the index
when every row has one field more than the header, renames duplicate names, and cannot tell
on which line a record that spans lines starts.  Rows are numbered as a user counts them:
CSV, the 1-based line a record starts on (the header is row 1); Parquet, the 1-based record.
A number must be finite (``inf``, ``-Infinity`` and ``1e400`` are errors); a timestamp
cell longer than :data:`MAX_TIMESTAMP_CHARS` is not handed to pandas, which took 95 s to
refuse a 1 MB one (pandas 2.x on the project's 2-core Intel Xeon VM).  Every error is a
one-line :class:`TimeSeriesError` naming the file, the
row and the column, quoting the cell cut short.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from rnnkit.data._show import shown, shown_list
from rnnkit.data.text import TextFileError, read_text

__all__ = ["TimeSeriesError", "MAX_TIMESTAMP_CHARS", "read_csv", "read_frame", "numeric_column",
           "timestamp_column"]

#: a longer timestamp cell is not parsed ("2020-01-01T00:00:00.000000000+05:00" has 35)
MAX_TIMESTAMP_CHARS = 64


class TimeSeriesError(ValueError):
    """A time-series file that cannot be used as given (one line: file, row, column, what)."""


def read_csv(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """A CSV's cells as strings, and the file line each record starts on (the header is 1).

    Python's csv module, not pandas: pandas pads a short row, makes the first column the
    index when every row has one field more than the header, renames duplicate names, and
    cannot tell on which line a record that spans lines starts.
    """
    try:
        text = read_text(path)  # plain or gzip (by content), UTF-8, BOM and CR/LF handled
    except TextFileError as e:
        raise TimeSeriesError(str(e)) from None
    csv.field_size_limit(1 << 30)
    # strict: text after a closing quote (`"4"5`) is an error, not the field "45"
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as e:
        raise TimeSeriesError(f"{path}: row 1: malformed CSV ({e})") from None
    if not header:
        raise TimeSeriesError(
            f"{path}: row 1: empty line; expected a header row naming the columns"
        )
    names = [h.strip() or f"Unnamed: {k}" for k, h in enumerate(header)]  # pandas' name for ""
    K = len(names)
    records, lines = [], []
    start = reader.line_num + 1
    try:
        for rec in reader:
            records.append(rec)
            lines.append(start)
            start = reader.line_num + 1
    except csv.Error as e:
        raise TimeSeriesError(f"{path}: row {start}: malformed CSV ({e})") from None
    width = np.fromiter(map(len, records), dtype=np.int64, count=len(records))
    n = len(records)
    while n and width[n - 1] == 0:  # blank lines are only allowed at the end of the file
        n -= 1
    width, records, lines = width[:n], records[:n], lines[:n]
    if (width != K).any():
        i = int(np.flatnonzero(width != K)[0])
        what = "empty line" if width[i] == 0 else f"{width[i]} field(s)"
        raise TimeSeriesError(
            f"{path}: row {lines[i]}: {what}; expected {K} fields ({shown_list(names)})"
        )
    frame = pd.DataFrame(records, columns=range(K), dtype=object)
    frame.columns = names
    return frame, np.asarray(lines, dtype=np.int64)


def read_frame(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The table and the file row of each record: CSV as in :func:`read_csv`; Parquet rows
    are 1-based records (a Parquet file has no header row)."""
    if not path.name.lower().endswith((".parquet", ".pq")):
        frame, rows = read_csv(path)
    else:
        try:
            import pyarrow

            frame = pd.read_parquet(path)
        # KeyError/IndexError: pandas' own metadata in the file, damaged ("numpy_type" missing)
        except (pyarrow.ArrowException, OSError, ValueError, TypeError, NotImplementedError,
                KeyError, IndexError) as e:
            raise TimeSeriesError(
                f"{path}: cannot read as Parquet ({shown(' '.join(str(e).split()), 200)})"
            ) from None
        frame.columns = [str(c).strip() for c in frame.columns]
        rows = np.arange(1, len(frame) + 1, dtype=np.int64)
    seen = set()
    for c in frame.columns:
        if c in seen:
            raise TimeSeriesError(
                f"{path}: row 1: column {shown(c)} appears twice; expected unique names"
            )
        seen.add(c)
    return frame, rows


def numeric_column(path: Path, frame: pd.DataFrame, rows: np.ndarray, col: str) -> np.ndarray:
    """Column -> float64 with NaN for empty cells; a non-numeric or infinite cell is an error."""
    raw = frame[col]
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        num = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        text = raw.astype("string").str.strip()
        empty = text.isna() | (text == "") | text.str.lower().isin(["nan", "na", "null"])
        num = pd.to_numeric(text.where(~empty, None), errors="coerce")
        bad = num.isna() & ~empty
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise TimeSeriesError(
                f"{path}: row {rows[pos]}, column {shown(col)}: non-numeric value "
                f"{shown(raw.iloc[pos])} (expected a number or an empty cell)"
            )
        num = num.to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isinf(num).any():  # inf, -Infinity, and numbers beyond float64 such as 1e400
        pos = int(np.flatnonzero(np.isinf(num))[0])
        raise TimeSeriesError(f"{path}: row {rows[pos]}, column {shown(col)}: non-finite value "
                              f"{shown(raw.iloc[pos])} (expected a finite number or an empty cell)")
    return num


def pd_infer_freq(ts: pd.DatetimeIndex) -> pd.DateOffset | None:
    """``pd.infer_freq`` as an offset (None: no regular frequency)."""
    try:  # pandas >= 3 warns unless asked for the offset object it will return
        with pd.option_context("future.infer_freq_returns_offset", True):
            f = pd.infer_freq(ts)
    except (KeyError, pd.errors.OptionError):
        f = pd.infer_freq(ts)
    return None if f is None else pd.tseries.frequencies.to_offset(f)


#: "01/02/2000", "1.2.99", "01-02-2000 10:00": a day and a month in an order the cell doesn't say
_DAY_MONTH = re.compile(r"^(\d{1,2})([/.\-])(\d{1,2})\2(?:\d{4}|\d{2})(?:$|[ T])")


def _dayfirst(path: Path, text: pd.Series, rows: np.ndarray, col: str) -> bool:
    """Whether ``dd/mm/yyyy``-like cells are day-first, read from the column as a whole.

    pandas (dateutil) decides cell by cell: "13/04/2000" day-first, "01/04/2000" month-first in
    the same column. Here one order holds for the column: the one some field above 12 proves,
    else the one whose timestamps lie on a regular grid; where both or neither do, the dates
    are ambiguous and this raises rather than guess.
    """
    cells = text[text.notna() & (text != "")]
    if not len(cells) or not _DAY_MONTH.match(str(cells.iloc[0])):
        return False  # ISO and the rest: pandas' own reading (and no scan of a long column)
    m = cells.str.extract(_DAY_MONTH)
    if not len(m) or m[0].isna().any():
        return False  # not all day/month cells: pandas' own reading (ISO and the rest)
    a, b = m[0].astype(int).to_numpy(), m[2].astype(int).to_numpy()
    pos = np.flatnonzero(text.notna() & (text != ""))
    if (a > 12).any() and (b > 12).any():
        i, j = int(np.flatnonzero(a > 12)[0]), int(np.flatnonzero(b > 12)[0])
        raise TimeSeriesError(
            f"{path}: row {rows[pos[j]]}, column {shown(col)}: {shown(cells.iloc[j])} is "
            f"month-first but row {rows[pos[i]]}'s {shown(cells.iloc[i])} is day-first "
            "(expected one order; write dates as YYYY-MM-DD)"
        )
    if (a > 12).any() or (b > 12).any() or (a == b).all():
        return bool((a > 12).any())
    regular = {}
    for first in (False, True):
        ts = pd.DatetimeIndex(pd.to_datetime(cells, errors="coerce", format="mixed",
                                             dayfirst=first))
        u = ts.dropna().unique().sort_values()
        regular[first] = len(u) >= 3 and pd_infer_freq(u) is not None
    if regular[True] != regular[False]:
        return regular[True]
    i = int(np.flatnonzero(a != b)[0])
    raise TimeSeriesError(
        f"{path}: row {rows[pos[i]]}, column {shown(col)}: {shown(cells.iloc[i])} reads as "
        "day/month and as month/day, and the other dates do not tell which (expected "
        "unambiguous dates; write them as YYYY-MM-DD)"
    )


def _drop_zone(ts: pd.DatetimeIndex, wall: pd.DatetimeIndex | None) -> pd.DatetimeIndex:
    """Zoned timestamps as naive ones: their local times where those are a regular clock.

    One UTC offset throughout, or dates (every local time midnight, as daily or monthly data
    written in a zone with summer time): the local times, so that a day stays that day. Else
    (hourly data across a summer-time change): UTC, the one clock without a repeated or
    missing hour.
    """
    utc = ts.tz_convert("UTC").tz_localize(None)
    if wall is None:
        wall = ts.tz_localize(None)
    one_offset = (wall - utc).dropna().nunique() <= 1
    dates = bool(((wall == wall.normalize()) | wall.isna()).all())
    return wall if one_offset or dates else utc


def _aware(cell: str) -> bool | None:
    """Whether a timestamp cell carries a time zone (None: it does not parse)."""
    try:
        return pd.Timestamp(cell).tzinfo is not None
    except (ValueError, TypeError, OverflowError):
        return None


def timestamp_column(
    path: Path, frame: pd.DataFrame, rows: np.ndarray, col: str
) -> pd.DatetimeIndex:
    raw = frame[col]
    wall = None  # local wall-clock times where the cells' UTC offsets differ
    if pd.api.types.is_datetime64_any_dtype(raw):
        ts = pd.DatetimeIndex(raw)
    else:
        text = raw.astype("string").str.strip()
        # no timestamp is this long, and pandas takes minutes to refuse a 1 MB cell: unparsable
        text = text.where(~(text.str.len() > MAX_TIMESTAMP_CHARS).fillna(False), "?")
        # pandas reads these against today's date: a clock, not a timestamp
        undated = text.str.lower().isin(["now", "today", "tomorrow", "yesterday"]) | (
            text.str.fullmatch(r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[ap]\.?m\.?)?",
                               case=False)
        )
        if undated.fillna(False).any():
            pos = int(np.flatnonzero(undated.fillna(False).to_numpy())[0])
            raise TimeSeriesError(
                f"{path}: row {rows[pos]}, column {shown(col)}: {shown(raw.iloc[pos])} has no "
                "date (expected a timestamp such as 2024-01-01 00:00)"
            )
        first = _dayfirst(path, text, rows, col)
        try:
            ts = pd.DatetimeIndex(
                pd.to_datetime(text, errors="coerce", format="mixed", dayfirst=first)
            )
        except (ValueError, TypeError, OverflowError):  # offsets differ (DST): all to UTC
            aware = [_aware(c) for c in text.fillna("")]
            kinds = [a for a in aware if a is not None]
            if len(set(kinds)) > 1:  # naive cells among zoned ones would silently read as UTC
                pos = next(i for i, a in enumerate(aware) if a is not None and a != kinds[0])
                first = next(i for i, a in enumerate(aware) if a is not None)
                raise TimeSeriesError(
                    f"{path}: row {rows[pos]}, column {shown(col)}: timestamp "
                    f"{shown(raw.iloc[pos])} "
                    f"{'has a' if kinds[0] is False else 'has no'} time zone but row "
                    f"{rows[first]}'s "
                    f"{'has none' if kinds[0] is False else 'has one'} (expected all or none)"
                ) from None
            ts = pd.DatetimeIndex(
                pd.to_datetime(text, errors="coerce", format="mixed", utc=True, dayfirst=first)
            )
            wall = pd.DatetimeIndex(pd.to_datetime(
                text.str.replace(r"\s*(?:Z|UTC|[+-]\d{2}(?::?\d{2})?)$", "", regex=True),
                errors="coerce", format="mixed", dayfirst=first,
            ))
        bad = np.asarray(ts.isna()) & ~np.asarray(text.isna() | (text == ""))
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise TimeSeriesError(f"{path}: row {rows[pos]}, column {shown(col)}: cannot parse "
                                  f"{shown(raw.iloc[pos])} as a timestamp")
    if ts.tz is not None:
        ts = _drop_zone(ts, wall)
    if ts.isna().any():
        pos = int(np.flatnonzero(np.asarray(ts.isna()))[0])
        raise TimeSeriesError(f"{path}: row {rows[pos]}, column {shown(col)}: empty timestamp")
    return ts
