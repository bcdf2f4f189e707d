"""Tagged sentences from CoNLL-U and CoNLL-2003-style column files; BIO/BIOES tag schemes.

Two formats, each plain or gzip-compressed (detected from the magic bytes)::

    # CoNLL-U (Universal Dependencies): 10 tab-separated columns, '#' comments,
    # a blank line after each sentence. Multiword-token ranges ("1-2") and empty
    # nodes ("8.1") are skipped; the tag is the UPOS or XPOS column.
    1   Al      Al      PROPN   NNP   Number=Sing   0   root    0:root   SpaceAfter=No

    # CoNLL-2003 style: whitespace-separated columns (token first, tag last by
    # default), a blank line between sentences, "-DOCSTART-" lines ignored.
    EU      NNP  B-NP  B-ORG
    rejects VBZ  B-VP  O

Span tags come in two schemes, converted losslessly into each other (``I-`` tags that
start a span, as in the original IOB1 CoNLL-2003 files, are read as ``B-``)::

    BIO    B-PER I-PER O B-LOC          BIOES  B-PER E-PER O S-LOC

A malformed line raises :class:`ConllError` naming ``file:line`` and what was expected.
``"ud_english_ewt"`` is a known dataset: :func:`resolve_tagging_data` finds it in a data
directory, ``$RNNKIT_DATA`` or the cache, or downloads it (checked against its sha256).

Example::

    files = resolve_tagging_data("ud_english_ewt", data_dir="../shared/datasets")
    train = read_conllu(files["train"], column="upos")    # 12,544 sentences
    train[0].words[:3], train[0].tags[:3]                 # ['Al', '-', 'Zaman'], ['PROPN', ...]
    to_bioes(["B-PER", "I-PER", "O", "B-LOC"])            # ['B-PER', 'E-PER', 'O', 'S-LOC']
"""
from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rnnkit.data._show import shown
from rnnkit.data.registry import (
    ChecksumWarning,
    KnownCorpus,
    SplitFile,
    cache_dir,
    content_sha256,
    download_checked,
)
from rnnkit.data.text import TextFileError, read_text

__all__ = ["ConllError", "Sentence", "read_conllu", "read_columns", "read_tagged",
           "detect_scheme", "check_span_tags", "to_bio", "to_bioes", "convert_tags",
           "KNOWN_TAGGING", "resolve_tagging_data"]

log = logging.getLogger(__name__)

Scheme = Literal["none", "bio", "bioes"]
_SPAN_TAG = re.compile(r"(?:O|([BIES])-(.+))")
_SPAN_WANT = "O or B-/I-/E-/S- followed by a type"
_UD = ("https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/"
       "15d613d8447b3478787d4c278730a1e48a945efb")

#: known tagging datasets: splits "train", "valid", "test" (sha256 of the uncompressed files)
KNOWN_TAGGING: dict[str, KnownCorpus] = {
    "ud_english_ewt": KnownCorpus(
        name="ud_english_ewt",
        level="word",
        description="UD English EWT v2.15 (UniversalDependencies/UD_English-EWT @ 15d613d), "
                    "CoNLL-U, 12,544 / 2,001 / 2,077 sentences",
        splits={
            "train": SplitFile(f"{_UD}/en_ewt-ud-train.conllu",
                               "3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b",
                               ("en_ewt-ud-train.conllu",)),
            "valid": SplitFile(f"{_UD}/en_ewt-ud-dev.conllu",
                               "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6",
                               ("en_ewt-ud-dev.conllu",)),
            "test": SplitFile(f"{_UD}/en_ewt-ud-test.conllu",
                              "e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd",
                              ("en_ewt-ud-test.conllu",)),
        },
    ),
}


class ConllError(ValueError):
    """A tagged-text file that cannot be read (one-line message naming ``file:line``)."""


@dataclass
class Sentence:
    """One tagged sentence.

    Attributes:
        words: the tokens (FORM column), case kept.
        tags: one tag per token.
        lines: the 1-based line of each token in its file (for error messages).
    """

    words: list[str]
    tags: list[str]
    lines: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.words)


# ----------------------------------------------------------------------------- readers


def _lines(path: str | os.PathLike) -> list[str]:
    """The file's lines (split on "\\n" only: a token may contain other line separators)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file; expected a CoNLL-U or column file")
    try:
        text = read_text(p)
    except TextFileError as e:  # empty, corrupt gzip, not UTF-8: already names file and line
        raise ConllError(
            str(e).replace("expected UTF-8 text", "expected tagged sentences")
        ) from None
    return text.split("\n")


def read_conllu(
    path: str | os.PathLike, column: Literal["upos", "xpos"] = "upos"
) -> list[Sentence]:
    """Sentences of a CoNLL-U file with the UPOS (4th) or XPOS (5th) column as tags.

    Comments (``#``), multiword-token ranges (ID ``a-b``) and empty nodes (ID ``a.b``) are
    skipped; word IDs must run 1, 2, 3, ... within a sentence.

    Raises:
        ConllError: a line without 10 tab-separated columns, a bad or out-of-order ID,
            an empty FORM, or ``_`` in the tag column; the message names ``file:line``.
    """
    if column not in ("upos", "xpos"):
        raise ValueError(f"column={column!r}; expected 'upos' or 'xpos'")
    col = 3 if column == "upos" else 4
    sents: list[Sentence] = []
    cur = Sentence([], [], [])
    for n, raw in enumerate(_lines(path), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            if cur.words:
                sents.append(cur)
                cur = Sentence([], [], [])
            continue
        if line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise ConllError(
                f"{path}:{n}: expected 10 tab-separated CoNLL-U columns "
                f"(ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC), got {len(cols)}"
            )
        wid = cols[0]
        if re.fullmatch(r"\d+-\d+|\d+\.\d+", wid):
            continue  # multiword-token range or empty node
        if not wid.isdigit() or int(wid) != len(cur.words) + 1:
            raise ConllError(f"{path}:{n}: word ID {shown(wid)}; expected {len(cur.words) + 1} "
                             "(or a range a-b / an empty node a.b)")
        form, tag = cols[1], cols[col]
        if not form:
            raise ConllError(f"{path}:{n}: empty FORM column; expected a token")
        if tag in ("", "_"):
            raise ConllError(f"{path}:{n}: {column.upper()} column is {tag!r}; expected a tag "
                             f"(is this treebank annotated with {column.upper()}?)")
        cur.words.append(form)
        cur.tags.append(tag)
        cur.lines.append(n)
    if cur.words:
        sents.append(cur)
    if not sents:
        raise ConllError(f"{path}: no sentences; expected CoNLL-U token lines")
    return sents


def read_columns(path: str | os.PathLike, token_column: int = 0, tag_column: int = -1,
                 scheme: Literal["auto", "none", "bio", "bioes"] = "auto") -> list[Sentence]:
    """Sentences of a CoNLL-2003-style file: whitespace-separated columns, blank lines
    between sentences, ``-DOCSTART-`` lines ignored.

    Args:
        token_column / tag_column: column indices (negative counts from the end).
        scheme: the tag scheme to check against: ``"bio"`` / ``"bioes"`` require every tag
            to be ``O`` or ``P-TYPE`` with ``P`` in ``B I`` / ``B I E S``; ``"none"`` accepts
            anything; ``"auto"`` applies :func:`detect_scheme` to the whole file first.
            Span tags are returned as read (use :func:`convert_tags` to normalise).

    Raises:
        ConllError: a line with too few columns (all token lines must have the same
            number), or a tag outside the scheme; the message names ``file:line``.
    """
    need = max(2, *(i + 1 if i >= 0 else -i for i in (token_column, tag_column)))
    sents: list[Sentence] = []
    cur = Sentence([], [], [])
    width: tuple[int, int] | None = None  # (number of columns, line where first seen)
    for n, raw in enumerate(_lines(path), start=1):
        cols = raw.split()
        if not cols:
            if cur.words:
                sents.append(cur)
                cur = Sentence([], [], [])
            continue
        if cols[0] == "-DOCSTART-":
            continue
        if len(cols) < need:
            raise ConllError(f"{path}:{n}: expected at least {need} whitespace-separated columns "
                             f"(token in column {token_column}, tag in column {tag_column}), "
                             f"got {len(cols)}: {shown(raw.strip(), 60)}")
        if width is None:
            width = (len(cols), n)
        elif len(cols) != width[0]:
            raise ConllError(f"{path}:{n}: expected {width[0]} columns like line {width[1]}, "
                             f"got {len(cols)}")
        cur.words.append(cols[token_column])
        cur.tags.append(cols[tag_column])
        cur.lines.append(n)
    if cur.words:
        sents.append(cur)
    if not sents:
        raise ConllError(f"{path}: no sentences; expected token/tag lines")
    if scheme == "auto":
        scheme = detect_scheme(t for s in sents for t in s.tags)
    if scheme != "none":
        _check_scheme(sents, scheme, path)
    return sents


def read_tagged(path: str | os.PathLike, format: Literal["auto", "conllu", "columns"] = "auto",
                column: Literal["upos", "xpos"] = "upos", token_column: int = 0,
                tag_column: int = -1,
                scheme: Literal["auto", "none", "bio", "bioes"] = "auto") -> list[Sentence]:
    """:func:`read_conllu` or :func:`read_columns`; ``"auto"`` picks CoNLL-U for names
    containing ``.conllu`` and for files whose first token line has 10 tab-separated columns."""
    if format == "auto":
        format = "conllu" if ".conllu" in Path(path).name or _looks_conllu(path) else "columns"
    if format == "conllu":
        return read_conllu(path, column)
    if format == "columns":
        return read_columns(path, token_column, tag_column, scheme)
    raise ValueError(f"format={format!r}; expected 'auto', 'conllu' or 'columns'")


def _looks_conllu(path: str | os.PathLike) -> bool:
    for line in _lines(path):
        if line.strip() and not line.startswith("#"):
            return len(line.rstrip("\r").split("\t")) == 10
    return False


# ----------------------------------------------------------------------------- schemes


def detect_scheme(tags) -> Scheme:
    """``"bioes"`` if all tags are ``O``/``P-TYPE`` and some have ``S-``/``E-``; ``"bio"`` if
    all are ``O``/``P-TYPE`` with ``P`` in ``B I`` and some are not ``O``; else ``"none"``."""
    prefixes: set[str] = set()
    for t in tags:
        if not _SPAN_TAG.fullmatch(t):
            return "none"
        prefixes.add(t[0])
    if prefixes & {"E", "S"}:
        return "bioes"
    return "bio" if prefixes & {"B", "I"} else "none"


def _check_scheme(sents: Sequence[Sentence], scheme: str, path) -> None:
    allowed = "BI" if scheme == "bio" else "BIES"
    for s in sents:
        for t, n in zip(s.tags, s.lines):
            if not (_SPAN_TAG.fullmatch(t) and (t == "O" or t[0] in allowed)):
                raise ConllError(f"{path}:{n}: tag {shown(t)}; expected O or "
                                 f"{'/'.join(allowed)}-TYPE ({scheme.upper()} scheme)")


def check_span_tags(sents: Sequence[Sentence], path, why: str) -> None:
    """Raise :class:`ConllError` at the first tag that is not ``O`` or ``P-TYPE`` (``P`` in
    ``B I E S``), naming ``path:line``, the tag and ``why`` span tags are needed."""
    for s in sents:
        for k, t in enumerate(s.tags):
            if not _SPAN_TAG.fullmatch(t):
                where = f"{path}:{s.lines[k]}" if k < len(s.lines) else f"{path}"
                raise ConllError(f"{where}: tag {shown(t)} is not {_SPAN_WANT} ({why})")


def _split(tag: str) -> tuple[str, str]:
    """(prefix, type) of a span tag; anything else is a ValueError (never rewritten)."""
    m = _SPAN_TAG.fullmatch(tag)
    if m is None:
        raise ValueError(f"tag {shown(tag)} is not {_SPAN_WANT}")
    return ("O", "") if tag == "O" else (m[1], m[2])


def to_bio(tags: Sequence[str]) -> list[str]:
    """BIO (IOB2) tags from BIO, IOB1 or BIOES: a span starts with ``B-``, goes on with ``I-``.

    ``S-X -> B-X``, ``E-X -> I-X``, and an ``I-X`` that does not continue an ``X`` span
    (IOB1, or a broken sequence) becomes ``B-X``.
    """
    out, prev = [], ""
    for t in tags:
        p, typ = _split(t)
        if p == "O":
            out.append("O")
            prev = ""
            continue
        if p in ("I", "E") and prev == typ:
            out.append(f"I-{typ}")
        else:
            out.append(f"B-{typ}")
        prev = "" if p in ("E", "S") else typ
    return out


def to_bioes(tags: Sequence[str]) -> list[str]:
    """BIOES tags: single-token spans ``S-``, longer ones ``B- I- ... E-`` (input: any scheme)."""
    bio = to_bio(tags)
    out = []
    for k, t in enumerate(bio):
        if t == "O":
            out.append(t)
            continue
        p, typ = _split(t)
        ends = k + 1 == len(bio) or bio[k + 1] != f"I-{typ}"
        out.append(f"{('S' if ends else 'B') if p == 'B' else ('E' if ends else 'I')}-{typ}")
    return out


def convert_tags(tags: Sequence[str], to: Scheme) -> list[str]:
    """``to_bio`` / ``to_bioes`` / unchanged (``"none"``).

    Raises:
        ValueError: (``"bio"``/``"bioes"``) a tag that is not ``O`` or ``P-TYPE`` with ``P``
            in ``B I E S`` (e.g. ``B_PER``, ``LOC``): it is never rewritten.
    """
    if to == "bio":
        return to_bio(tags)
    if to == "bioes":
        return to_bioes(tags)
    if to == "none":
        return list(tags)
    raise ValueError(f"scheme {to!r}; expected 'none', 'bio' or 'bioes'")


# ----------------------------------------------------------------------------- known data


def _find(d: Path, sf: SplitFile) -> Path | None:
    for name in sf.names:
        for cand in (d / name, d / f"{name}.gz"):
            if cand.is_file():
                return cand
    return None


def _find_all(corpus: KnownCorpus, root: Path) -> dict[str, Path]:
    for d in (root / corpus.name, root):
        found = {s: p for s, sf in corpus.splits.items() if (p := _find(d, sf)) is not None}
        if len(found) == len(corpus.splits):
            return found
    return {}


def _check(corpus: KnownCorpus, files: dict[str, Path]) -> dict[str, Path]:
    for split, p in files.items():
        want = corpus.splits[split].sha256
        if (got := content_sha256(p)) != want:
            warnings.warn(f"{p}: sha256 {got} differs from the canonical {corpus.name} {split} "
                          f"file ({want}); using it anyway as a user-provided copy",
                          ChecksumWarning, stacklevel=3)
    return files


def _download(corpus: KnownCorpus, split: str, dest_dir: Path) -> Path:
    """Fetch one split into ``dest_dir``: to a temporary file, sha256-checked, renamed."""
    sf = corpus.splits[split]
    return download_checked(
        sf.url,
        sf.sha256,
        dest_dir / sf.names[0],
        what=corpus.name,
        hint="without network pass --data-dir DIR or set RNNKIT_DATA to a folder "
        f"holding {', '.join(s.names[0] for s in corpus.splits.values())}",
    )


def resolve_tagging_data(source: str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
                         download: bool = True) -> dict[str, Path]:
    """``{split: path}`` for a known dataset name, a directory or a single file.

    A known name (:data:`KNOWN_TAGGING`) is looked up in ``data_dir`` (``data_dir/<name>/`` or
    ``data_dir/``; an explicit ``data_dir`` without it is an error), ``$RNNKIT_DATA``, the cache
    ``~/.cache/rnnkit/<name>/``, and finally downloaded into the cache (``download=True``).
    A directory needs exactly one file per split whose name contains ``train``, ``dev`` or
    ``valid``, ``test`` (e.g. ``en_ewt-ud-train.conllu``, ``eng.testb`` is *not* matched);
    a file is the ``train`` split alone.
    """
    key = os.fspath(source)
    if key in KNOWN_TAGGING:
        corpus = KNOWN_TAGGING[key]
        want = ", ".join(f"{sf.names[0]}[.gz]" for sf in corpus.splits.values())
        if data_dir is not None:
            root = Path(data_dir).expanduser()
            if not (found := _find_all(corpus, root)):
                raise FileNotFoundError(f"data_dir {root}: no {want} in {root / corpus.name} or "
                                        f"{root}; expected the {corpus.name} files")
            return _check(corpus, found)
        roots = [Path(e).expanduser() for e in [os.environ.get("RNNKIT_DATA")] if e]
        for root in [*roots, cache_dir(corpus.name)]:
            if found := _find_all(corpus, root):
                return _check(corpus, found)
        if not download:
            raise FileNotFoundError(f"{corpus.name}: {want} not found in "
                                    f"{', '.join(map(str, roots + [cache_dir(corpus.name)]))} and "
                                    "download is off; pass --data-dir DIR or set RNNKIT_DATA")
        cache = cache_dir(corpus.name)
        have = {s: p for s, sf in corpus.splits.items() if (p := _find(cache, sf))}
        return {s: have.get(s) or _download(corpus, s, cache) for s in corpus.splits}
    p = Path(key).expanduser()
    if p.is_file():
        return {"train": p}
    if not p.is_dir():
        raise FileNotFoundError(f"{key!r} is neither a known tagging dataset "
                                f"({', '.join(KNOWN_TAGGING)}) nor an existing file or folder")
    files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
    out: dict[str, Path] = {}
    for split, keys in (("train", ("train",)), ("valid", ("dev", "valid")), ("test", ("test",))):
        hits = [f for f in files if any(k in f.name.lower() for k in keys)]
        if len(hits) > 1:
            raise FileNotFoundError(
                f"{p}: several {split} files ({', '.join(f.name for f in hits)}); "
                "expected one, or name them with data.train/valid/test"
            )
        if hits:
            out[split] = hits[0]
    if "train" not in out:
        raise FileNotFoundError(f"{p}: no training file; expected a file with 'train' in its name")
    return out
