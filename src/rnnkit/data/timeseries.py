"""Time-series readers: CSV/Parquet -> regular, validated series with covariates.

A file has a timestamp column, one or more target columns, optional past covariates
(observed only up to the forecast origin) and optional known-future covariates (given for
the horizon too, e.g. a holiday flag).  Several series may be stacked in long format with
a ``series_id`` column; each is checked and returned on its own::

    date,series,load,temp          <- header = row 1 (rows are numbered as in the file)
    2016-07-01 00:00,a,5.8,30.5    <- row 2
    ...

Every row has as many fields as the header.  Every series is checked in file order:
timestamps parse, strictly increase (no duplicates), lie on one frequency grid (``freq``,
inferred if not given: the coarsest grid that holds every timestamp, so a gap stays a gap,
and a stray timestamp off a grid holding the rest is an error, not a finer grid);
values are finite numbers (``inf`` or ``1e400`` is an error).  Missing timestamps (gaps in
the grid) and missing values (empty cells) are filled by ``fill`` (``ffill``, ``linear``,
``zero``) or rejected (``error``, the default).  Errors are one line naming the file, the row
and the column.  A CSV row is the 1-based line of the file on which the record starts (the
header is row 1, as a spreadsheet counts); a Parquet row is the 1-based record::

    TimeSeriesError: data.csv: row 7, column 'load': non-numeric value 'n/a'

Calendar features (:func:`calendar_features`) are derived from timestamps alone, so they are
known for any future step; they follow GluonTS/Informer "time features", each in [-0.5, 0.5]
(hour of day ``hour/23 - 0.5``, day of week ``dow/6 - 0.5``, day of month ``(d-1)/30 - 0.5``,
day of year ``(doy-1)/365 - 0.5``, month ``(m-1)/11 - 0.5``, ...), chosen by frequency.

Example::

    data = read_timeseries("ETTh1.csv", targets=["OT"])
    s = data.series[0]                          # one Series
    s.target.shape, s.index.freqstr             # (17420, 1), 'h'
    cal, names = calendar_features(s.index)     # (17420, 4), ['hour_of_day', ...]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from rnnkit.data._show import shown, shown_list
from rnnkit.data._table import (
    TimeSeriesError,
    numeric_column,
    read_frame,
    timestamp_column,
)
from rnnkit.data._timegrid import (  # the grid checks; step_summary is public here too
    _check_order,
    _fill,
    _infer_freq,
    _regularize,
    step_summary,
)

__all__ = [
    "TimeSeriesError",
    "Series",
    "TimeSeriesData",
    "FILL_STRATEGIES",
    "read_timeseries",
    "calendar_features",
    "future_index",
    "steps_between",
    "step_summary",
]

FILL_STRATEGIES = ("error", "ffill", "linear", "zero")
Fill = Literal["error", "ffill", "linear", "zero"]


@dataclass
class Series:
    """One regular series.  ``T`` steps, ``C`` targets, ``P`` past, ``F`` future covariates.

    Attributes:
        id: the ``series_id`` value ("" for a single-series file).
        index: (T,) regular DatetimeIndex.
        target: (T, C) float64.
        past: (T, P) float64.
        future: (T, F) float64 known-future covariates from the file.
        rows: (T,) int, the file row of each step (0 where a gap was filled): CSV, the 1-based
            line the record starts on (the header is row 1); Parquet, the 1-based record.
        horizon_index / horizon_future / horizon_rows: trailing rows whose targets are all
            empty (only read with ``future_rows=True``): the known-future covariates for the
            steps to forecast, (H',), (H', F), (H',).
    """

    id: str
    index: pd.DatetimeIndex
    target: np.ndarray
    past: np.ndarray
    future: np.ndarray
    rows: np.ndarray
    horizon_index: pd.DatetimeIndex | None = None
    horizon_future: np.ndarray | None = None
    horizon_rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.index)


@dataclass
class TimeSeriesData:
    """What :func:`read_timeseries` returns: the schema and the series."""

    path: str
    time_col: str
    targets: list[str]
    past_covariates: list[str]
    future_covariates: list[str]
    series_id: str | None
    freq: str | None
    series: list[Series] = field(default_factory=list)
    filled: int = 0  # steps or values filled in


# --------------------------------------------------------------------------- calendar

_CAL = {
    "minute_of_hour": lambda ix: ix.minute / 59.0 - 0.5,
    "hour_of_day": lambda ix: ix.hour / 23.0 - 0.5,
    "day_of_week": lambda ix: ix.day_of_week / 6.0 - 0.5,
    "day_of_month": lambda ix: (ix.day - 1) / 30.0 - 0.5,
    "day_of_year": lambda ix: (ix.day_of_year - 1) / 365.0 - 0.5,
    "month_of_year": lambda ix: (ix.month - 1) / 11.0 - 0.5,
    "week_of_year": lambda ix: (ix.isocalendar().week.to_numpy() - 1) / 52.0 - 0.5,
}


def _calendar_names(freq: str | None) -> list[str]:
    """The features that vary at ``freq`` (GluonTS ``time_features_from_frequency_str``)."""
    if freq is None:
        return ["hour_of_day", "day_of_week", "day_of_month", "day_of_year"]
    off = pd.tseries.frequencies.to_offset(freq)
    name = type(off).__name__
    if name in ("Second", "Minute", "Milli", "Micro", "Nano"):
        return ["minute_of_hour", "hour_of_day", "day_of_week", "day_of_month", "day_of_year"]
    if name == "Hour":
        return ["hour_of_day", "day_of_week", "day_of_month", "day_of_year"]
    if name in ("Day", "BusinessDay", "CustomBusinessDay"):
        return ["day_of_week", "day_of_month", "day_of_year"]
    if name.startswith("Week"):
        return ["day_of_month", "week_of_year"]
    if "Month" in name or "Quarter" in name:
        return ["month_of_year"]
    return []  # yearly: nothing periodic


def calendar_features(
    index: pd.DatetimeIndex, freq: str | None = None
) -> tuple[np.ndarray, list[str]]:
    """Calendar features of ``index``: ``(T, K)`` float64 in [-0.5, 0.5] and their names."""
    index = pd.DatetimeIndex(index)
    names = _calendar_names(freq or index.freqstr)
    if not names:
        return np.zeros((len(index), 0)), []
    cols = [np.asarray(_CAL[n](index), dtype=np.float64) for n in names]
    return np.stack(cols, axis=1), names


def future_index(last: pd.Timestamp, freq: str, n: int) -> pd.DatetimeIndex:
    """The ``n`` timestamps after ``last`` on the ``freq`` grid."""
    return pd.date_range(last, periods=n + 1, freq=freq)[1:]


def steps_between(start: pd.Timestamp, ts: pd.DatetimeIndex, freq: str) -> np.ndarray:
    """Number of ``freq`` steps from ``start`` to each of ``ts`` (may be negative)."""
    off = pd.tseries.frequencies.to_offset(freq)
    ts = pd.DatetimeIndex(ts)
    if isinstance(off, pd.offsets.Tick):
        return np.asarray((ts - start) // pd.Timedelta(off), dtype=np.int64)
    lo = min(ts.min(), start) if len(ts) else start
    hi = max(ts.max(), start) if len(ts) else start
    grid = pd.date_range(lo, hi, freq=off)  # lo is start or one of ts, so on the grid if valid
    pos = grid.get_indexer(ts.append(pd.DatetimeIndex([start])))
    if (pos < 0).any():
        raise TimeSeriesError(f"timestamps are not on the {freq!r} grid through {start}")
    return pos[:-1] - pos[-1]


def read_timeseries(
    path: str | Path,
    *,
    time_col: str | None = None,
    targets: list[str] | None = None,
    past_covariates: list[str] | tuple[str, ...] = (),
    future_covariates: list[str] | tuple[str, ...] = (),
    series_id: str | None = None,
    freq: str | None = None,
    fill: Fill = "error",
    regular: bool = True,
    future_rows: bool = False,
) -> TimeSeriesData:
    """Read and validate a CSV (``.csv``/``.csv.gz``) or Parquet time-series file.

    Args:
        path: the file.
        time_col: timestamp column (default: the first column).
        targets: target columns (default: every column not named elsewhere).
        past_covariates / future_covariates: covariate columns (see the module docstring).
        series_id: column identifying series in long format (None: one series).
        freq: pandas frequency ("h", "15min", "MS", ...); inferred per file if None.
        fill: what to do with missing timestamps and values: "error" or a fill strategy.
        regular: if False, only check that timestamps strictly increase (no grid, no gaps
            filled, ``freq`` None; for irregular streams such as some NAB files).
        future_rows: split off trailing rows whose targets are all empty as the known-future
            covariates of the steps to forecast (prediction input).

    Raises:
        TimeSeriesError: naming the file, row and column (see the module docstring).
    """
    path = Path(path)
    if fill not in FILL_STRATEGIES:
        raise TimeSeriesError(
            f"data.fill={shown(fill)}: expected one of {', '.join(FILL_STRATEGIES)}"
        )
    if freq is not None:
        try:
            freq = pd.tseries.frequencies.to_offset(freq).freqstr
        except (ValueError, TypeError):
            raise TimeSeriesError(f"data.freq={shown(freq)}: not a pandas frequency; expected e.g. "
                                  "'h', '15min', 'D' or 'MS'") from None
    if not path.is_file():
        raise TimeSeriesError(f"{path}: file not found")
    frame, file_rows = read_frame(path)
    if frame.shape[1] == 0 or len(frame) == 0:
        raise TimeSeriesError(f"{path}: no data rows")
    columns = list(frame.columns)
    time_col = time_col or columns[0]
    past, fut = list(past_covariates), list(future_covariates)
    named = [time_col] + ([series_id] if series_id else []) + past + fut
    if targets is None or len(targets) == 0:
        targets = [c for c in columns if c not in named]
    for c in named + list(targets):
        if c not in columns:
            raise TimeSeriesError(
                f"{path}: row 1: no column {shown(c)}; the columns are {shown_list(columns)}"
            )
    if not targets:
        hint = ""
        if len(columns) == 1 and any(sep in str(columns[0]) for sep in ";\t|"):
            hint = "; the file looks separated by ';', tab or '|', and only ',' is read"
        raise TimeSeriesError(
            f"{path}: row 1: no target column left (columns: {shown_list(columns)}){hint}"
        )
    ids = [time_col] + ([series_id] if series_id else [])
    for role, cols in (("targets", list(targets)), ("past_covariates", past),
                       ("future_covariates", fut), ("time_col/series_id", ids)):
        twice = sorted({c for c in cols if cols.count(c) > 1})
        if twice or (role != "time_col/series_id" and set(cols) & set(ids)):
            c = twice[0] if twice else sorted(set(cols) & set(ids))[0]
            raise TimeSeriesError(
                f"{path}: column {shown(c)} is given twice (in data.{role}"
                f"{'' if twice else ' and as the time or series column'}); each column may "
                "have one role"
            )
    overlap = set(targets) & (set(past) | set(fut))
    if overlap or set(past) & set(fut):
        raise TimeSeriesError(
            f"{path}: column {shown(sorted(overlap or set(past) & set(fut))[0])} is given "
            "twice (as target/past/future); each column may have one role"
        )
    ts_all = timestamp_column(path, frame, file_rows, time_col)
    value_cols = list(targets) + past + fut
    values_all = np.stack(
        [numeric_column(path, frame, file_rows, c) for c in value_cols], axis=1
    )  # (N, C+P+F)
    if series_id:
        ids = frame[series_id].astype("string").fillna("").str.strip().to_numpy()
        groups = {}
        for i, s in enumerate(ids):
            groups.setdefault(str(s), []).append(i)
        if "" in groups:
            raise TimeSeriesError(
                f"{path}: row {file_rows[groups[''][0]]}, column {shown(series_id)}: "
                "empty series id"
            )
    else:
        groups = {"": list(range(len(frame)))}
    C, P = len(targets), len(past)
    for sid, idx in groups.items():
        _check_order(path, ts_all[np.asarray(idx)], file_rows[np.asarray(idx)], time_col, sid)
    inferred = regular and freq is None
    if inferred:  # one grid for the file, read off its longest series
        longest = np.asarray(max(groups.values(), key=len))
        freq = _infer_freq(path, ts_all[longest], file_rows[longest], time_col)
    out = TimeSeriesData(
        str(path), time_col, list(targets), past, fut, series_id, freq if regular else None
    )
    for sid, idx in groups.items():
        pos = np.asarray(idx)
        ts, vals, rows = ts_all[pos], values_all[pos], file_rows[pos]
        h_ix = h_fut = h_rows = None
        if future_rows:
            empty = np.isnan(vals[:, :C]).all(axis=1)
            n_tail = len(empty) - (int(np.flatnonzero(~empty)[-1]) + 1 if (~empty).any() else 0)
            if n_tail:
                h_ix, h_fut, h_rows = ts[-n_tail:], vals[-n_tail:, C + P:], rows[-n_tail:]
                ts, vals, rows = ts[:-n_tail], vals[:-n_tail], rows[:-n_tail]
        if len(ts) == 0:
            raise TimeSeriesError(f"{path}: series {shown(sid)} has no rows with target values")
        if regular:
            grid, vals, rows, n = _regularize(
                path, ts, rows, value_cols, vals, freq, fill, time_col, sid, inferred=inferred
            )
            out.filled += n
        else:
            grid = ts
            if np.isnan(vals).any():
                if fill == "error":
                    i, k = (int(v[0]) for v in np.nonzero(np.isnan(vals)))
                    raise TimeSeriesError(
                        f"{path}: row {rows[i]}, column {shown(value_cols[k])}: missing value; "
                        "set data.fill to ffill, linear or zero to fill it"
                    )
                out.filled += int(np.isnan(vals).sum())
                vals = _fill(vals, fill)
        out.series.append(Series(sid, pd.DatetimeIndex(grid, freq=out.freq if regular else None),
                                 vals[:, :C], vals[:, C:C + P], vals[:, C + P:], rows,
                                 h_ix, h_fut, h_rows))
    return out
