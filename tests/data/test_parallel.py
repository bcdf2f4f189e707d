"""Parallel text: line-aligned reading, bad input, folder layout, Multi30k lookup and download."""
import contextlib
import gzip
import hashlib
import io
import urllib.request
from pathlib import Path

import pytest

from rnnkit.data.parallel import (
    KNOWN_PARALLEL,
    ParallelDataError,
    read_lines,
    read_parallel,
    resolve_parallel,
)
from rnnkit.data.registry import ChecksumError, ChecksumWarning, DownloadError
from rnnkit.data.text import TextFileError

DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No RNNKIT_DATA, a private cache, and no real network."""
    monkeypatch.delenv("RNNKIT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))

    def no_network(*a, **k):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


def write(path: Path, text: str, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_read_parallel_plain_and_gzip(tmp_path):
    de = write(tmp_path / "a.de.gz", "Ein Hund.\n  Zwei Katzen. \r\nDrei.", gz=True)
    en = write(tmp_path / "a.en", "A dog.\nTwo cats.\nThree.\n")
    assert read_lines(en) == ["A dog.", "Two cats.", "Three."]  # final newline: no extra line
    assert read_parallel(de, en) == [("Ein Hund.", "A dog."), ("Zwei Katzen.", "Two cats."),
                                     ("Drei.", "Three.")]


def test_different_line_counts_name_both_files_and_counts(tmp_path):
    de = write(tmp_path / "x.de", "a\nb\nc\n")
    en = write(tmp_path / "x.en", "a\nb\n")
    with pytest.raises(ParallelDataError, match=r"x\.de has 3 lines but .*x\.en has 2"):
        read_parallel(de, en)


def test_empty_lines_name_file_and_line(tmp_path):
    de = write(tmp_path / "e.de", "a\n\nc\nd\n")
    en = write(tmp_path / "e.en", "A\n\nC\n \n")
    with pytest.raises(ParallelDataError, match=r"e\.de:2: empty line"):
        read_parallel(de, en)
    # skip_empty drops the pair empty on both sides, but line 4 is empty on one side only
    with pytest.raises(ParallelDataError, match=r"e\.en:4: empty line"):
        read_parallel(de, en, skip_empty=True)
    en2 = write(tmp_path / "f.en", "A\n\nC\nD\n")
    assert read_parallel(de, en2, skip_empty=True) == [("a", "A"), ("c", "C"), ("d", "D")]


def test_unreadable_files_are_named(tmp_path):
    bad = tmp_path / "bad.de"
    bad.write_bytes(b"ok\n\xff\n")
    en = write(tmp_path / "bad.en", "a\nb\n")
    with pytest.raises(TextFileError, match=r"bad\.de:2:1: invalid UTF-8 byte 0xff"):
        read_parallel(bad, en)
    with pytest.raises(FileNotFoundError, match="nope.de: no such file"):
        read_parallel(tmp_path / "nope.de", en)


def test_folder_layout_with_val_alias(tmp_path):
    for stem in ("train", "val", "test"):
        write(tmp_path / f"{stem}.de", "x\n")
        write(tmp_path / f"{stem}.en.gz", "y\n", gz=True)
    files = resolve_parallel(tmp_path, "de", "en")
    assert list(files) == ["train", "valid", "test"]
    assert files["valid"] == (tmp_path / "val.de", tmp_path / "val.en.gz")
    only = resolve_parallel(tmp_path, "de", "en", splits={"train": "train", "test": "val"})
    assert only["test"][0].name == "val.de"
    with pytest.raises(ParallelDataError, match=r"train\.en\.gz: has no fr counterpart .*train\.fr"):
        resolve_parallel(tmp_path, "fr", "en")
    with pytest.raises(ParallelDataError, match="both 'de'"):
        resolve_parallel(tmp_path, "de", "de")
    with pytest.raises(FileNotFoundError, match="neither a known parallel corpus"):
        resolve_parallel(tmp_path / "missing", "de", "en")


def fake_multi30k(root: Path, langs=("de", "en")) -> dict[str, str]:
    """Tiny files named like Multi30k's; returns their content."""
    content = {}
    for stem in ("train", "val", "test_2016_flickr", "test_2017_flickr", "test_2017_mscoco"):
        for lang in langs:
            text = f"{stem} {lang} 1\n{stem} {lang} 2\n"
            write(root / f"{stem}.{lang}.gz", text, gz=True)
            content[f"{stem}.{lang}"] = text
    return content


def test_known_corpus_from_data_dir_warns_on_other_content(tmp_path):
    fake_multi30k(tmp_path / "data" / "multi30k")
    with pytest.warns(ChecksumWarning, match="differs from the canonical multi30k"):
        files = resolve_parallel("multi30k", "de", "en", data_dir=tmp_path / "data")
    assert files["test"][1].name == "test_2016_flickr.en.gz"
    with pytest.warns(ChecksumWarning):
        f2 = resolve_parallel("multi30k", "en", "de", data_dir=tmp_path / "data",
                              splits={"test": "test_2017_mscoco"})
    assert [p.name for p in f2["test"]] == ["test_2017_mscoco.en.gz", "test_2017_mscoco.de.gz"]
    with pytest.raises(FileNotFoundError, match=r"data_dir .*empty: no train\.de\[\.gz\]"):
        resolve_parallel("multi30k", "de", "en", data_dir=tmp_path / "empty")
    with pytest.raises(ParallelDataError, match="no language 'fr'"):
        resolve_parallel("multi30k", "fr", "en")
    with pytest.raises(ParallelDataError, match="split test='test_2099' is unknown"):
        resolve_parallel("multi30k", "de", "en", splits={"train": "train", "test": "test_2099"})


def test_download_is_checked_and_atomic(tmp_path, monkeypatch):
    content = {k: f"{k} line\n" for k in KNOWN_PARALLEL["multi30k"].sha256}
    sha = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in content.items()}
    corpus = KNOWN_PARALLEL["multi30k"]
    monkeypatch.setitem(KNOWN_PARALLEL, "multi30k", type(corpus)(**{**corpus.__dict__, "sha256": sha}))
    served = []

    def urlopen(req, timeout=None):
        key = req.full_url.rsplit("/", 1)[1][:-3]
        served.append(req.full_url)
        body = gzip.compress(("corrupt\n" if key == "val.en" and corrupt else content[key]).encode())
        return contextlib.closing(io.BytesIO(body))

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    corrupt = True
    with pytest.raises(ChecksumError, match=r"val\.en\.gz: sha256 mismatch"):
        resolve_parallel("multi30k", "de", "en")
    cache = tmp_path / "xdg-cache" / "rnnkit" / "multi30k"
    assert not (cache / "val.en.gz").exists()
    assert not [p for p in cache.iterdir() if p.name.endswith(".part")]  # nothing half-written
    assert served[0].startswith("https://raw.githubusercontent.com/multi30k/dataset/a3d2e0d")
    corrupt = False
    files = resolve_parallel("multi30k", "de", "en")
    assert read_parallel(*files["test"]) == [("test_2016_flickr.de line", "test_2016_flickr.en line")]
    n = len(served)
    resolve_parallel("multi30k", "de", "en")  # now cached: no more downloads
    assert len(served) == n

    def offline(req, timeout=None):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DownloadError, match="cannot download .*test_2017_flickr.de.gz"):
        resolve_parallel("multi30k", "de", "en", splits={"test": "test_2017_flickr"})
    with pytest.raises(FileNotFoundError, match="download is off"):
        resolve_parallel("multi30k", "de", "en", splits={"test": "test_2017_flickr"}, download=False)


@pytest.mark.datasets
def test_real_multi30k_is_canonical():
    if not (DATASETS / "multi30k").is_dir():
        pytest.skip(f"{DATASETS / 'multi30k'} is absent (the shared datasets folder)")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", ChecksumWarning)  # the shared copy is the canonical one
        files = resolve_parallel("multi30k", "de", "en", data_dir=DATASETS)
    sizes = {s: len(read_parallel(*f)) for s, f in files.items()}
    assert sizes == {"train": 29000, "valid": 1014, "test": 1000}
    assert read_parallel(*files["train"])[0] == (
        "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche.",
        "Two young, White males are outside near many bushes.")


def test_folder_with_valid_and_dev_is_ambiguous(tmp_path):
    for stem in ("train", "valid", "dev"):
        write(tmp_path / f"{stem}.de", "a\nb\n")
        write(tmp_path / f"{stem}.en", "x\ny\n")
    with pytest.raises(ParallelDataError, match=r"valid\.de and .*dev\.de would each be the valid split"):
        resolve_parallel(tmp_path, "de", "en")
    (tmp_path / "dev.en").unlink()  # even half of a second split is one too many
    with pytest.raises(ParallelDataError, match=r"valid\.de and .*dev\.de would each be"):
        resolve_parallel(tmp_path, "de", "en")
    write(tmp_path / "dev.en", "x\ny\n")
    got = resolve_parallel(tmp_path, "de", "en", splits={"train": "train", "valid": "dev"})
    assert got["valid"] == (tmp_path / "dev.de", tmp_path / "dev.en")
