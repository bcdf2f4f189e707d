"""Tests of rnnkit.data.vocab.Vocab: deterministic order, encode/decode, JSON files."""

import json

import pytest
import torch

from rnnkit.data.vocab import OutOfVocabularyError, Vocab, VocabFileError


def test_build_order_specials_then_frequency_then_first_occurrence():
    tokens = "b a c a d c e a <unk> e".split()
    v = Vocab.build(tokens)
    # counts: a3, c2, e2, b1, d1 (+ <unk> special, counted once); ties by first occurrence
    assert v.itos == ["<unk>", "a", "c", "e", "b", "d"]
    assert v.stoi == {t: i for i, t in enumerate(v.itos)}
    assert len(v) == 6 and v.unk == "<unk>" and v.unk_id == 0 and v.level == "word"
    assert "a" in v and "z" not in v


def test_build_is_independent_of_set_ordering():
    tokens = [f"w{i % 7}" for i in range(50)] + ["w3"] * 5
    assert Vocab.build(tokens).itos == Vocab.build(list(tokens)).itos
    assert Vocab.build(tokens).itos[1] == "w3"  # 7 + 5 occurrences


def test_multiple_specials_keep_their_order():
    v = Vocab.build(["x", "<eos>", "x"], specials=("<unk>", "<eos>", "<pad>"))
    assert v.itos == ["<unk>", "<eos>", "<pad>", "x"]


def test_min_freq_and_max_size():
    tokens = "a a a b b c d d d d".split()
    assert Vocab.build(tokens, min_freq=2).itos == ["<unk>", "d", "a", "b"]
    assert Vocab.build(tokens, max_size=3).itos == ["<unk>", "d", "a"]
    assert Vocab.build(tokens, specials=(), max_size=2).itos == ["d", "a"]
    with pytest.raises(ValueError, match="min_freq=0; expected an integer >= 1"):
        Vocab.build(tokens, min_freq=0)
    with pytest.raises(ValueError, match="max_size=0"):
        Vocab.build(tokens, max_size=0)
    with pytest.raises(ValueError, match="level='bpe'"):
        Vocab.build(tokens, level="bpe")


def test_char_vocab_infers_level_and_has_no_unk():
    v = Vocab.build("hello\n", specials=())
    assert v.itos == ["l", "h", "e", "o", "\n"] and v.level == "char" and v.unk is None
    assert Vocab.build("hello", specials=(), level="word").level == "word"


def test_encode_decode_roundtrip_and_unk_mapping():
    v = Vocab.build("the cat sat on the mat".split())
    ids = v.encode("the dog sat".split())
    assert ids == [v.stoi["the"], 0, v.stoi["sat"]]
    assert v.decode(ids) == ["the", "<unk>", "sat"]
    assert v.decode(torch.tensor(ids)) == ["the", "<unk>", "sat"]
    with pytest.raises(ValueError, match=r"id 7 at position 1 is out of range; expected 0..5"):
        v.decode([1, 7])


def test_encode_out_of_vocabulary_without_unk_is_clear():
    v = Vocab.build("abcab\n", specials=(), level="char")
    assert v.encode("cab") == [2, 0, 1]
    with pytest.raises(OutOfVocabularyError) as e:
        v.encode("abZc")
    assert str(e.value) == (
        "token 'Z' at position 2 is outside the vocabulary (4 char types, no <unk>); "
        "expected one of the training tokens"
    )
    assert e.value.token == "Z" and e.value.position == 2
    assert isinstance(e.value, ValueError)


def test_dict_and_file_roundtrip(tmp_path):
    v = Vocab.build("x y z y <eos>".split(), specials=("<unk>", "<eos>"))
    d = v.to_dict()
    assert (
        d["itos"] == ["<unk>", "<eos>", "y", "x", "z"]
        and d["unk"] == "<unk>"
        and d["level"] == "word"
    )
    assert Vocab.from_dict(d) == v
    path = tmp_path / "vocab.json"
    v.save(path)
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert on_disk["itos"] == v.itos and on_disk["unk"] == "<unk>" and on_disk["level"] == "word"
    assert Vocab.load(path) == v
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vocab.json"]  # no temp file left


def test_char_vocab_roundtrip_keeps_whitespace_and_unicode(tmp_path):
    v = Vocab.build("é\n \tab", specials=())
    v.save(tmp_path / "v.json")
    w = Vocab.load(tmp_path / "v.json")
    assert w == v and w.unk is None and w.level == "char" and w.itos[0] == "é"


def test_minimal_dict_is_accepted():
    v = Vocab.from_dict({"itos": ["<unk>", "a"], "unk": "<unk>"})
    assert v.encode(["a", "b"]) == [1, 0] and v.level is None


@pytest.mark.parametrize(
    "content, match",
    [
        ('{"itos": ["a", "b"', r":1:19: invalid JSON"),
        ('["a", "b"]', "expected a JSON object with an 'itos' list, got list"),
        ('{"unk": null}', "'itos' must be a non-empty list of strings"),
        ('{"itos": []}', "'itos' must be a non-empty list of strings"),
        ('{"itos": ["a", 3]}', r"itos\[1\] is 3; expected a string token"),
        ('{"itos": ["a", "b", "a"]}', r"token 'a' appears twice \(ids 0 and 2\)"),
        ('{"itos": ["a"], "unk": "<unk>"}', "unk token '<unk>' is not among the 1 tokens"),
        ('{"itos": ["a"], "unk": 0}', "'unk' must be a string or null"),
        ('{"itos": ["a"], "unk": null, "level": "bpe"}', "level='bpe'"),
        ('{"format": "other", "itos": ["a"]}', "format='other'"),
    ],
)
def test_malformed_vocab_file(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(VocabFileError, match=match) as e:
        Vocab.load(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_vocab_file_not_utf8_or_missing(tmp_path):
    path = tmp_path / "bin.json"
    path.write_bytes(b'{"itos": ["\xff"]}')
    with pytest.raises(VocabFileError, match="not UTF-8"):
        Vocab.load(path)
    with pytest.raises(FileNotFoundError, match="no such vocabulary file"):
        Vocab.load(tmp_path / "missing.json")


def test_huge_tokens_are_not_echoed_in_full(tmp_path):
    big = "t" * 1_000_000
    with pytest.raises(OutOfVocabularyError, match=r"token 't{40}'\.\.\. \(1,000,000 characters\) at position 1") as e:
        Vocab(["a", "b"], unk=None).encode(["a", big])
    assert len(str(e.value)) < 400
    p = tmp_path / "v.json"
    p.write_text(json.dumps({"itos": ["a", big, big], "unk": None}))
    with pytest.raises(VocabFileError, match=r"v\.json: token 't{40}'\.\.\. \(1,000,000 characters\) appears twice") as e:
        Vocab.load(p)
    assert len(str(e.value)) < 400


@pytest.mark.parametrize("content", ["[" * 100_000 + "]" * 100_000, '{"itos": [' + "9" * 5000 + "]}"])
def test_pathological_json_is_a_vocab_file_error(tmp_path, content):
    p = tmp_path / "v.json"
    p.write_text(content)
    with pytest.raises(VocabFileError, match=r"v\.json: invalid JSON"):
        Vocab.load(p)
