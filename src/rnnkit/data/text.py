"""Plain-text corpora: read (plain or gzip), tokenize (char / word), split.

The language-modeling pipeline reads a corpus in three steps::

    text = read_text("data/ptb/ptb.train.txt.gz")   # str, newlines as "\\n"
    tokens = tokenize(text, "word")                   # ["aer", ..., "<eos>", ...]
    parts = split_text(text, valid_fraction=0.1)      # {"train": ..., "valid": ...}

Word-level tokenization follows the standard PTB / WikiText-2 loaders (Zaremba et
al.; pytorch/examples ``word_language_model/data.py``): every line is
``line.split() + ["<eos>"]``, so a blank line gives just ``["<eos>"]``. With it the
PTB train split has 929,589 tokens and WikiText-2 train 2,088,628.

Errors are one line and name the file: a missing file, an empty file, corrupt gzip
data, or bytes that are not UTF-8 (with the 1-based line and column and the byte).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

from rnnkit.data._show import shown_path

__all__ = [
    "EOS",
    "LEVELS",
    "TextFileError",
    "read_bytes",
    "read_text",
    "tokenize",
    "split_text",
]

EOS = "<eos>"
LEVELS = ("char", "word")
_GZIP_MAGIC = b"\x1f\x8b"


class TextFileError(ValueError):
    """A text file that exists but cannot be used (empty, corrupt gzip, not UTF-8)."""


# ----------------------------------------------------------------------------- reading


def read_bytes(path: str | os.PathLike) -> bytes:
    """Return the content of ``path``, gunzipped when it starts with the gzip magic bytes.

    The format is decided by the first two bytes (``1f 8b``), not by the suffix, so a
    gzip file without ``.gz`` and a plain file named ``.gz`` both work.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message names it).
        IsADirectoryError: ``path`` is a directory.
        TextFileError: the gzip stream is truncated or corrupt.
    """
    p = Path(path)
    where = shown_path(p)  # a name from a folder listing may hold a newline
    if not p.exists():
        raise FileNotFoundError(f"{where}: no such file; expected a text file (plain or .gz)")
    if p.is_dir():
        raise IsADirectoryError(f"{where}: is a directory; expected a text file (plain or .gz)")
    raw = p.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
        raise TextFileError(
            f"{where}: corrupt or truncated gzip data ({e}); expected a valid .gz file"
        ) from None


def _wide_text(head: bytes) -> str | None:
    """``"UTF-16"`` or ``"UTF-32"`` where ``head`` (8 bytes or more) is laid out as text in
    that encoding without a byte-order mark: in every 2 (4) bytes one column holds the
    characters (some ASCII letters) and the others are NUL (little- or big-endian), else
    None.  A text that merely holds NUL characters does not line up so."""
    for width, name in ((4, "UTF-32"), (2, "UTF-16")):
        m = len(head) - len(head) % width
        if m < 8:
            continue
        cols = [head[i:m:width] for i in range(width)]
        nul = [c.count(0) / (m // width) for c in cols]
        chars = cols[nul.index(min(nul))]
        if (min(nul) < 0.5 and sorted(nul)[1] > 0.9
                and any(65 <= b <= 90 or 97 <= b <= 122 for b in chars)):  # letters, not NULs
            return name
    return None


def read_text(path: str | os.PathLike) -> str:
    """Read a UTF-8 text file, plain or gzip-compressed, into one string.

    Line ends are normalised as Python's text mode does (``\\r\\n`` and ``\\r``
    become ``\\n``) and a leading UTF-8 byte-order mark is dropped, so the result is
    the same whatever platform wrote the file.

    Args:
        path: the file; gzip is detected from its magic bytes.

    Returns:
        The decoded text.

    Raises:
        FileNotFoundError: the file does not exist.
        TextFileError: the file is empty, its gzip data is corrupt, or it is not
            UTF-8; the message is one line, e.g.
            ``data/x.txt:3:7: invalid UTF-8 byte 0xff; expected UTF-8 text``.

    Example::

        >>> text = read_text("input.txt")  # doctest: +SKIP
    """
    p = Path(path)
    where = shown_path(p)
    data = read_bytes(p)
    if not data:
        raise TextFileError(f"{where}: file is empty; expected UTF-8 text")
    head = data[:4096]
    wide = _wide_text(head)
    if wide is not None:  # ASCII in UTF-16/32 without a BOM: valid UTF-8, NULs and all
        raise TextFileError(f"{where}: {head.count(0)} of the first {len(head)} bytes are NUL: "
                            f"UTF-16 or UTF-32 text without a byte-order mark (it looks like "
                            f"{wide}); expected UTF-8 text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line, col = _line_col(data, e.start)
        raise TextFileError(
            f"{where}:{line}:{col}: invalid UTF-8 byte 0x{data[e.start]:02x}; expected UTF-8 text"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise TextFileError(f"{where}: file contains only whitespace; expected UTF-8 text")
    return text


def _line_col(data: bytes, offset: int) -> tuple[int, int]:
    """1-based (line, column) of byte ``offset``; the column counts characters."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    line = data.count(b"\n", 0, offset) + 1
    # everything before the first bad byte decodes, so the column is in characters
    col = len(data[line_start:offset].decode("utf-8")) + 1
    return line, col


# ----------------------------------------------------------------------------- tokenizing


def tokenize(text: str, level: str) -> list[str]:
    """Split ``text`` into tokens.

    Args:
        text: the corpus (as returned by :func:`read_text`).
        level: ``"char"``: every character, newlines included (``list(text)``);
            ``"word"``: for every line, ``line.split() + ["<eos>"]`` (the PTB and
            WikiText-2 convention; a blank line gives ``["<eos>"]``; a final line
            without a trailing newline still gets its ``<eos>``).

    Returns:
        The token list.

    Example::

        >>> tokenize("a b\\n\\nc\\n", "word")
        ['a', 'b', '<eos>', '<eos>', 'c', '<eos>']
        >>> tokenize("ab\\n", "char")
        ['a', 'b', '\\n']
    """
    if level == "char":
        return list(text)
    if level == "word":
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # text ends with "\n": no extra empty line (as file iteration)
        tokens: list[str] = []
        for line in lines:
            tokens.extend(line.split())
            tokens.append(EOS)
        return tokens
    raise ValueError(f"tokenize: level={level!r}; expected one of {', '.join(map(repr, LEVELS))}")


# ----------------------------------------------------------------------------- splitting


def split_text(
    text: str,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.0,
    *,
    by: str = "char",
) -> dict[str, str]:
    """Split one corpus chronologically into train / valid / test.

    With ``n`` units (characters, or lines when ``by="line"``) the boundaries are

        train = [0, floor(n (1 - v - t))),  valid = [that, floor(n (1 - t))),  test = rest

    so ``split_text(text, 0.1)`` is the usual "first 90% train, last 10% valid" of
    char-rnn / nanoGPT (same boundary as ``int(0.9 * len(text))``). Use
    ``by="line"`` for word-level corpora so no word is cut in two.

    Args:
        text: the corpus.
        valid_fraction: share of the validation split, in [0, 1); 0 omits it.
        test_fraction: share of the test split, in [0, 1); 0 omits it.
        by: ``"char"`` or ``"line"``.

    Returns:
        ``{"train": ..., "valid": ..., "test": ...}`` with only the splits whose
        fraction is positive (``"train"`` always); concatenated they give ``text``.

    Raises:
        ValueError: a fraction out of range, or a split that would be empty.
    """
    for name, frac in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= frac < 1.0:
            raise ValueError(f"split_text: {name}={frac!r}; expected a number in [0, 1)")
    if valid_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"split_text: valid_fraction + test_fraction = {valid_fraction + test_fraction!r}; "
            "expected less than 1 so that a train split remains"
        )
    if by == "char":
        units: list[str] | str = text
    elif by == "line":
        units = _lines_keepends(text)
    else:
        raise ValueError(f"split_text: by={by!r}; expected 'char' or 'line'")
    n = len(units)
    train_end = int(n * (1.0 - valid_fraction - test_fraction))
    valid_end = int(n * (1.0 - test_fraction))
    bounds = {"train": (0, train_end), "valid": (train_end, valid_end), "test": (valid_end, n)}
    wanted = {"train": True, "valid": valid_fraction > 0, "test": test_fraction > 0}
    out: dict[str, str] = {}
    for name, (a, b) in bounds.items():
        if not wanted[name]:
            continue
        if b <= a:
            raise ValueError(
                f"split_text: the {name} split is empty ({n} {by}s with valid_fraction="
                f"{valid_fraction}, test_fraction={test_fraction}); expected a longer text"
            )
        out[name] = "".join(units[a:b]) if by == "line" else text[a:b]
    return out


def _lines_keepends(text: str) -> list[str]:
    """Lines of ``text`` split on ``"\\n"`` only (not on ``\\x0c`` etc.), ends kept."""
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    if lines[-1] == "":
        lines.pop()
    return lines
