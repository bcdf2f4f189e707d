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
    pd_infer_freq,
    read_frame,
    timestamp_column,
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


# --------------------------------------------------------------------------- checking


def step_summary(ts: pd.DatetimeIndex) -> dict[str, str | int | None]:
    """The typical step of increasing timestamps ``ts`` and the gaps in them.

    Returns ``{"step", "gaps", "largest_gap", "first_gap_after"}``: the median step, how many
    steps are at least 1.5 times it (a missing row or more), the longest step, and the
    timestamp before the first gap (None without gaps).  Steps print as pandas frequencies
    (``5min``, ``h``, ``3D``).
    """
    if len(ts) < 2:
        return {"step": None, "gaps": 0, "largest_gap": None, "first_gap_after": None}
    d = np.diff(ts.asi8)
    med = np.median(d)
    gap = d >= 1.5 * med if med > 0 else np.zeros(len(d), dtype=bool)
    def shown_step(k) -> str:
        return pd.tseries.frequencies.to_offset(pd.Timedelta(int(k), unit=ts.unit)).freqstr

    return {
        "step": shown_step(med),
        "gaps": int(gap.sum()),
        "largest_gap": shown_step(d.max()) if gap.any() else None,
        "first_gap_after": str(ts[int(np.flatnonzero(gap)[0])]) if gap.any() else None,
    }


def _in(sid: str) -> str:
    return f" in series {shown(sid)}" if sid else ""


def _check_order(path: Path, ts: pd.DatetimeIndex, rows: np.ndarray, col: str, sid: str) -> None:
    d = np.diff(ts.asi8)  # in the index's own unit; only the sign matters here
    if (d > 0).all():
        return
    i = int(np.flatnonzero(d <= 0)[0])
    kind = "duplicate" if d[i] == 0 else "non-monotonic"
    raise TimeSeriesError(
        f"{path}: row {rows[i + 1]}, column {shown(col)}: {kind} timestamp {ts[i + 1]} "
        f"after {ts[i]} at row {rows[i]}{_in(sid)} (timestamps must strictly increase)"
    )


def _grid_size(ts: pd.DatetimeIndex, off: pd.DateOffset) -> float:
    """About how many steps of ``off`` span ``ts`` (cheap: before building the grid)."""
    step = pd.Timedelta(off) if isinstance(off, pd.offsets.Tick) else (ts[0] + off) - ts[0]
    return (ts[-1] - ts[0]) / max(step, pd.Timedelta(1, unit="ns")) + 1


def _off_grid(ts: pd.DatetimeIndex, off: pd.DateOffset) -> np.ndarray:
    """(N,) True where a timestamp of ``ts`` is off the ``off`` grid that holds most of them.

    A fixed step's grid is anchored where most timestamps fall (so an off-grid first row is
    found too); a calendar step's grid is anchored at the first timestamp.
    """
    if isinstance(off, pd.offsets.Tick):
        k = int(pd.Timedelta(off) // pd.Timedelta(1, unit=ts.unit))  # the step in ts's unit
        r = ts.asi8 % max(k, 1)
        vals, counts = np.unique(r, return_counts=True)
        return r != vals[np.argmax(counts)]
    return pd.date_range(ts[0], ts[-1], freq=off).get_indexer(ts) < 0


def _infer_freq(path: Path, ts: pd.DatetimeIndex, rows: np.ndarray, col: str) -> str:
    """The grid of strictly increasing ``ts``: the coarsest candidate that holds every timestamp.

    ``pd.infer_freq`` answers only when no step is missing.  Otherwise the candidates are
    ``pd.infer_freq`` of runs of three timestamps spread over the series (one gap spoils only
    the runs around it; this finds calendar steps such as ``MS``), then the most common step
    and the greatest common step (fixed lengths, measured in the index's own unit: pandas may
    parse timestamps as s, ms, us or ns; whole days are ``D``, as pd.infer_freq says).  A grid
    that would leave more than half of its steps missing is refused: the series is too sparse
    to guess, and ``data.freq`` must say.  A few timestamps (at most 1%, at least one) off a
    grid that holds the rest are an error at their row (file row ``rows[i]`` of ``ts[i]``)
    when taking them in would make the grid half as fine or finer, or leave no grid at all:
    hourly data with one ``10:30`` is a typo to fix, not half-hourly data with every other step
    missing (``data.freq`` says otherwise where the finer grid is meant).
    """
    if len(ts) >= 3 and (f := pd_infer_freq(ts)) is not None:
        return f.freqstr
    if len(ts) < 2:
        raise TimeSeriesError(
            f"{path}: column {shown(col)}: cannot infer a frequency from {len(ts)} "
            "timestamp(s); set data.freq"
        )
    cands: list[pd.DateOffset] = []
    if len(ts) >= 3:  # runs of 3, the fewest pd.infer_freq reads, at up to 32 places
        for a in np.unique(np.linspace(0, len(ts) - 3, num=min(32, len(ts) - 2)).astype(int)):
            f = pd_infer_freq(ts[a:a + 3])
            if f is not None and f not in cands:
                cands.append(f)
    d = np.diff(ts.asi8)  # (N-1,) steps in units of ts.unit
    vals, counts = np.unique(d, return_counts=True)
    # the modal step, the common one
    for k in (int(vals[np.argmax(counts)]), int(np.gcd.reduce(d))):
        step = pd.Timedelta(k, unit=ts.unit)
        if step < pd.Timedelta(days=28):  # months and years are calendar steps, not fixed lengths
            whole_days = step % pd.Timedelta(days=1) == pd.Timedelta(0)
            off = (
                pd.offsets.Day(step.days) if whole_days else pd.tseries.frequencies.to_offset(step)
            )
            if off not in cands:
                cands.append(off)
    best, best_n = None, None
    for off in cands:
        if _grid_size(ts, off) > 4 * len(ts) + 8:  # far too sparse; do not build the grid
            continue
        grid = pd.date_range(ts[0], ts[-1], freq=off)
        if (grid.get_indexer(ts) < 0).any():
            continue
        if best is None or len(grid) < best_n:
            best, best_n = off, len(grid)
    near = None  # the coarsest candidate that all but a few timestamps lie on
    for off in cands:
        if _grid_size(ts, off) > 4 * len(ts) + 8:
            continue
        stray = _off_grid(ts, off)
        if 0 < stray.sum() <= max(1, len(ts) // 100):
            n = _grid_size(ts[~stray], off)
            if near is None or n < near[1]:
                near = (off, n, stray)
    if near is not None and (best is None or best_n > 1.5 * near[1]):
        off, _, stray = near
        i = int(np.flatnonzero(stray)[0])
        finer = f"data.freq={best.freqstr!r}" if best is not None else "data.freq"
        raise TimeSeriesError(
            f"{path}: row {rows[i]}, column {shown(col)}: timestamp {ts[i]} is off the "
            f"{off.freqstr!r} grid that holds the other {int((~stray).sum())} timestamps "
            f"({int(stray.sum())} off it); correct or drop the row, or set {finer} if the "
            "finer grid is meant"
        )
    if best is not None and best_n <= 2 * len(ts):
        return best.freqstr
    why = (
        f"the finest grid holding them, {best.freqstr!r}, would add {best_n - len(ts)} "
        f"missing steps to {len(ts)}"
        if best is not None
        else "no regular grid holds them"
    )
    raise TimeSeriesError(f"{path}: column {shown(col)}: cannot infer a frequency from {len(ts)} "
                          f"timestamps ({why}); set data.freq, e.g. 'h' or 'MS'")


def _fill(values: np.ndarray, how: str) -> np.ndarray:
    """Fill NaN in each column of (T, K) ``values``: forward fill, linear, or zero."""
    if how == "zero":
        return np.where(np.isnan(values), 0.0, values)
    df = pd.DataFrame(values)
    if how == "ffill":
        return df.ffill().bfill().to_numpy(dtype=np.float64)  # leading gaps take the first value
    with np.errstate(over="ignore", invalid="ignore"):
        out = df.interpolate(method="linear", limit_direction="both").to_numpy(dtype=np.float64)
        if not np.isfinite(out).all():  # the slope between values near +-1.8e308 overflowed:
            scale = np.nanmax(np.abs(values), axis=0)  # (K,) interpolate in [-1, 1] instead
            scale = np.where(scale > 0, scale, 1.0)
            scaled = pd.DataFrame(values / scale).interpolate(
                method="linear", limit_direction="both"
            )
            out = np.where(np.isnan(values), scaled.to_numpy(dtype=np.float64) * scale, values)
    return out


def _regularize(path, ts, rows, cols, values, freq, fill, time_col, sid):
    """Put one series on its ``freq`` grid: detect gaps and missing values; fill or raise.

    ``rows`` (T,) are the file rows of ``ts``; returns the grid, the values on it, the file
    row of each grid step (0 where a step was filled in) and how many steps/values were filled.
    """
    where = _in(sid)
    if _grid_size(ts, pd.tseries.frequencies.to_offset(freq)) > 50 * len(ts) + 10**6:
        raise TimeSeriesError(
            f"{path}: column {shown(time_col)}: the {freq!r} grid from {ts[0]} to {ts[-1]} "
            f"has about {_grid_size(ts, pd.tseries.frequencies.to_offset(freq)):.3g} steps "
            f"for {len(ts)} rows{where}; check data.freq"
        )
    grid = pd.date_range(ts[0], ts[-1], freq=freq)
    at = grid.get_indexer(ts)
    if (at < 0).any():
        i = int(np.flatnonzero(at < 0)[0])
        off = pd.tseries.frequencies.to_offset(freq)
        on = off.is_on_offset(ts[0])  # a month-end date on a month-start grid is not
        step = f"starting at {ts[0]}" if on else f"(its next step is {off.rollforward(ts[i])})"
        raise TimeSeriesError(f"{path}: row {rows[i]}, column {shown(time_col)}: timestamp "
                              f"{ts[i]} is not on the {freq!r} grid {step}{where}")
    n_gaps = len(grid) - len(ts)
    if n_gaps and fill == "error":
        j = int(np.flatnonzero(np.diff(at) > 1)[0])
        raise TimeSeriesError(
            f"{path}: row {rows[j + 1]}, column {shown(time_col)}: {n_gaps} missing "
            f"timestamp(s){where}, the first is {grid[at[j] + 1]} (between rows "
            f"{rows[j]} and {rows[j + 1]}); set data.fill to ffill, linear or zero to fill them")
    full = np.full((len(grid), values.shape[1]), np.nan)
    full[at] = values
    grid_rows = np.zeros(len(grid), dtype=np.int64)
    grid_rows[at] = rows
    missing = np.isnan(values)
    if missing.any() and fill == "error":
        i, k = (int(v[0]) for v in np.nonzero(missing))
        raise TimeSeriesError(
            f"{path}: row {rows[i]}, column {shown(cols[k])}: missing "
            f"value{where} ({int(missing.sum())} in all); set data.fill to ffill, "
            "linear or zero to fill them"
        )
    if np.isnan(full).all(axis=0).any():
        k = int(np.flatnonzero(np.isnan(full).all(axis=0))[0])
        raise TimeSeriesError(f"{path}: column {shown(cols[k])}: no values at all{where}")
    filled = n_gaps + int(missing.sum())
    return grid, (_fill(full, fill) if filled else full), grid_rows, filled


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
    if regular and freq is None:  # one grid for the file, read off its longest series
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
                path, ts, rows, value_cols, vals, freq, fill, time_col, sid
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
