"""NAB corpus layout, labels and windows; bad NAB input names the file, row/key and column."""

import json
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data.nab import (
    NABFormatError,
    TimeSeriesError,
    load_nab_corpus,
    load_nab_series,
    probation_length,
    read_nab_csv,
    read_windows_json,
    window_mask,
)

NAB = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "nab"


def _corpus(tmp_path, rows, windows, labels=None, key="fam/a.csv"):
    root = tmp_path / "nab"
    (root / "data" / key).parent.mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "data" / key).write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows))
    (root / "labels" / "combined_windows.json").write_text(json.dumps({key: windows}))
    (root / "labels" / "combined_labels.json").write_text(json.dumps({key: labels or []}))
    return root


def _rows(n):
    return [(f"2014-01-01 00:{m:02d}:00", float(m)) for m in range(n)]


def test_probation_length_is_nabs():
    assert probation_length(1000) == 150
    assert probation_length(4032) == 604  # floor(604.8)
    assert probation_length(22695) == 750  # capped at 0.15 * 5000


def test_windows_become_inclusive_rows(tmp_path):
    root = _corpus(tmp_path, _rows(20), [["2014-01-01 00:05:00.000000", "2014-01-01 00:08:00.000000"]],
                   labels=["2014-01-01 00:06:00"])
    s = load_nab_series(root, "fam/a.csv")
    assert s.windows == [(5, 8)] and s.labels == [6] and len(s) == 20 and s.family == "fam"
    assert window_mask(20, s.windows).nonzero()[0].tolist() == [5, 6, 7, 8]
    assert load_nab_corpus(root)[0].key == "fam/a.csv"


def test_duplicate_timestamp_strict_names_file_row_and_column(tmp_path):
    rows = _rows(6)
    rows[3] = rows[2]
    root = _corpus(tmp_path, rows, [])
    csv = root / "data" / "fam" / "a.csv"
    with pytest.raises(TimeSeriesError, match=r"a\.csv: row 5, column 'timestamp': duplicate timestamp"):
        read_nab_csv(csv, strict=True)
    ts, _ = read_nab_csv(csv, strict=False)  # the published corpus has such rows; NAB keeps them
    assert len(ts) == 6


def test_decreasing_timestamp_strict(tmp_path):
    rows = _rows(6)
    rows[4] = ("2013-12-31 23:00:00", 1.0)
    root = _corpus(tmp_path, rows, [])
    with pytest.raises(TimeSeriesError, match=r"row 6, column 'timestamp': non-monotonic timestamp"):
        read_nab_csv(root / "data" / "fam" / "a.csv", strict=True)


@pytest.mark.parametrize("strict", [True, False])
def test_non_numeric_value_names_row_and_column(tmp_path, strict):
    rows = _rows(6)
    rows[2] = (rows[2][0], "n/a?")
    root = _corpus(tmp_path, rows, [])
    with pytest.raises(TimeSeriesError, match=r"a\.csv: row 4, column 'value': non-numeric"):
        read_nab_csv(root / "data" / "fam" / "a.csv", strict=strict)


@pytest.mark.parametrize("strict", [True, False])
def test_bad_timestamp_and_missing_column(tmp_path, strict):
    rows = _rows(4)
    rows[1] = ("yesterday", 1.0)
    root = _corpus(tmp_path, rows, [])
    with pytest.raises(TimeSeriesError, match=r"row 3, column 'timestamp'"):
        read_nab_csv(root / "data" / "fam" / "a.csv", strict=strict)
    bad = tmp_path / "b.csv"
    bad.write_text("time,value\n2014-01-01 00:00:00,1\n")
    with pytest.raises(TimeSeriesError, match=r"b\.csv: row 1: no column 'timestamp'"):
        read_nab_csv(bad, strict=strict)


def test_window_not_in_file(tmp_path):
    root = _corpus(tmp_path, _rows(10), [["2014-01-01 00:05:30", "2014-01-01 00:08:00"]])
    with pytest.raises(NABFormatError, match=r"combined_windows\.json: 'fam/a\.csv': window start "
                                             r"2014-01-01 00:05:30 does not occur in .*a\.csv"):
        load_nab_series(root, "fam/a.csv")


def test_bad_windows_json(tmp_path):
    p = tmp_path / "w.json"
    p.write_text('{"f.csv": [["2014-01-01 00:05:00", "2014-01-01 00:01:00"]]}')
    with pytest.raises(NABFormatError, match=r"w\.json: 'f\.csv': window 0 ends .* before it starts"):
        read_windows_json(p)
    p.write_text('{"f.csv": [["2014-01-01 00:01:00", "2014-01-01 00:05:00"], '
                 '["2014-01-01 00:04:00", "2014-01-01 00:09:00"]]}')
    with pytest.raises(NABFormatError, match=r"window 1 starts at .* sorted and disjoint"):
        read_windows_json(p)
    p.write_text('{"f.csv": [["2014-01-01", "soon"]]}')
    with pytest.raises(NABFormatError, match=r"window 0 end 'soon' is not a timestamp"):
        read_windows_json(p)
    p.write_text('{"f.csv": [')
    with pytest.raises(NABFormatError, match=r"w\.json:1:\d+: invalid JSON"):
        read_windows_json(p)
    # a zoned limit beside a zone-less one was a TypeError (found by HYPOTHESIS_PROFILE=long)
    p.write_text('{"f.csv": [["2014-01-01 00:00:00.0-0000", "2014-01-01 00:00:01"]]}')
    with pytest.raises(NABFormatError, match=r"window 0 start '2014-01-01 00:00:00\.0-0000' has a "
                       r"time zone; expected a zone-less"):
        read_windows_json(p)


def test_missing_window_entry_and_family(tmp_path):
    root = _corpus(tmp_path, _rows(10), [])
    (root / "labels" / "combined_windows.json").write_text("{}")
    with pytest.raises(NABFormatError, match=r"no windows for 'fam/a\.csv'"):
        load_nab_series(root, "fam/a.csv")
    with pytest.raises(NABFormatError, match=r"no family 'realTweets'; found fam"):
        load_nab_corpus(root, families=["realTweets"])


@pytest.mark.datasets
@pytest.mark.skipif(not NAB.is_dir(), reason="NAB subset not found at ../shared/datasets/nab")
def test_real_corpus_layout():
    kc = load_nab_corpus(NAB, families=["realKnownCause"])
    assert len(kc) == 7 and sum(len(s.windows) for s in kc) == 19
    taxi = next(s for s in kc if s.key == "realKnownCause/nyc_taxi.csv")
    assert len(taxi) == 10320 and taxi.probation == 750
    assert taxi.windows[0] == (5839, 6045) and taxi.labels[0] == 5942
    assert str(taxi.timestamps[5839]) == "2014-10-30 15:30:00"
    # the published file repeats 2014-03-09 03:00:00 (daylight saving); NAB scores it as is
    lat = next(s for s in kc if s.key.startswith("realKnownCause/ec2_request_latency"))
    assert len(lat) == 4032 and (np.diff(lat.timestamps.asi8) == 0).sum() == 11


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("value", ["inf", "-Infinity", "1e400"])
def test_infinite_value_names_row_and_column(tmp_path, strict, value):
    rows = _rows(6)
    rows[2] = (rows[2][0], value)
    root = _corpus(tmp_path, rows, [])
    with pytest.raises(TimeSeriesError, match=rf"a\.csv: row 4, column 'value': non-finite value '{value}'"):
        read_nab_csv(root / "data" / "fam" / "a.csv", strict=strict)


@pytest.mark.parametrize("strict", [True, False])
def test_huge_cell_is_not_echoed_in_full(tmp_path, strict):
    rows = _rows(6)
    rows[2] = (rows[2][0], "x" * 1_000_000)
    root = _corpus(tmp_path, rows, [])
    with pytest.raises(TimeSeriesError, match=r"a\.csv: row 4, column 'value': non-numeric value "
                                              r"'x{40}'\.\.\. \(1,000,000 characters\)") as e:
        read_nab_csv(root / "data" / "fam" / "a.csv", strict=strict)
    assert len(str(e.value)) < 400


def test_ragged_row_is_an_error_not_a_shifted_column(tmp_path):
    # pandas would pad a short row, or shift columns when every row has one field too many
    bad = tmp_path / "b.csv"
    bad.write_text("timestamp,value\n2014-01-01 00:00:00,1,7\n2014-01-01 00:01:00,2,8\n")
    with pytest.raises(TimeSeriesError, match=r"b\.csv: row 2: 3 field\(s\); expected 2 fields"):
        read_nab_csv(bad, strict=False)
    bad.write_text("timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:01:00\n")
    with pytest.raises(TimeSeriesError, match=r"b\.csv: row 3: 1 field\(s\); expected 2 fields"):
        read_nab_csv(bad, strict=False)


def test_huge_window_entry_is_not_echoed_in_full(tmp_path):
    p = tmp_path / "w.json"
    p.write_text(json.dumps({"f.csv": [["2014-01-01", "y" * 1_000_000]]}))
    with pytest.raises(NABFormatError, match=r"window 0 end 'y{40}'\.\.\. \(1,000,000 characters\) is not") as e:
        read_windows_json(p)
    assert len(str(e.value)) < 400
    p.write_text(json.dumps({"f.csv": [["2014-01-01"] * 100_000]}))
    with pytest.raises(NABFormatError, match=r"window 0 is \[.*\.\.\. \(.* characters\); expected \[start, end\]") as e:
        read_windows_json(p)
    assert len(str(e.value)) < 400


@pytest.mark.parametrize("content", ["[" * 100_000 + "]" * 100_000, '{"f.csv": [' + "9" * 5000 + "]}"])
def test_pathological_label_json_is_a_nab_format_error(tmp_path, content):
    p = tmp_path / "w.json"
    p.write_text(content)
    with pytest.raises(NABFormatError, match=r"w\.json: invalid JSON"):
        read_windows_json(p)


def test_label_files_may_start_with_a_byte_order_mark(tmp_path):
    # found by the fuzz tests: an editor's BOM made the file "invalid JSON"
    p = tmp_path / "w.json"
    p.write_bytes(b'\xef\xbb\xbf{"f.csv": [["2014-01-01 00:01:00", "2014-01-01 00:05:00"]]}\n')
    assert len(read_windows_json(p)["f.csv"]) == 1
    p.write_bytes(b'{"f.csv": [\n["2014-01-01 00:01:00", "\xff"]]}')
    with pytest.raises(NABFormatError, match=r"w\.json:2:26: invalid UTF-8 byte 0xff"):
        read_windows_json(p)
