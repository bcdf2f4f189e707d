"""Tests of rnnkit.data.text: reading (plain/gzip, errors), tokenizing, splitting."""

import gzip

import pytest

from rnnkit.data.text import TextFileError, read_text, split_text, tokenize

# ----------------------------------------------------------------------------- read_text


def test_read_plain_and_gzip_by_magic_not_suffix(tmp_path):
    text = "First Citizen:\nBefore we proceed, héllo.\n"
    plain = tmp_path / "a.gz"  # plain content despite the suffix
    plain.write_bytes(text.encode())
    packed = tmp_path / "b.txt"  # gzip content despite the suffix
    packed.write_bytes(gzip.compress(text.encode()))
    assert read_text(plain) == text
    assert read_text(packed) == text
    assert read_text(str(packed)) == text


def test_read_normalises_newlines_and_bom(tmp_path):
    p = tmp_path / "crlf.txt"
    p.write_bytes(b"\xef\xbb\xbfa b\r\nc\rd\n")
    assert read_text(p) == "a b\nc\nd\n"


def test_missing_file_names_it(tmp_path):
    p = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError) as e:
        read_text(p)
    msg = str(e.value)
    assert str(p) in msg and "no such file" in msg and "\n" not in msg


def test_directory_is_rejected(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        read_text(tmp_path)


@pytest.mark.parametrize("content", [b"", gzip.compress(b"", mtime=0)], ids=["plain", "gzip"])
def test_empty_file_names_it(tmp_path, content):
    p = tmp_path / "empty.txt"
    p.write_bytes(content)
    with pytest.raises(TextFileError) as e:
        read_text(p)
    assert str(e.value) == f"{p}: file is empty; expected UTF-8 text"


def test_whitespace_only_file(tmp_path):
    p = tmp_path / "ws.txt"
    p.write_bytes(b" \n\n\t\n")
    with pytest.raises(TextFileError, match="only whitespace"):
        read_text(p)


def test_invalid_utf8_gives_line_column_and_byte(tmp_path):
    p = tmp_path / "x.txt"
    p.write_bytes(b"ab\ncd\nabcdef\xffz\n")
    with pytest.raises(TextFileError) as e:
        read_text(p)
    assert str(e.value) == f"{p}:3:7: invalid UTF-8 byte 0xff; expected UTF-8 text"
    assert isinstance(e.value, ValueError)


def test_invalid_utf8_column_counts_characters_and_works_in_gzip(tmp_path):
    # "é" is two bytes but one column; the bad byte 0xc3 starts a truncated sequence
    p = tmp_path / "y.txt.gz"
    p.write_bytes(gzip.compress("line one\nhé x".encode() + b"\xc3(rest\n"))
    with pytest.raises(TextFileError) as e:
        read_text(p)
    assert str(e.value) == f"{p}:2:5: invalid UTF-8 byte 0xc3; expected UTF-8 text"


def test_corrupt_gzip(tmp_path):
    p = tmp_path / "t.txt.gz"
    p.write_bytes(gzip.compress(b"hello world\n" * 100)[:30])
    with pytest.raises(TextFileError) as e:
        read_text(p)
    assert str(e.value).startswith(f"{p}: corrupt or truncated gzip data")
    assert "\n" not in str(e.value)


# ----------------------------------------------------------------------------- tokenize


def test_tokenize_char_keeps_newlines():
    assert tokenize("ab\n c", "char") == ["a", "b", "\n", " ", "c"]


def test_tokenize_word_ptb_convention():
    # PTB lines start with a space and end with " \n"; blank lines give "<eos>" alone
    text = " the cat <unk> \n\n a  b\tc \n last"
    assert tokenize(text, "word") == [
        "the",
        "cat",
        "<unk>",
        "<eos>",
        "<eos>",
        "a",
        "b",
        "c",
        "<eos>",
        "last",
        "<eos>",
    ]


def test_tokenize_word_matches_file_iteration(tmp_path):
    # the reference: pytorch/examples word_language_model/data.py
    text = " = Title = \n\n some text , here . \n\n\n x\n"
    p = tmp_path / "w.txt"
    p.write_text(text)
    expected = []
    with open(p, encoding="utf8") as f:
        for line in f:
            expected += line.split() + ["<eos>"]
    assert tokenize(read_text(p), "word") == expected
    assert expected.count("<eos>") == 6


def test_tokenize_bad_level():
    with pytest.raises(ValueError, match=r"level='bpe'; expected one of 'char', 'word'"):
        tokenize("x", "bpe")


# ----------------------------------------------------------------------------- split_text


def test_split_default_is_first_90_percent():
    text = "".join(chr(97 + i % 26) for i in range(1003))
    parts = split_text(text)
    assert list(parts) == ["train", "valid"]
    assert parts["train"] == text[: int(1003 * 0.9)]  # 902 chars, as nanoGPT/char-rnn
    assert len(parts["train"]) == 902 and parts["valid"] == text[902:]


def test_split_three_ways_chronological():
    text = "".join(str(i % 10) for i in range(100))
    parts = split_text(text, valid_fraction=0.1, test_fraction=0.2)
    assert [len(parts[k]) for k in ("train", "valid", "test")] == [70, 10, 20]
    assert parts["train"] + parts["valid"] + parts["test"] == text


def test_split_by_line_keeps_lines_whole():
    text = "".join(f"line {i}\n" for i in range(10)) + "tail"
    parts = split_text(text, valid_fraction=0.2, test_fraction=0.1, by="line")
    assert parts["train"] == "".join(f"line {i}\n" for i in range(7))
    assert parts["valid"] == "line 7\nline 8\n"
    assert parts["test"] == "line 9\ntail"


def test_split_no_valid():
    assert split_text("abcdef", valid_fraction=0.0) == {"train": "abcdef"}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"valid_fraction": 1.0}, r"valid_fraction=1.0; expected a number in \[0, 1\)"),
        ({"test_fraction": -0.1}, r"test_fraction=-0.1"),
        ({"valid_fraction": 0.6, "test_fraction": 0.4}, "so that a train split remains"),
        ({"by": "word"}, "by='word'; expected 'char' or 'line'"),
    ],
)
def test_split_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        split_text("abcdefghij" * 10, **kwargs)


def test_split_too_short():
    with pytest.raises(ValueError, match=r"the train split is empty \(1 chars"):
        split_text("a", valid_fraction=0.5)
    # 10 chars: train [0, 9), valid [9, 9) is empty, test [9, 10)
    with pytest.raises(ValueError, match="the valid split is empty"):
        split_text("abcdefghij", valid_fraction=0.01, test_fraction=0.01)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_utf16_without_a_bom_is_named_not_read_as_nul_text(tmp_path, encoding):
    # valid UTF-8 byte by byte ('t\x00e\x00...'), so it used to reach the readers as a header
    # with NULs in it ("no column 'text'")
    p = tmp_path / "u.csv"
    p.write_bytes("text,label\ngood film,pos\n".encode(encoding))
    with pytest.raises(TextFileError, match=r"u\.csv: \d+ of the first \d+ bytes are NUL: UTF-16 or "
                                            r"UTF-32 text without a byte-order mark"):
        read_text(p)
    (tmp_path / "one.txt").write_bytes(b"a\x00bcdefgh\n")  # one NUL: the readers' to name
    assert read_text(tmp_path / "one.txt") == "a\x00bcdefgh\n"
    # NUL characters that do not line up as a wide encoding's (the long fuzz profile's case):
    # text, however odd; "\x00\n" was refused as "1 of the first 2 bytes are NUL"
    for text in ("\x00\n", "\x00\n" * 4, "\x00\x00 a\n"):
        (tmp_path / "nul.txt").write_bytes(text.encode())
        assert read_text(tmp_path / "nul.txt") == text
