"""Readers of labelled text: CSV/TSV/JSONL/folders, gzip, multi-label, errors with file:line."""
import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data.textcls import (
    IMDB,
    TextDataError,
    clean_markup,
    encode_labels,
    label_classes,
    load_vectors,
    read_labeled,
    read_table,
    resolve_imdb,
    truncate,
)
from rnnkit.data.tokenize import train_tokenizer

DATASETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"


def write(path: Path, text: str, gz: bool = False) -> Path:
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_quotes_newlines_and_line_numbers(tmp_path):
    p = write(tmp_path / "d.csv.gz", 'id,review,y\n1,"Good, ""very"" good",pos\n'
              '2,"two\nlines",neg\n3,fine,pos\n', gz=True)
    d = read_table(p, "review", "y")
    assert d.texts == ['Good, "very" good', "two\nlines", "fine"]
    assert d.labels == [("pos",), ("neg",), ("pos",)]
    assert d.where == [f"{p}:2", f"{p}:3", f"{p}:5"]  # the row after a 2-line field starts on 5
    assert label_classes(d.labels) == ["neg", "pos"]
    assert encode_labels(d, ["neg", "pos"]).tolist() == [1, 0, 1]


def test_tsv_jsonl_and_multi_label(tmp_path):
    t = read_labeled(write(tmp_path / "d.tsv", "text\tlabel\nhello world\t3\nbye\t10\n"))
    assert t.texts == ["hello world", "bye"] and label_classes(t.labels) == ["3", "10"]
    j = write(tmp_path / "d.jsonl", '{"text": "a b", "tags": "x|y"}\n{"text": "c", "tags": ["z"]}\n'
              '{"text": "d", "tags": ""}\n\n')
    m = read_labeled(j, label_column="tags", label_sep="|")
    assert m.multi_label and m.labels == [("x", "y"), ("z",), ()]
    y = encode_labels(m, ["x", "y", "z"])
    assert y.dtype == np.float32 and y.tolist() == [[1, 1, 0], [0, 0, 1], [0, 0, 0]]
    texts_only = read_table(j, label_column=None)
    assert texts_only.labels == [(), (), ()]


def test_folder_per_class_skips_unsup(tmp_path):
    for label, texts in {"pos": ["great <br />film", "loved it"], "neg": ["awful"],
                         "unsup": ["no label"]}.items():
        (tmp_path / label).mkdir()
        for i, t in enumerate(texts):
            write(tmp_path / label / f"{i}_7.txt", t)
    d = read_labeled(tmp_path)
    assert d.labels == [("neg",), ("pos",), ("pos",)] and d.texts[0] == "awful"
    assert d.where[0].endswith("neg/0_7.txt")
    assert clean_markup(d.texts[1]) == "great  film"


@pytest.mark.parametrize("content, message", [
    ("txt,label\na,b\n", r"d\.csv:1: no column 'text'; the header has 'txt', 'label'"),
    ("text,label\na,pos\n\nb,neg\n", r"d\.csv:3: empty line"),
    ("text,label\na,pos\n   ,neg\n", r"d\.csv:3: empty text in 'text'"),
    ("text,label\na,pos\nb,\n", r"d\.csv:3: empty label"),
    ("text,label\na,pos,extra\n", r"d\.csv:2: 3 fields; expected 2"),
    ("", r"d\.csv: file is empty"),
])
def test_bad_tables_name_file_and_line(tmp_path, content, message):
    p = write(tmp_path / "d.csv", content)
    with pytest.raises((TextDataError, ValueError), match=message):
        read_table(p)


def test_bad_jsonl_and_unknown_labels(tmp_path):
    p = write(tmp_path / "d.jsonl", '{"text": "a", "label": "x"}\n{"text": "b"}\n')
    with pytest.raises(TextDataError, match=r"d\.jsonl:2: no field 'label'; found 'text'"):
        read_table(p)
    p = write(tmp_path / "e.jsonl", '{"text": "a", "label": "x"}\n\n{"text": "b", "label": "x"}\n')
    with pytest.raises(TextDataError, match=r"e\.jsonl:2: empty line"):
        read_table(p)
    p = write(tmp_path / "f.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "w"\n')
    with pytest.raises(TextDataError, match=r"f\.jsonl:2: invalid JSON"):
        read_table(p)
    d = read_table(write(tmp_path / "g.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "q"}\n'))
    with pytest.raises(TextDataError, match=r"g\.jsonl:2: label 'q' was never seen in training; "
                                            r"known labels: 'x', 'y'"):
        encode_labels(d, ["x", "y"])
    with pytest.raises(TextDataError, match="unknown table format"):
        read_labeled(write(tmp_path / "d.xml", "<a/>"))
    with pytest.raises(TextDataError, match="no such file or folder"):
        read_labeled(tmp_path / "missing.csv")


def test_truncate_modes():
    ids = list(range(10))
    assert truncate(ids, 4, "head") == [0, 1, 2, 3]
    assert truncate(ids, 4, "tail") == [6, 7, 8, 9]
    assert truncate(ids, 5, "head_tail") == [0, 1, 7, 8, 9]
    assert truncate(ids, None) == ids and truncate(ids, 20) == ids


def test_load_glove_and_word2vec_vectors(tmp_path):
    tok = train_tokenizer(["good bad film", "good film"], kind="word", reversible=False)
    glove = write(tmp_path / "g.txt", "good 1 2\nFilm 3 4\nzebra 5 6\n")
    vecs, found = load_vectors(glove, tok)
    g, f, b = (tok.token_to_id(w) for w in ("good", "film", "bad"))
    assert vecs.shape == (tok.vocab_size, 2) and vecs[g].tolist() == [1, 2]
    assert vecs[f].tolist() == [3, 4] and found[[g, f]].all() and not found[b]
    w2v = write(tmp_path / "w.txt.gz", "2 3\ngood 1 2 3\nbad 0 0 1\n", gz=True)
    vecs, found = load_vectors(w2v, tok)
    assert vecs.shape[1] == 3 and found.sum() == 2
    with pytest.raises(TextDataError, match=r"bad\.txt:2: 1 values; expected 2"):
        load_vectors(write(tmp_path / "bad.txt", "good 1 2\nfilm 3\n"), tok)


def test_imdb_lookup_in_data_dir_and_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNKIT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="no imdb/train.csv"):
        resolve_imdb(tmp_path)
    with pytest.raises(FileNotFoundError, match="download is off"):
        resolve_imdb(download=False)
    (tmp_path / "imdb").mkdir()
    for s in ("train", "test"):
        write(tmp_path / "imdb" / f"{s}.csv", "text,label\na,1\n")
    with pytest.warns(UserWarning, match="differs from the canonical IMDB (train|test) CSV"):
        found = resolve_imdb(tmp_path)
    assert found == {s: tmp_path / "imdb" / f"{s}.csv" for s in ("train", "test")}
    acl = tmp_path / "cache" / "rnnkit" / "imdb" / "aclImdb"
    for s in ("train", "test"):
        (acl / s / "pos").mkdir(parents=True)
    assert resolve_imdb() == {s: acl / s for s in ("train", "test")}


def test_imdb_download_is_checked_and_unpacked(tmp_path, monkeypatch):
    import hashlib
    import tarfile

    import rnnkit.data.textcls as tc

    src = tmp_path / "src" / "aclImdb"
    for s in ("train", "test"):
        for label in ("pos", "neg", "unsup"):
            (src / s / label).mkdir(parents=True)
            write(src / s / label / "0_1.txt", f"{s} {label}")
    tgz = tmp_path / "a.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(src, arcname="aclImdb")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("RNNKIT_DATA", raising=False)
    fake = tc._KnownTexts(IMDB.name, IMDB.files, tgz.as_uri(), "0" * 64, "aclImdb", "")
    monkeypatch.setattr(tc, "IMDB", fake)
    with pytest.raises(ValueError, match="sha256 mismatch"):
        resolve_imdb()
    cache = tmp_path / "cache" / "rnnkit" / "imdb"
    assert not any(p.name != "imdb" for p in cache.iterdir())  # nothing half-written
    sha = hashlib.sha256(tgz.read_bytes()).hexdigest()
    monkeypatch.setattr(tc, "IMDB", tc._KnownTexts(IMDB.name, IMDB.files, tgz.as_uri(), sha, "aclImdb", ""))
    found = resolve_imdb()
    d = read_labeled(found["train"])
    assert d.texts == ["train neg", "train pos"]  # unsup was neither unpacked nor read
    assert not (cache / "aclImdb" / "train" / "unsup").exists()


@pytest.mark.datasets
@pytest.mark.skipif(not (DATASETS / "imdb").is_dir(), reason="../shared/datasets/imdb is absent")
def test_real_imdb_files():
    found = resolve_imdb(DATASETS)
    assert {s: p.name for s, p in found.items()} == {"train": "train.csv.gz", "test": "test.csv.gz"}
    d = read_labeled(found["test"])
    assert len(d) == 25_000 and label_classes(d.labels) == ["0", "1"]
    assert sum(ls == ("1",) for ls in d.labels) == 12_500
    assert os.path.basename(d.where[0]) == "test.csv.gz:2"


@pytest.mark.parametrize("value", ["inf", "-Infinity", "nan", "1e400", "1e39"])
def test_non_finite_vector_values_name_file_line_and_column(tmp_path, value):
    # 1e39 is finite in float64 but overflows float32, the dtype of the vectors
    tok = train_tokenizer(["good bad film", "good film"], kind="word", reversible=False)
    p = write(tmp_path / "g.txt", f"good 1 2\nfilm 3 {value}\n")
    with pytest.raises(TextDataError, match=rf"g\.txt:2: column 3: non-finite vector value '{value}' for "
                                            r"'film' \(expected a finite float32 number\)"):
        load_vectors(p, tok)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_jsonl_non_standard_constants_are_invalid_json(tmp_path, constant):
    p = write(tmp_path / "d.jsonl", f'{{"text": "a", "label": "x"}}\n{{"text": "b", "label": {constant}}}\n')
    with pytest.raises(TextDataError, match=rf"d\.jsonl:2: invalid JSON \({constant} is not JSON; "
                                            r"expected a string, number, list or object\)"):
        read_table(p)


def test_huge_cells_are_not_echoed_in_full(tmp_path):
    big = "w" * 1_000_000
    tok = train_tokenizer(["good film"], kind="word", reversible=False)
    cases = [
        (lambda: read_table(write(tmp_path / "a.csv", f"{big},label\nx,y\n")), r"a\.csv:1: no column 'text'"),
        (lambda: read_table(write(tmp_path / "b.jsonl", f'{{"{big}": 1}}\n')), r"b\.jsonl:1: no field 'text'"),
        (lambda: encode_labels(read_table(write(tmp_path / "c.csv", f"text,label\nx,{big}\n")), ["y"]),
         r"c\.csv:2: label 'w{40}'\.\.\. \(1,000,000 characters\) was never seen"),
        (lambda: load_vectors(write(tmp_path / "d.txt", f"good 1 {big}\n"), tok), r"d\.txt:1: column 3: non-numeric"),
    ]
    for read, message in cases:
        with pytest.raises(TextDataError, match=message) as e:
            read()
        assert len(str(e.value)) < 400, str(e.value)[:500]


@pytest.mark.parametrize("line", ["[" * 100_000 + "]" * 100_000, '{"text": "a", "label": ' + "9" * 5000 + "}"])
def test_pathological_jsonl_is_a_one_line_error(tmp_path, line):
    p = write(tmp_path / "d.jsonl", line + "\n")
    with pytest.raises(TextDataError, match=r"d\.jsonl:1: invalid JSON") as e:
        read_table(p)
    assert len(str(e.value)) < 400


@pytest.mark.parametrize("name, content, message", [
    # dict(zip(header, row)) kept the last of two same-named columns: 'neg', or the text 'bad'
    ("d.csv", "text,label,label\ngood good,pos,neg\n", r"d\.csv:1: column 'label' appears twice"),
    ("d.csv", "text,label,text\ngood good,pos,bad\n", r"d\.csv:1: column 'text' appears twice"),
    ("d.jsonl", '{"text": "good", "label": "pos", "label": "neg"}\n',
     r"d\.jsonl:1: key 'label' appears twice in one object"),
    ("d.jsonl", '{"text": "good", "label": true}\n', r"d\.jsonl:1: 'label' is true; expected a label"),
    ("d.csv", 'text,label\n"good" good,pos\n', r"d\.csv:2: malformed CSV"),  # not 'good good'
])
def test_ambiguous_tables_are_errors_not_a_guess(tmp_path, name, content, message):
    with pytest.raises(TextDataError, match=message):
        read_labeled(write(tmp_path / name, content), "text", "label")


def test_jsonl_number_labels_are_one_class_however_written(tmp_path):
    p = write(tmp_path / "n.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 1.0}\n'
                                    '{"text": "c", "label": [2]}\n{"text": "d", "label": 0.5}\n')
    assert read_labeled(p, "text", "label").labels == [("1",), ("1",), ("2",), ("0.5",)]
