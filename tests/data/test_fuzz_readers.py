"""Property-based fuzzing of every data reader (issue 19).

Each reader gets two properties over files that hypothesis writes:

- **round trip**: a valid file reads back to exactly the data it was written from, with
  the right 1-based line (or row) of every record;
- **mutation**: after one to three mutations (a line dropped, duplicated, swapped, blanked
  or replaced by junk; a cell replaced by ``inf``, ``1e400``, a quote, a NUL or a
  5,000-character blob; a character changed; a bad UTF-8 byte; the file cut short; CRLF
  line ends, a byte-order mark or gzip) the reader either reads the same data (for the
  mutations that change nothing), or reads data consistent with the file (as many records
  as the file holds, a regular grid, finite values, lines inside the file), or raises its
  own error class with a short one-line message naming the file and, where it gives one, a
  position inside the file.  Any other exception fails the test.

Examples are derandomised in CI (profile ``ci``); ``HYPOTHESIS_PROFILE=long`` runs 20x
more, fresh ones.  Shapes stay small: the readers' logic, not their speed, is under test.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from rnnkit.data.audio import AudioDataError, list_from_csv, list_from_pattern, load_audio
from rnnkit.data.conll import ConllError, read_columns, read_conllu
from rnnkit.data.nab import NABFormatError, read_labels_json, read_nab_csv, read_windows_json
from rnnkit.data.parallel import ParallelDataError, read_parallel
from rnnkit.data.text import TextFileError
from rnnkit.data.textcls import TextDataError, load_vectors, read_table
from rnnkit.data.timeseries import TimeSeriesError, read_timeseries
from rnnkit.data.tokenize import train_tokenizer
from rnnkit.testing import fuzz_examples

# ----------------------------------------------------------------------------- mutations

#: cells a hostile or unlucky file may hold
JUNK = ["inf", "-Infinity", "1e400", "-1e999", "nan", "NaN", "", " ", '"', "'", ",", "\t", "\\",
        "{", "}", "[1]", "null", "true", "\x00", "é", "２", "١", "0x1A", "1_0", "-0", "1e-400",
        "9" * 400, "x" * 5000, "\u2028", "\ufeff", "#", "-DOCSTART-", "_", "1-2", "3.1"]
NEUTRAL = ("crlf", "bom", "no_final_newline")  # and gzip, applied last
KINDS = ("drop_line", "dup_line", "swap_lines", "blank_line", "junk_line", "junk_cell", "char_set",
         "char_drop", "bad_byte", "truncate") + NEUTRAL
_CELL = re.compile(rb"[^,\t ]+|(?<=[,\t ])(?=[,\t ]|$)")


@st.composite
def _mutation(draw, data: bytes) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(KINDS))
    lines = data.split(b"\n")
    i = draw(st.integers(0, max(len(lines) - 2, 0)))  # the last piece is "" after a final newline
    junk = draw(st.sampled_from(JUNK)).encode()
    if kind == "crlf":
        out = re.sub(rb"(?<!\r)\n", b"\r\n", data)
    elif kind == "bom":
        out = data if data.startswith(b"\xef\xbb\xbf") else b"\xef\xbb\xbf" + data
    elif kind == "no_final_newline":
        out = data.rstrip(b"\n")
    elif kind == "drop_line":
        out = b"\n".join(lines[:i] + lines[i + 1:])
    elif kind == "dup_line":
        out = b"\n".join(lines[:i + 1] + lines[i:])
    elif kind == "swap_lines":
        j = min(i + 1, len(lines) - 1)
        lines[i], lines[j] = lines[j], lines[i]
        out = b"\n".join(lines)
    elif kind == "blank_line":
        out = b"\n".join(lines[:i] + [b""] + lines[i:])
    elif kind == "junk_line":
        out = b"\n".join(lines[:i] + [junk] + lines[i:])
    elif kind == "junk_cell":
        cells = list(_CELL.finditer(lines[i]))
        if cells:
            m = cells[draw(st.integers(0, len(cells) - 1))]
            lines[i] = lines[i][:m.start()] + junk + lines[i][m.end():]
        out = b"\n".join(lines)
    elif kind in ("char_set", "char_drop", "bad_byte", "truncate"):
        k = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "char_set":
            out = data[:k] + junk[:1] + data[k + 1:]
        elif kind == "char_drop":
            out = data[:k] + data[k + 1:]
        elif kind == "bad_byte":
            out = data[:k] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x80"])) + data[k:]
        else:
            out = data[:k]
    return kind, out


@st.composite
def mutated(draw, data: bytes) -> tuple[bool, bytes]:
    """``(changes_nothing, bytes)`` after 1-3 mutations of ``data``, then sometimes gzip."""
    kinds = [draw(_mutation(data))]
    for _ in range(draw(st.integers(0, 2))):
        kinds.append(draw(_mutation(kinds[-1][1])))
    data = kinds[-1][1]
    if draw(st.integers(0, 9)) == 9:  # the readers detect gzip by content, whatever the name
        data = gzip.compress(data, mtime=0)
    return all(k in NEUTRAL for k, _ in kinds), data


def _text(data: bytes) -> str:
    """The text a reader sees (gunzipped, CR/CRLF as LF), for counting lines."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            return ""
    return data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")


_POSITION = re.compile(r"(?:\.\w+:(\d+)\b|\brows? (\d+)(?: and (\d+))?)")


def check_error(e: Exception, paths: list[Path], n_lines: int) -> None:
    """A reader's error: one short line naming one of ``paths``; each line/row it names is in
    ``1..n_lines`` (a gap may be named one row past the last)."""
    msg = str(e)
    assert "\n" not in msg and "\r" not in msg, msg[:300]
    assert len(msg) <= 500 + sum(len(str(p)) for p in paths), msg[:600]
    assert any(p.name in msg for p in paths), msg[:300]
    for groups in _POSITION.findall(msg):
        for g in groups:
            assert not g or 1 <= int(g) <= n_lines + 1, (g, n_lines, msg[:300])


def _records(text: str, skip: int = 1) -> int | None:
    """Records in a file without quotes: its non-blank lines after ``skip`` header lines."""
    if '"' in text:
        return None
    return sum(1 for line in text.split("\n")[skip:] if line.strip())


# ----------------------------------------------------------------------------- time series

FREQS = ["h", "15min", "D", "MS", "W-SUN"]
finite = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def series_files(draw, min_rows: int = 3, max_rows: int = 20, long: bool | None = None):
    """``(csv text, freq, index, values (N, K), ids)``: one series, or (long format) a second
    one ``"b"`` on the first ``m`` steps, its rows interleaved with ``"a"``'s."""
    freq = draw(st.sampled_from(FREQS))
    n = draw(st.integers(min_rows, max_rows))
    start = pd.Timestamp(draw(st.datetimes(pd.Timestamp("1990-01-01"), pd.Timestamp("2030-01-01"))))
    start = start.floor("s" if freq in ("h", "15min") else "D")
    index = pd.date_range(start, periods=n, freq=freq)
    K = draw(st.integers(1, 3))
    long = draw(st.booleans()) if long is None else long
    m = draw(st.integers(1, n)) if long else 0
    ids = [("a", i) for i in range(n)] + [("b", i) for i in range(m)]
    ids.sort(key=lambda r: (r[1], r[0]))  # (N,) records in file order: by time, then series
    values = np.array(draw(st.lists(st.lists(finite, min_size=K, max_size=K), min_size=len(ids),
                                    max_size=len(ids))))
    fmt = "%Y-%m-%d %H:%M:%S" if freq in ("h", "15min") else "%Y-%m-%d"
    header = ["date"] + (["id"] if long else []) + [f"v{k}" for k in range(K)]
    rows = [[index[i].strftime(fmt)] + ([sid] if long else []) + [repr(float(x)) for x in values[r]]
            for r, (sid, i) in enumerate(ids)]
    text = "\n".join(",".join(r) for r in [header] + rows) + "\n"
    return text, freq, index, values, (ids if long else None)


def _same_grid(a: str, b: str, start) -> bool:
    return pd.date_range(start, periods=6, freq=a).equals(pd.date_range(start, periods=6, freq=b))


def check_series(d, text: str | None, n_records: int | None) -> None:
    """Invariants of any time series read: regular grid at ``d.freq``, finite values, file rows
    strictly increasing inside the file, as many observed steps as the file has records."""
    observed = 0
    for s in d.series:
        if d.freq is not None:
            assert s.index.equals(pd.date_range(s.index[0], periods=len(s), freq=d.freq)), d.freq
            assert len(s) <= 2 * max((s.rows > 0).sum(), 2)  # no grid invented around sparse rows
        for v in (s.target, s.past, s.future):
            assert np.isfinite(v).all()
        rows = s.rows[s.rows > 0]
        assert (np.diff(rows) > 0).all()
        if text is not None:
            assert rows.min() >= 2 and rows.max() <= text.count("\n") + 1
        observed += len(rows) + (0 if s.horizon_rows is None else len(s.horizon_rows))
    if n_records is not None:
        assert observed == n_records


@settings(max_examples=fuzz_examples(60))
@given(series_files())
def test_timeseries_csv_round_trips(f):
    text, freq, index, values, ids = f
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "s.csv"
        p.write_text(text)
        d = read_timeseries(p, series_id="id" if ids else None)
    assert _same_grid(d.freq, freq, index[0])
    ids = ids or [("", i) for i in range(len(index))]
    assert [s.id for s in d.series] == list(dict.fromkeys(sid for sid, _ in ids))
    for s in d.series:
        recs = np.array([r for r, (sid, _) in enumerate(ids) if sid == s.id])  # (T,) record numbers
        assert s.index.equals(index[:len(recs)]) and (s.rows == recs + 2).all()
        np.testing.assert_array_equal(s.target, values[recs])


@settings(max_examples=fuzz_examples(60))
@given(series_files(min_rows=5, long=False), st.data(), st.sampled_from(["csv", "s", "ms", "us", "ns"]))
def test_timeseries_one_missing_row_is_one_gap_on_the_same_grid(f, data, fmt):
    # issue 19, item 1: a dropped row must never change the grid (or be reported elsewhere)
    text, freq, index, values, _ = f
    n = len(index)
    i = data.draw(st.integers(1, n - 2), label="dropped")
    keep = np.r_[0:i, i + 1:n]
    with tempfile.TemporaryDirectory() as tmp:
        if fmt == "csv":
            p = Path(tmp) / "s.csv"
            lines = text.split("\n")
            p.write_text("\n".join(lines[:i + 1] + lines[i + 2:]))
        else:
            p = Path(tmp) / "s.parquet"
            pd.DataFrame({"date": index[keep].as_unit(fmt), "v": values[keep, 0]}).to_parquet(p)
        try:
            d = read_timeseries(p, fill="linear")
        except TimeSeriesError as e:  # only a calendar step too short to read around the gap
            assert freq in ("MS", "W-SUN") and n < 7 and "cannot infer a frequency" in str(e), str(e)
            return
        with pytest.raises(TimeSeriesError, match=rf"s\.\w+: row {i + 2 if fmt == 'csv' else i + 1}, "
                                                  r"column 'date': 1 missing timestamp"):
            read_timeseries(p)
    s = d.series[0]
    assert _same_grid(d.freq, freq, index[0]) and s.index.equals(index) and d.filled == 1
    assert s.rows[i] == 0 and np.isfinite(s.target).all()
    np.testing.assert_array_equal(s.target[keep, 0], values[keep, 0])


@settings(max_examples=fuzz_examples(250))
@given(series_files(min_rows=8), st.data(), st.sampled_from(["error", "linear", "ffill"]))
def test_timeseries_csv_mutations_read_the_same_or_fail_cleanly(f, data, fill):
    text, freq, index, values, ids = f
    original = text.encode()
    nothing, raw = data.draw(mutated(original), label="mutated")
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "s.csv"
        p.write_bytes(raw)
        try:
            d = read_timeseries(p, series_id="id" if ids else None, fill=fill)
        except TimeSeriesError as e:
            event(f"raises {type(e).__name__}")
            check_error(e, [p], _text(raw).count("\n") + 1)
            assert not nothing, str(e)[:300]
            return
        p.write_bytes(original)
        try:
            want = read_timeseries(p, series_id="id" if ids else None, fill=fill)
        except TimeSeriesError:
            want = None
    seen = _text(raw)
    check_series(d, seen, _records(seen))
    if nothing and want is not None:
        assert d.freq == want.freq and len(d.series) == len(want.series)
        for a, b in zip(d.series, want.series):
            assert a.index.equals(b.index) and (a.rows == b.rows).all()
            np.testing.assert_array_equal(a.target, b.target)


@st.composite
def parquet_mutation(draw, frame: pd.DataFrame) -> tuple[str, pd.DataFrame | None]:
    kind = draw(st.sampled_from(["drop", "dup", "swap", "inf", "nan", "junk", "nat", "tz", "nudge",
                                 "bool", "bytes"]))
    f = frame.copy()
    i = draw(st.integers(0, len(f) - 1))
    if kind == "drop":
        f = f.drop(index=f.index[i])
    elif kind == "dup":
        f = pd.concat([f.iloc[:i + 1], f.iloc[i:]])
    elif kind == "swap":
        order = list(range(len(f)))
        j = min(i + 1, len(f) - 1)
        order[i], order[j] = order[j], order[i]
        f = f.iloc[order]
    elif kind in ("inf", "nan"):
        f.iloc[i, 1] = draw(st.sampled_from([np.inf, -np.inf])) if kind == "inf" else np.nan
    elif kind == "junk":
        f["v"] = f["v"].astype(str)
        f.iloc[i, 1] = draw(st.sampled_from(JUNK))
    elif kind == "nat":
        f.iloc[i, 0] = pd.NaT
    elif kind == "tz":
        f["date"] = f["date"].dt.tz_localize(draw(st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kolkata"])),
                                             ambiguous="NaT", nonexistent="NaT")
    elif kind == "nudge":
        f.iloc[i, 0] = f.iloc[i, 0] + pd.Timedelta(1, unit=f["date"].dt.unit)
    elif kind == "bool":
        f["v"] = f["v"] > 0
    else:
        return "bytes", None
    return kind, f.reset_index(drop=True)


@settings(max_examples=fuzz_examples(80))
@given(series_files(min_rows=4, long=False), st.sampled_from(["s", "ms", "us", "ns"]), st.data(),
       st.sampled_from(["error", "linear"]))
def test_timeseries_parquet_round_trips_and_mutations_fail_cleanly(f, unit, data, fill):
    _, freq, index, values, _ = f
    frame = pd.DataFrame({"date": index.as_unit(unit), "v": values[:, 0]})
    kind, g = data.draw(parquet_mutation(frame), label="mutation")
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "s.parquet"
        frame.to_parquet(p)
        d = read_timeseries(p)
        assert _same_grid(d.freq, freq, index[0]) and d.series[0].index.equals(index)
        np.testing.assert_array_equal(d.series[0].target[:, 0], values[:, 0])
        if g is None:  # raw bytes: flipped, cut short or grown
            raw = bytearray(p.read_bytes())
            k = data.draw(st.integers(0, len(raw) - 1), label="byte")
            how = data.draw(st.sampled_from(["flip", "cut", "insert"]), label="how")
            raw = raw[:k] if how == "cut" else raw[:k] + b"\x00" + raw[k:] if how == "insert" else raw
            if how == "flip":
                raw[k] ^= data.draw(st.integers(1, 255), label="mask")
            p.write_bytes(bytes(raw))
        else:
            g.to_parquet(p)
        try:
            d = read_timeseries(p, fill=fill)
        except TimeSeriesError as e:
            event(f"raises {type(e).__name__}")
            check_error(e, [p], len(frame) + 1)
            return
    check_series(d, None, None if g is None else len(g))


@st.composite
def nab_files(draw):
    n = draw(st.integers(2, 15))
    steps = draw(st.lists(st.integers(1, 3600), min_size=n - 1, max_size=n - 1))
    t = pd.Timestamp("2014-01-01") + pd.to_timedelta(np.cumsum([0] + steps), unit="s")
    values = draw(st.lists(finite, min_size=n, max_size=n))
    text = "timestamp,value\n" + "".join(f"{a:%Y-%m-%d %H:%M:%S},{v!r}\n" for a, v in zip(t, values))
    return text, pd.DatetimeIndex(t), np.array(values)


@settings(max_examples=fuzz_examples(80))
@given(nab_files(), st.booleans(), st.data())
def test_nab_csv_round_trips_and_mutations_fail_cleanly(f, strict, data):
    text, t, values = f
    nothing, raw = data.draw(mutated(text.encode()), label="mutated")
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "a.csv"
        p.write_text(text)
        ts, v = read_nab_csv(p, strict=strict)
        assert ts.equals(t) and (v == values).all()
        p.write_bytes(raw)
        try:
            ts, v = read_nab_csv(p, strict=strict)
        except TimeSeriesError as e:
            event(f"raises {type(e).__name__}")
            check_error(e, [p], _text(raw).count("\n") + 1)
            assert not nothing, str(e)[:300]
            return
    assert len(ts) == len(v) and np.isfinite(v).all() and not ts.isna().any()
    assert not strict or (np.diff(ts.asi8) > 0).all()
    if (n := _records(_text(raw))) is not None:
        assert len(v) == n
    if nothing:
        assert ts.equals(t) and (v == values).all()


@settings(max_examples=fuzz_examples(60))
@given(st.lists(st.integers(0, 10**6), min_size=0, max_size=6, unique=True), st.data())
def test_nab_label_files_round_trip_and_mutations_fail_cleanly(seconds, data):
    t = [f"{pd.Timestamp('2014-01-01') + pd.Timedelta(k, unit='s'):%Y-%m-%d %H:%M:%S.%f}" for k in sorted(seconds)]
    windows = {"fam/a.csv": [[a, b] for a, b in zip(t[::2], t[1::2])]}
    text = json.dumps(windows, indent=data.draw(st.sampled_from([None, 1]), label="indent")) + "\n"
    nothing, raw = data.draw(mutated(text.encode()), label="mutated")
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "combined_windows.json"
        p.write_text(text)
        want = read_windows_json(p)
        assert [[str(a), str(b)] for a, b in want["fam/a.csv"]] == [[str(pd.Timestamp(x)) for x in w]
                                                                     for w in windows["fam/a.csv"]]
        p.write_bytes(raw)
        for read in (read_windows_json, read_labels_json):
            try:
                got = read(p)
            except NABFormatError as e:
                event(f"raises {type(e).__name__}")
                check_error(e, [p], _text(raw).count("\n") + 1)
                assert not nothing or read is read_labels_json, str(e)[:300]
                continue
            for key, items in got.items():
                assert isinstance(key, str)
                for w in items:
                    ends = w if read is read_windows_json else (w, w)
                    assert all(isinstance(x, pd.Timestamp) and not pd.isna(x) for x in ends)
                    assert ends[0] <= ends[1]
            if nothing and read is read_windows_json:
                assert got == want


# ----------------------------------------------------------------------------- labelled text

LABELS = ["pos", "neg", "3", "10", "n/a"]
_TOKENIZER = train_tokenizer(["good bad film", "good film"], kind="word", reversible=False)
texts = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r"), min_size=1,
                max_size=30).filter(lambda s: s.strip())


@st.composite
def table_files(draw):
    """``(file text, format, rows [(text, label)], first line of each row)``."""
    fmt = draw(st.sampled_from(["csv", "tsv", "jsonl"]))
    rows = draw(st.lists(st.tuples(texts, st.sampled_from(LABELS)), min_size=1, max_size=8))
    out, lines, line = io.StringIO(), [], 2 if fmt != "jsonl" else 1
    if fmt == "jsonl":
        ascii_ = draw(st.booleans())
        for text, label in rows:
            out.write(json.dumps({"text": text, "label": label}, ensure_ascii=ascii_) + "\n")
        lines = list(range(1, len(rows) + 1))
    else:
        w = csv.writer(out, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
        w.writerow(["id", "text", "label"])
        for k, (text, label) in enumerate(rows):
            before = out.tell()
            w.writerow([k, text, label])
            lines.append(line)
            line += out.getvalue()[before:].count("\n")
    return out.getvalue(), fmt, rows, lines


@settings(max_examples=fuzz_examples(250))
@given(table_files(), st.data())
def test_classification_tables_round_trip_and_mutations_fail_cleanly(f, data):
    text, fmt, rows, lines = f
    nothing, raw = data.draw(mutated(text.encode()), label="mutated")
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / f"d.{fmt}"
        p.write_text(text)
        d = read_table(p)
        assert d.texts == [t for t, _ in rows] and d.labels == [(label,) for _, label in rows]
        assert d.where == [f"{p}:{n}" for n in lines]
        p.write_bytes(raw)
        try:
            d = read_table(p)
        except TextDataError as e:
            event(f"raises {type(e).__name__}")
            check_error(e, [p], _text(raw).count("\n") + 1)
            assert not nothing, str(e)[:300]
            return
    seen = _text(raw)
    at = [int(w.rsplit(":", 1)[1]) for w in d.where]
    assert len(d.texts) == len(d.labels) == len(at) and at == sorted(set(at))
    assert all(1 <= n <= seen.count("\n") + 1 for n in at)
    assert all(t.strip() for t in d.texts) and all(len(ls) == 1 and ls[0] for ls in d.labels)
    if fmt != "jsonl" and (n := _records(seen)) is not None:
        assert len(d.texts) == n
    if nothing:
        assert d.texts == [t for t, _ in rows] and d.labels == [(label,) for _, label in rows]


@settings(max_examples=fuzz_examples(60))
@given(st.lists(st.lists(finite.filter(lambda x: abs(x) < 3e38), min_size=3, max_size=3), min_size=3,
                max_size=3), st.booleans(), st.data())
def test_word_vectors_round_trip_and_mutations_fail_cleanly(vecs, word2vec, data):
    tok = _TOKENIZER
    vocab = ["good", "bad", "film"]
    text = ("3 3\n" if word2vec else "") + "".join(f"{w} {' '.join(map(repr, v))}\n" for w, v in zip(vocab, vecs))
    nothing, raw = data.draw(mutated(text.encode()), label="mutated")
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "glove.txt"
        p.write_text(text)
        got, found = load_vectors(p, tok)
        for w, v in zip(vocab, vecs):
            np.testing.assert_array_equal(got[tok.token_to_id(w)], np.float32(v))
        p.write_bytes(raw)
        try:
            got, found = load_vectors(p, tok)
        except TextDataError as e:
            event(f"raises {type(e).__name__}")
            check_error(e, [p], _text(raw).count("\n") + 1)
            assert not nothing, str(e)[:300]
            return
    assert np.isfinite(got).all() and got.shape[0] == tok.vocab_size and not got[~found].any()


# ----------------------------------------------------------------------------- CoNLL

UPOS = ["NOUN", "VERB", "ADJ", "PROPN", "PUNCT", "X"]
BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
words = st.text(st.characters(exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1,
                max_size=8).filter(lambda w: not any(c.isspace() for c in w) and w != "-DOCSTART-")


@st.composite
def conll_files(draw, fmt: str):
    """``(text, sentences [[(word, tag)]], line of each token)``."""
    sents = draw(st.lists(st.lists(st.tuples(words, st.sampled_from(UPOS if fmt == "conllu" else BIO)),
                                   min_size=1, max_size=6), min_size=1, max_size=4))
    width = draw(st.integers(2, 4))
    out, lines, n = [], [], 0
    for s in sents:
        if fmt == "conllu" and draw(st.booleans()):
            out.append("# sent_id = x")
            n += 1
        for k, (w, tag) in enumerate(s, 1):
            if fmt == "conllu":
                out.append("\t".join([str(k), w, w.lower(), tag, "_", "_", str(k - 1), "dep", "_", "_"]))
            else:
                out.append(" ".join([w] + ["NN"] * (width - 2) + [tag]))
            n += 1
            lines.append(n)
        out.append("")
        n += 1
    return "\n".join(out) + "\n", sents, lines


@settings(max_examples=fuzz_examples(100))
@given(st.sampled_from(["conllu", "columns"]).flatmap(lambda fmt: st.tuples(st.just(fmt), conll_files(fmt))),
       st.data())
def test_conll_round_trips_and_mutations_fail_cleanly(f, data):
    fmt, (text, sents, lines) = f
    read = read_conllu if fmt == "conllu" else read_columns
    nothing, raw = data.draw(mutated(text.encode()), label="mutated")
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / f"t.{fmt}"
        p.write_text(text)
        got = read(p)
        assert [list(zip(s.words, s.tags)) for s in got] == [list(s) for s in sents]
        assert [n for s in got for n in s.lines] == lines
        p.write_bytes(raw)
        try:
            got = read(p)
        except ConllError as e:
            event(f"raises {type(e).__name__}")
            check_error(e, [p], _text(raw).count("\n") + 1)
            assert not nothing, str(e)[:300]
            return
    at = [n for s in got for n in s.lines]
    assert at == sorted(set(at)) and all(1 <= n <= _text(raw).count("\n") + 1 for n in at)
    for s in got:
        assert len(s.words) == len(s.tags) == len(s.lines) > 0
        assert all(s.words) and (fmt != "conllu" or all(t not in ("", "_") for t in s.tags))
    if nothing:
        assert [list(zip(s.words, s.tags)) for s in got] == [list(s) for s in sents]


# ----------------------------------------------------------------------------- parallel text

# a leading U+FEFF is a byte-order mark to read_text (dropped), so no sentence starts with one
sentences = texts.map(str.strip).filter(lambda s: s and "\n" not in s and not s.startswith("\ufeff"))


@settings(max_examples=fuzz_examples(100))
@given(st.lists(st.tuples(sentences, sentences), min_size=1, max_size=8), st.data(), st.booleans())
def test_parallel_text_round_trips_and_mutations_fail_cleanly(pairs, data, mutate_target):
    src = "".join(s + "\n" for s, _ in pairs).encode()
    tgt = "".join(t + "\n" for _, t in pairs).encode()
    nothing, raw = data.draw(mutated(tgt if mutate_target else src), label="mutated")
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "x.de", Path(tmp) / "x.en"
        a.write_bytes(src)
        b.write_bytes(tgt)
        assert read_parallel(a, b) == pairs
        (b if mutate_target else a).write_bytes(raw)
        try:
            got = read_parallel(a, b)
        except (ParallelDataError, TextFileError) as e:
            event(f"raises {type(e).__name__}")
            check_error(e, [a, b], max(_text(raw).count("\n"), len(pairs)) + 1)
            assert not nothing, str(e)[:300]
            return
    lines = _text(raw).split("\n")
    assert len(got) == len(pairs) == len(lines) - (lines[-1] == "")
    assert all(s and t for s, t in got)
    if nothing:
        assert got == pairs


# ----------------------------------------------------------------------------- audio lists


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    t = np.arange(200) / 8000
    for k, name in enumerate(["a.wav", "b.wav", "c.wav"]):
        sf.write(str(d / name), (0.3 * np.sin(2 * np.pi * 400 * (k + 1) * t)).astype(np.float32), 8000)
    return d


@settings(max_examples=fuzz_examples(100))
@given(st.lists(st.tuples(st.sampled_from(["a.wav", "b.wav", "c.wav"]), st.sampled_from(LABELS),
                          st.sampled_from(["train", "test"])), min_size=1, max_size=3,
                unique_by=lambda r: r[0]), st.data())  # a file listed twice is an error
def test_audio_csv_lists_round_trip_and_mutations_fail_cleanly(audio_dir, rows, data):
    text = "path,label,split\n" + "".join(",".join(r) + "\n" for r in rows)
    nothing, raw = data.draw(mutated(text.encode()), label="mutated")
    p = audio_dir / "labels.csv"
    p.write_text(text)
    items = list_from_csv(p)
    assert [(q.name, label, f["split"]) for q, label, f in zip(items.paths, items.labels, items.fields)] == rows
    p.write_bytes(raw)
    try:
        items = list_from_csv(p)
    except AudioDataError as e:
        event(f"raises {type(e).__name__}")
        check_error(e, [p], _text(raw).count("\n") + 1)
        assert not nothing, str(e)[:300]
        return
    assert len(items.paths) == len(items.labels) == len(items.fields) > 0
    assert all(q.is_file() for q in items.paths) and all(label.strip() for label in items.labels)
    if (n := _records(_text(raw))) is not None:
        assert len(items) == n
    if nothing:
        assert [(q.name, label) for q, label in zip(items.paths, items.labels)] == [r[:2] for r in rows]


names = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="/\x00"), min_size=1, max_size=20)


@settings(max_examples=fuzz_examples(60))
@given(st.lists(names, min_size=1, max_size=4, unique=True))
def test_audio_file_name_patterns_parse_back_or_fail_cleanly(stems):
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for s in stems:
            q = Path(tmp) / f"{s}.wav"
            assume(len(q.name.encode()) < 250 and q.parent == Path(tmp) and q.name not in (".wav",))
            q.write_bytes(b"")
            paths.append(q)
        try:
            items = list_from_pattern(tmp)
        except AudioDataError as e:
            event(f"raises {type(e).__name__}")
            check_error(e, paths + [Path(tmp)], 1)
            return
    for q, f in zip(items.paths, items.fields):
        assert "{label}_{speaker}_{index}".format(**f) == q.stem


@settings(max_examples=fuzz_examples(60))
@given(st.sampled_from(["PCM_16", "FLOAT"]), st.data())
def test_audio_file_bytes_read_or_fail_cleanly(subtype, data):
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "x.wav"
        sf.write(str(p), np.linspace(-0.5, 0.5, 64, dtype=np.float32), 8000, subtype=subtype)
        raw = bytearray(p.read_bytes())
        k = data.draw(st.integers(0, len(raw) - 1), label="byte")
        how = data.draw(st.sampled_from(["flip", "cut", "insert", "inf"]), label="how")
        if how == "flip":
            raw[k] ^= data.draw(st.integers(1, 255), label="mask")
        elif how == "cut":
            raw = raw[:k]
        elif how == "insert":
            raw = raw[:k] + b"\x00\xff" + raw[k:]
        elif subtype == "FLOAT":  # a sample's bytes -> +inf / nan
            j = raw.find(b"data") + 8 + 4 * data.draw(st.integers(0, 63), label="sample")
            raw[j:j + 4] = data.draw(st.sampled_from([b"\x00\x00\x80\x7f", b"\x00\x00\xc0\x7f"]))
        p.write_bytes(bytes(raw))
        try:
            y, sr = load_audio(p)
        except AudioDataError as e:
            event(f"raises {type(e).__name__}")
            check_error(e, [p], 1)
            return
    assert y.ndim == 1 and len(y) > 0 and sr > 0 and np.isfinite(y).all()
