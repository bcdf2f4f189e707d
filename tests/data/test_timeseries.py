"""The time-series reader: formats, long format, calendar features, gaps, and bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnkit.data.timeseries import (
    TimeSeriesError,
    calendar_features,
    future_index,
    read_timeseries,
    steps_between,
)

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"


def _csv(tmp_path: Path, text: str, name: str = "s.csv") -> Path:
    p = tmp_path / name
    p.write_text(text.strip() + "\n")
    return p


HOURLY = """
date,load,temp,flag
2020-01-01 00:00,1.0,10,0
2020-01-01 01:00,2.0,11,0
2020-01-01 02:00,3.0,12,1
2020-01-01 03:00,4.0,13,0
"""


def test_reads_targets_and_covariates_with_file_rows(tmp_path):
    d = read_timeseries(_csv(tmp_path, HOURLY), targets=["load"], past_covariates=["temp"],
                        future_covariates=["flag"])
    s = d.series[0]
    assert d.freq == "h" and d.time_col == "date"
    np.testing.assert_array_equal(s.target[:, 0], [1, 2, 3, 4])
    np.testing.assert_array_equal(s.past[:, 0], [10, 11, 12, 13])
    np.testing.assert_array_equal(s.future[:, 0], [0, 0, 1, 0])
    np.testing.assert_array_equal(s.rows, [2, 3, 4, 5])  # the header is row 1


def test_targets_default_to_the_remaining_columns(tmp_path):
    d = read_timeseries(_csv(tmp_path, HOURLY), past_covariates=["temp"])
    assert d.targets == ["load", "flag"]


def test_calendar_features_hand_values():
    ix = pd.date_range("2021-01-04 00:00", periods=24, freq="h")  # a Monday
    f, names = calendar_features(ix)
    assert names == ["hour_of_day", "day_of_week", "day_of_month", "day_of_year"]
    assert f[0, 0] == -0.5 and f[23, 0] == 0.5  # hour 0 and 23
    assert f[0, 1] == -0.5  # Monday
    assert f[0, 2] == pytest.approx(3 / 30 - 0.5)  # day 4
    assert f[0, 3] == pytest.approx(3 / 365 - 0.5)
    m, names = calendar_features(pd.date_range("2020-01-01", periods=12, freq="MS"))
    assert names == ["month_of_year"]
    np.testing.assert_allclose(m[:, 0], np.arange(12) / 11 - 0.5)


def test_long_format_gives_one_series_per_id_with_original_rows(tmp_path):
    text = """
t,id,y
2020-01-01,a,1
2020-01-01,b,10
2020-01-02,a,2
2020-01-02,b,20
2020-01-03,a,3
"""
    d = read_timeseries(_csv(tmp_path, text), series_id="id")
    assert [s.id for s in d.series] == ["a", "b"]
    np.testing.assert_array_equal(d.series[0].target[:, 0], [1, 2, 3])
    np.testing.assert_array_equal(d.series[1].rows, [3, 5])


def test_parquet_reads_like_csv(tmp_path):
    df = pd.DataFrame({"ts": pd.date_range("2020-01-01", periods=5, freq="D"), "v": np.arange(5.0)})
    p = tmp_path / "x.parquet"
    df.to_parquet(p)
    d = read_timeseries(p)
    assert d.freq == "D"
    np.testing.assert_array_equal(d.series[0].target[:, 0], np.arange(5.0))
    np.testing.assert_array_equal(d.series[0].rows, [1, 2, 3, 4, 5])  # Parquet: 1-based records


GAPPY = """
date,y
2020-01-01 00:00,1
2020-01-01 01:00,2
2020-01-01 03:00,6
2020-01-01 04:00,
2020-01-01 05:00,10
"""


@pytest.mark.parametrize("fill, expected", [
    ("ffill", [1, 2, 2, 6, 6, 10]),
    ("linear", [1, 2, 4, 6, 8, 10]),
    ("zero", [1, 2, 0, 6, 0, 10]),
])
def test_missing_timestamps_and_values_are_filled(tmp_path, fill, expected):
    d = read_timeseries(_csv(tmp_path, GAPPY), fill=fill, freq="h")
    s = d.series[0]
    np.testing.assert_array_equal(s.target[:, 0], expected)
    np.testing.assert_array_equal(s.rows, [2, 3, 0, 4, 5, 6])  # 0 marks the inserted step
    assert d.filled == 2


def test_missing_timestamp_is_an_error_naming_file_row_and_column(tmp_path):
    p = _csv(tmp_path, GAPPY)
    with pytest.raises(TimeSeriesError, match=r"s\.csv: row 4, column 'date': 1 missing timestamp\(s\), the "
                       r"first is 2020-01-01 02:00:00 \(between rows 3 and 4\)"):
        read_timeseries(p, freq="h")


def test_missing_value_is_an_error_naming_row_and_column(tmp_path):
    p = _csv(tmp_path, GAPPY.replace("2020-01-01 03:00,6\n", "2020-01-01 02:00,4\n2020-01-01 03:00,6\n"))
    with pytest.raises(TimeSeriesError, match=r"s\.csv: row 6, column 'y': missing value"):
        read_timeseries(p)


@pytest.mark.parametrize("text, message", [
    (HOURLY.replace("3.0,12", "n/a,12"), r"s\.csv: row 4, column 'load': non-numeric value 'n/a'"),
    (HOURLY.replace("02:00,3.0", "01:00,3.0"),
     r"s\.csv: row 4, column 'date': duplicate timestamp 2020-01-01 01:00:00 after .* at row 3"),
    (HOURLY.replace("03:00,4.0", "00:30,4.0"),
     r"s\.csv: row 5, column 'date': non-monotonic timestamp 2020-01-01 00:30:00 after 2020-01-01 02:00:00 at row 4"),
    (HOURLY.replace("2020-01-01 01:00", "yesterday"), r"s\.csv: row 3, column 'date': 'yesterday' has no date"),
    (HOURLY, r"s\.csv: row 1: no column 'wind'"),
])
def test_bad_input_names_file_row_and_column(tmp_path, text, message):
    p = _csv(tmp_path, text)
    with pytest.raises(TimeSeriesError, match=message):
        read_timeseries(p, targets=["load", "wind"] if "wind" in message else None)


def test_off_grid_timestamp_is_an_error(tmp_path):
    p = _csv(tmp_path, HOURLY.replace("02:00,3.0", "02:30,3.0"))
    with pytest.raises(TimeSeriesError, match=r"row 4, column 'date': timestamp 2020-01-01 02:30:00 is not on the 'h' grid"):
        read_timeseries(p, freq="h")


def test_duplicate_in_one_series_of_a_long_file_names_the_series(tmp_path):
    text = "t,id,y\n2020-01-01,a,1\n2020-01-01,b,2\n2020-01-01,b,3\n"
    with pytest.raises(TimeSeriesError, match=r"row 4, column 't': duplicate .* in series 'b'"):
        read_timeseries(_csv(tmp_path, text), series_id="id")


def test_trailing_rows_without_targets_become_the_forecast_covariates(tmp_path):
    text = HOURLY + "2020-01-01 04:00,,14,1\n2020-01-01 05:00,,15,0\n"
    s = read_timeseries(_csv(tmp_path, text), targets=["load"], future_covariates=["flag"],
                        past_covariates=["temp"], future_rows=True).series[0]
    assert len(s) == 4
    assert list(s.horizon_index.hour) == [4, 5]
    np.testing.assert_array_equal(s.horizon_future[:, 0], [1, 0])
    np.testing.assert_array_equal(s.horizon_rows, [6, 7])


def test_steps_between_and_future_index():
    ix = pd.date_range("1949-01-01", periods=30, freq="MS")
    np.testing.assert_array_equal(steps_between(ix[3], ix[[0, 3, 29]], "MS"), [-3, 0, 26])
    np.testing.assert_array_equal(steps_between(pd.Timestamp("2020-01-01"),
                                                 pd.date_range("2020-01-02", periods=2, freq="h"), "h"), [24, 25])
    assert list(future_index(ix[-1], "MS", 2)) == [pd.Timestamp("1951-07-01"), pd.Timestamp("1951-08-01")]


@pytest.mark.skipif(not (DATA / "ett" / "ETTh1.csv").is_file(), reason="needs ../shared/datasets/ett/ETTh1.csv")
def test_etth1_reads_as_published():
    d = read_timeseries(DATA / "ett" / "ETTh1.csv", targets=["OT"])
    s = d.series[0]
    assert d.freq == "h" and len(s) == 17420 and d.filled == 0
    assert s.target[0, 0] == pytest.approx(30.5310001373291)
    assert s.index[0] == pd.Timestamp("2016-07-01 00:00")


# --------------------------------------------------------------------------- issue 19: gaps, inf


def _hourly_without(tmp_path, n=600, drop=300, name="h.csv"):
    ix = pd.date_range("2021-01-01", periods=n, freq="h")
    lines = [f"{t:%Y-%m-%d %H:%M:%S},{i}" for i, t in enumerate(ix) if i != drop]
    return _csv(tmp_path, "date,y\n" + "\n".join(lines), name), ix


def test_inferred_frequency_survives_one_missing_timestamp(tmp_path):
    # pd.infer_freq fails on a gap; the fallback read microseconds as nanoseconds (3.6 s grid)
    p, ix = _hourly_without(tmp_path)
    d = read_timeseries(p, fill="linear")
    s = d.series[0]
    assert d.freq == "h" and len(s) == 600 and d.filled == 1
    assert s.index.equals(pd.DatetimeIndex(ix, freq="h"))
    np.testing.assert_array_equal(s.target[:, 0], np.arange(600.0))  # linear fill of a linear series
    assert s.rows[300] == 0 and s.rows[301] == 302


def test_inferred_frequency_gap_is_reported_at_its_row(tmp_path):
    p, _ = _hourly_without(tmp_path)  # data row 301 (file row 302) was 2021-01-13 12:00
    with pytest.raises(TimeSeriesError, match=r"h\.csv: row 302, column 'date': 1 missing timestamp\(s\), "
                       r"the first is 2021-01-13 12:00:00 \(between rows 301 and 302\)"):
        read_timeseries(p)


def test_monthly_gap_is_reported_at_its_row_and_filled(tmp_path):
    ix = pd.date_range("1949-01-01", periods=144, freq="MS")
    lines = [f"{t:%Y-%m},{i}" for i, t in enumerate(ix) if i != 70]  # 1954-11 missing
    p = _csv(tmp_path, "Month,Passengers\n" + "\n".join(lines), "m.csv")
    with pytest.raises(TimeSeriesError, match=r"m\.csv: row 72, column 'Month': 1 missing timestamp\(s\), "
                       r"the first is 1954-11-01 00:00:00 \(between rows 71 and 72\)"):
        read_timeseries(p)
    d = read_timeseries(p, fill="linear")
    assert d.freq == "MS" and len(d.series[0]) == 144
    np.testing.assert_array_equal(d.series[0].target[:, 0], np.arange(144.0))


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("freq", ["15min", "h", "D"])
def test_inferred_frequency_is_right_at_every_timestamp_resolution(tmp_path, unit, freq):
    ix = pd.date_range("2020-01-01", periods=50, freq=freq).as_unit(unit)
    keep = np.r_[0:20, 21:50]
    p = tmp_path / "x.parquet"
    pd.DataFrame({"t": ix[keep], "v": keep.astype(float)}).to_parquet(p)
    d = read_timeseries(p, fill="linear")
    assert d.freq == freq and len(d.series[0]) == 50
    np.testing.assert_array_equal(d.series[0].target[:, 0], np.arange(50.0))
    with pytest.raises(TimeSeriesError, match=r"row 21, column 't': 1 missing timestamp"):
        read_timeseries(p)  # Parquet rows are 1-based records: the 21st is the first after the gap


def test_sparse_timestamps_do_not_get_a_fine_inferred_grid(tmp_path):
    # no grid holds these without inventing most of the steps: ask for data.freq, never fill
    p = _csv(tmp_path, "t,y\n2020-01-01 00:00,1\n2020-01-01 01:00,2\n2020-01-01 01:07,3\n"
                       "2020-01-01 09:00,4\n")
    with pytest.raises(TimeSeriesError, match=r"s\.csv: column 't': cannot infer a frequency.*set data\.freq"):
        read_timeseries(p, fill="linear")


@pytest.mark.parametrize("at,shift,row,finer", [
    (57, 30, 59, "data.freq='30min' "),  # a typo'd minute would have made the grid 30min
    (0, 30, 2, "data.freq='30min' "),  # the first row is the stray one: the grid is the others'
    (120, 17, 122, "data.freq "),  # 17 minutes off: only a 1-minute grid holds it
])
def test_one_off_grid_timestamp_is_an_error_not_a_finer_grid(tmp_path, at, shift, row, finer):
    ix = pd.date_range("2021-01-01", periods=200, freq="h")
    ts = ix.insert(at, ix[at] + pd.Timedelta(minutes=shift)).delete(at + 1)
    p = _csv(tmp_path, "date,y\n" + "\n".join(f"{t:%Y-%m-%d %H:%M},{i}" for i, t in enumerate(ts)))
    msg = (rf"s\.csv: row {row}, column 'date': timestamp {re.escape(str(ts[at]))} is off the 'h' "
           rf"grid that holds the other 199 timestamps \(1 off it\); correct or drop the row, "
           rf"or set {re.escape(finer)}if the finer grid is meant")
    for fill in ("error", "linear"):  # before: a 30min grid with 199 steps filled in (linear)
        with pytest.raises(TimeSeriesError, match=msg):
            read_timeseries(p, fill=fill)
    d = read_timeseries(p, freq="30min", fill="linear") if shift == 30 else None
    # data.freq still decides (the grid starts at the first timestamp, 00:30 when at == 0)
    assert d is None or (d.freq == "30min" and d.filled == (199 if at else 198))


@pytest.mark.parametrize("freq,stray,finer", [
    ("D", pd.Timestamp("2020-01-01 12:00"), "data.freq='12h' "),  # pandas 3: Day is no Tick
    ("MS", pd.Timestamp("2020-01-15"), "data.freq "),  # a calendar grid, anchored at row 3
])
def test_a_stray_first_row_is_found_on_day_and_calendar_grids(tmp_path, freq, stray, finer):
    ix = pd.date_range("2020-01-01", periods=120, freq=freq)
    ts = ix.delete(0).insert(0, stray)  # before: a 12h grid, 119 steps interpolated (daily)
    p = _csv(tmp_path, "date,y\n" + "\n".join(f"{t:%Y-%m-%d %H:%M},{i}" for i, t in enumerate(ts)))
    for fill in ("error", "linear"):
        with pytest.raises(TimeSeriesError, match=rf"s\.csv: row 2, column 'date': timestamp "
                           rf"{re.escape(str(stray))} is off the '{freq}' grid that holds the "
                           rf"other 119 timestamps .*or set {re.escape(finer)}if"):
            read_timeseries(p, fill=fill)


def test_another_series_may_not_be_mostly_filled_in_on_the_inferred_grid(tmp_path):
    # found by HYPOTHESIS_PROFILE=long: series b's year 200 (a typo) and 2000 made 657,438
    # daily steps, two observed, all the rest interpolated
    rows = [f"2000-01-{d:02d},a,{d}" for d in range(1, 9)] + ["0200-01-01,b,0", "2000-01-02,b,1"]
    p = _csv(tmp_path, "date,id,v\n" + "\n".join(rows))
    with pytest.raises(TimeSeriesError, match=r"s\.csv: row 10, column 'date': the 2 rows in series "
                       r"'b' from 0200-01-01 00:00:00 to 2000-01-02 00:00:00 span about 6\.57e\+05 "
                       r"steps of the 'D' grid inferred from the file's longest series"):
        read_timeseries(p, series_id="id", fill="linear")
    ok = p.read_text().replace("0200-01-01,b", "2000-01-01,b")
    p.write_text(ok)
    assert len(read_timeseries(p, series_id="id", fill="linear").series[1]) == 2


def test_a_finer_grid_part_of_the_file_is_not_a_stray_timestamp(tmp_path):
    # hourly, then half-hourly: far more than 1% off the hourly grid, so the 30min grid is read
    ix = pd.date_range("2021-01-01", periods=100, freq="h").append(
        pd.date_range("2021-01-05 04:30", periods=100, freq="30min"))
    p = _csv(tmp_path, "date,y\n" + "\n".join(f"{t:%Y-%m-%d %H:%M},{i}" for i, t in enumerate(ix)))
    d = read_timeseries(p, fill="linear")
    assert d.freq == "30min" and d.filled == 101  # 99 between the hourly steps, 2 at the switch


@pytest.mark.parametrize("value", ["inf", "-Infinity", "1e400", "+INF", "-1e999"])
def test_infinite_values_are_rejected_naming_row_and_column(tmp_path, value):
    p = _csv(tmp_path, HOURLY.replace("3.0,12", f"{value},12"))
    with pytest.raises(TimeSeriesError, match=rf"s\.csv: row 4, column 'load': non-finite value '{re.escape(value)}' "
                       r"\(expected a finite number or an empty cell\)"):
        read_timeseries(p, fill="linear")


def test_infinite_values_in_parquet_are_rejected(tmp_path):
    df = pd.DataFrame({"ts": pd.date_range("2020-01-01", periods=5, freq="D"),
                       "v": [1.0, 2.0, np.inf, 4.0, 5.0], "w": [1.0, 2.0, 3.0, -np.inf, np.nan]})
    p = tmp_path / "x.parquet"
    df.to_parquet(p)
    with pytest.raises(TimeSeriesError, match=r"x\.parquet: row 3, column 'v': non-finite value inf"):
        read_timeseries(p, fill="linear")
    with pytest.raises(TimeSeriesError, match=r"x\.parquet: row 4, column 'w': non-finite value -inf"):
        read_timeseries(p, targets=["w"], fill="linear")


@pytest.mark.parametrize("where", ["value", "timestamp", "series", "header"])
def test_a_huge_cell_is_not_echoed_in_full(tmp_path, where):
    big = "1" * 2_000_000 + "x"  # a digit blob: pandas once took minutes to refuse it as a timestamp
    rows = ["t,id,y", "2020-01-01,a,1", "2020-01-02,a,2", "2020-01-03,a,3"]
    if where == "value":
        rows[2] = f"2020-01-02,a,{big}"
    elif where == "timestamp":
        rows[2] = f"{big},a,2"
    elif where == "series":
        rows[2], rows[3] = f"2020-01-02,{big},2", f"2020-01-01,{big},3"
    else:
        rows[0] = f"t,id,{big}"
    p = _csv(tmp_path, "\n".join(rows))
    with pytest.raises(TimeSeriesError, match=r"s\.csv: row \d.*'1{40}'\.\.\. \(2,000,001 characters\)") as e:
        read_timeseries(p, series_id="id", targets=None if where == "header" else ["y", "zz"][:1],
                        time_col="t", past_covariates=["nope"] if where == "header" else ())
    assert len(str(e.value)) < 300


def test_linear_fill_between_huge_values_stays_finite(tmp_path):
    # found by the fuzz tests: the slope between +-1.8e308 overflowed to inf/nan in the filled step
    p = _csv(tmp_path, "t,y,z\n2020-01-01,5,0\n2020-01-02,1.7e308,0\n2020-01-04,-1.7e308,0\n2020-01-05,0,0\n")
    s = read_timeseries(p, fill="linear").series[0]  # z: an all-zero column beside it
    assert np.isfinite(s.target).all() and abs(s.target[2, 0]) < 1e300 and s.target[2, 1] == 0
    np.testing.assert_array_equal(s.target[[0, 1, 3, 4], 0], [5, 1.7e308, -1.7e308, 0])


def test_time_zone_offsets_that_change_read_in_utc_and_mixing_naive_is_an_error(tmp_path):
    # pandas 3 raises a bare "Mixed timezones detected" ValueError for both
    dst = _csv(tmp_path, "t,y\n2021-03-28 00:00+01:00,1\n2021-03-28 01:00+01:00,2\n"
                         "2021-03-28 03:00+02:00,3\n2021-03-28 04:00+02:00,4\n", "dst.csv")
    s = read_timeseries(dst).series[0]
    assert list(s.index.hour) == [23, 0, 1, 2] and s.index.tz is None  # UTC, one hourly grid
    mixed = _csv(tmp_path, "t,y\n2021-03-28 00:00,1\n2021-03-28 01:00+01:00,2\n2021-03-28 02:00,3\n", "mixed.csv")
    with pytest.raises(TimeSeriesError, match=r"mixed\.csv: row 3, column 't': timestamp '2021-03-28 01:00\+01:00' "
                                              r"has a time zone but row 2's has none"):
        read_timeseries(mixed)


def _dates(tmp_path, cells, name="d.csv"):
    return _csv(tmp_path, "t,y\n" + "".join(f"{c},{i}\n" for i, c in enumerate(cells)), name)


def test_day_first_dates_are_read_day_first_for_the_whole_column(tmp_path):
    # pandas alone reads "01/12/2000" month-first and "13/12/2000" day-first in one column
    s = read_timeseries(_dates(tmp_path, ["10/12/2000", "11/12/2000", "12/12/2000", "13/12/2000"]))
    assert s.freq == "D" and [str(t.date()) for t in s.series[0].index] == [
        "2000-12-10", "2000-12-11", "2000-12-12", "2000-12-13"]
    s = read_timeseries(_dates(tmp_path, ["12/10/2000", "12/11/2000", "12/12/2000", "12/13/2000"]))
    assert [str(t.date()) for t in s.series[0].index][-1] == "2000-12-13"  # month-first


def test_day_month_order_is_taken_from_the_regular_grid(tmp_path):
    # month-first reads a regular monthly grid; day-first would be Jan 1..12, then 2001-01-01
    cells = [f"{m:02d}/01/2000" for m in range(1, 13)] + ["01/01/2001", "02/01/2001"]
    s = read_timeseries(_dates(tmp_path, cells))
    assert s.freq == "MS" and str(s.series[0].index[-1].date()) == "2001-02-01"
    cells = [f"01.{m:02d}.2000" for m in range(1, 13)] + ["01.01.2001", "01.02.2001"]  # dd.mm
    assert str(read_timeseries(_dates(tmp_path, cells)).series[0].index[1].date()) == "2000-02-01"


def test_ambiguous_day_month_dates_are_an_error(tmp_path):
    # dd/mm monthly or mm/dd daily: both regular, so the file does not say which
    p = _dates(tmp_path, ["01/02/2000", "01/03/2000", "01/04/2000", "01/05/2000"])
    with pytest.raises(TimeSeriesError, match=r"d\.csv: row 2, column 't': '01/02/2000' reads as "
                                              r"day/month and as month/day.*YYYY-MM-DD"):
        read_timeseries(p)
    p = _dates(tmp_path, ["12/01/2000", "13/01/2000", "01/14/2000"])
    with pytest.raises(TimeSeriesError, match=r"row 4, column 't': '01/14/2000' is month-first but "
                                              r"row 3's '13/01/2000' is day-first"):
        read_timeseries(p)


@pytest.mark.parametrize("cell", ["00:00", "1:30 pm", "now", "Today"])
def test_a_cell_without_a_date_is_an_error(tmp_path, cell):
    p = _dates(tmp_path, [cell, "2000-01-01 02:00", "2000-01-01 03:00"])
    with pytest.raises(TimeSeriesError, match=rf"row 2, column 't': '{cell}' has no date"):
        read_timeseries(p)


def test_one_utc_offset_keeps_local_dates_and_times(tmp_path):
    # local midnight at +01:00 is 23:00 the day before in UTC: the day must stay its own
    s = read_timeseries(_dates(tmp_path, [f"2000-01-0{d}T00:00:00+01:00" for d in (3, 4, 5)]))
    assert [str(t) for t in s.series[0].index] == [
        "2000-01-03 00:00:00", "2000-01-04 00:00:00", "2000-01-05 00:00:00"] and s.freq == "D"


def test_daily_dates_across_summer_time_keep_their_days(tmp_path):
    cells = ["2000-03-25T00:00:00+01:00", "2000-03-26T00:00:00+01:00", "2000-03-27T00:00:00+02:00",
             "2000-03-28T00:00:00+02:00"]
    s = read_timeseries(_dates(tmp_path, cells))
    assert [t.day for t in s.series[0].index] == [25, 26, 27, 28] and s.freq == "D"
    p = tmp_path / "m.parquet"  # a zoned Parquet column: month starts in Berlin, not UTC
    pd.DataFrame({"t": pd.date_range("2000-01-01", periods=14, freq="MS", tz="Europe/Berlin"),
                  "y": np.arange(14.0)}).to_parquet(p)
    s = read_timeseries(p)
    assert s.freq == "MS" and str(s.series[0].index[3]) == "2000-04-01 00:00:00"


def test_text_after_a_closing_quote_is_an_error(tmp_path):
    p = _csv(tmp_path, 't,y\n2000-01-01,1\n2000-01-02,"4"5\n2000-01-03,3\n')
    with pytest.raises(TimeSeriesError, match=r"s\.csv: row 3: malformed CSV"):
        read_timeseries(p)


def test_a_semicolon_file_gets_a_hint_not_just_a_missing_column(tmp_path):
    with pytest.raises(TimeSeriesError, match=r"row 1: no target column left \(columns: 'month;sales'\); "
                                              r"the file looks separated by ';'"):
        read_timeseries(_csv(tmp_path, "month;sales\n2000-01-01;1\n2000-02-01;2\n"))


def test_month_end_dates_on_a_month_start_grid_say_where_the_grid_is(tmp_path):
    p = _csv(tmp_path, "t,y\n2000-01-31,1\n2000-02-29,2\n2000-03-31,3\n")
    with pytest.raises(TimeSeriesError, match=r"row 2, column 't': timestamp 2000-01-31 00:00:00 is not "
                                              r"on the 'MS' grid \(its next step is 2000-02-01"):
        read_timeseries(p, freq="MS")


@pytest.mark.parametrize("kw, message", [
    (dict(targets=["load", "load"]), r"column 'load' is given twice \(in data\.targets\)"),
    (dict(targets=["load"], past_covariates=["temp", "temp"]), r"'temp' is given twice \(in data\.past_covariates\)"),
    (dict(targets=["load"], series_id="load"), r"'load' is given twice \(in data\.targets and as the time or series"),
    (dict(targets=["load"], time_col="date", series_id="date"), r"'date' is given twice \(in data\.time_col/series_id\)"),
])
def test_a_column_in_two_roles_is_an_error(tmp_path, kw, message):
    with pytest.raises(TimeSeriesError, match=message):
        read_timeseries(_csv(tmp_path, HOURLY), **kw)
