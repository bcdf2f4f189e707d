"""Vocabulary: a deterministic bijection between tokens and integer ids.

Order of ids: the ``specials`` first (in the given order), then the other tokens
by descending frequency, ties broken by first occurrence in the corpus. The same
corpus therefore always gives the same ids, on any machine and Python version.

Unknown tokens map to ``<unk>`` when the vocabulary contains it (word level: the
PTB and WikiText-2 files already contain ``<unk>``, so the default
``specials=("<unk>",)`` adds no extra type and gives the standard 10,000 and
33,278 types). A vocabulary without ``<unk>`` (char level: ``specials=()``)
rejects an unknown token with a :class:`OutOfVocabularyError` that names it.

Saved as JSON (never pickled)::

    {"format": "rnnkit.vocab", "version": 1, "level": "char" | "word" | null,
     "unk": "<unk>" | null, "itos": ["<unk>", "the", ...]}
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rnnkit.data._show import shown

__all__ = ["UNK", "OutOfVocabularyError", "VocabFileError", "Vocab"]

UNK = "<unk>"
_FORMAT = "rnnkit.vocab"
_VERSION = 1
_LEVELS = ("char", "word")


class OutOfVocabularyError(ValueError):
    """A token that is not in a vocabulary without ``<unk>``.

    Attributes:
        token: the offending token.
        position: its 0-based index in the encoded sequence.
    """

    def __init__(self, message: str, token: str, position: int):
        super().__init__(message)
        self.token = token
        self.position = position


class VocabFileError(ValueError):
    """A vocabulary file or dict that is not a valid rnnkit vocabulary."""


class Vocab:
    """Token <-> id mapping.

    Attributes:
        itos: list of tokens; ``itos[i]`` is the token of id ``i``.
        stoi: dict token -> id (the inverse of ``itos``).
        unk: the token unknown tokens map to (``"<unk>"``) or ``None``.
        level: ``"char"``, ``"word"`` or ``None`` (unknown), stored with the vocab so a
            checkpoint knows how to tokenize a prompt.

    Example::

        >>> v = Vocab.build(list("hello"), specials=(), level="char")
        >>> v.itos
        ['l', 'h', 'e', 'o']
        >>> v.encode("hole")
        [1, 3, 0, 2]
        >>> "".join(v.decode([1, 2, 0, 0, 3]))
        'hello'
    """

    def __init__(self, itos: Sequence[str], *, unk: str | None = UNK, level: str | None = None):
        itos = list(itos)
        for i, tok in enumerate(itos):
            if not isinstance(tok, str):
                raise VocabFileError(f"vocab: itos[{i}] is {shown(tok)}; expected a string token")
        stoi: dict[str, int] = {}
        for i, tok in enumerate(itos):
            if tok in stoi:
                raise VocabFileError(
                    f"vocab: token {shown(tok)} appears twice (ids {stoi[tok]} and {i}); "
                    "expected unique tokens"
                )
            stoi[tok] = i
        if unk is not None and unk not in stoi:
            raise VocabFileError(
                f"vocab: unk token {shown(unk)} is not among the {len(itos)} tokens"
            )
        if level is not None and level not in _LEVELS:
            raise VocabFileError(f"vocab: level={shown(level)}; expected 'char', 'word' or null")
        self.itos = itos
        self.stoi = stoi
        self.unk = unk
        self.level = level

    # ------------------------------------------------------------------ construction

    @classmethod
    def build(
        cls,
        tokens: Iterable[str],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = (UNK,),
        level: str | None = None,
    ) -> Vocab:
        """Build a vocabulary from a token stream.

        Args:
            tokens: the training tokens (e.g. ``tokenize(text, "word")``).
            min_freq: drop tokens seen fewer times than this (they become ``<unk>``).
            max_size: keep at most this many types in total, specials included
                (the most frequent win); ``None`` keeps all.
            specials: tokens placed first, in this order, whether or not they occur;
                a special that also occurs in ``tokens`` is not counted twice.
                ``"<unk>"`` among them makes it the unknown token. Use ``()`` for a
                char vocabulary, so unknown characters are an error.
            level: ``"char"`` / ``"word"`` recorded in the vocab; ``None`` infers it:
                ``"char"`` when every token is a single character and there are no
                specials, else ``"word"``.

        Returns:
            The vocabulary, ids ordered as described in the module docstring.
        """
        if not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"Vocab.build: min_freq={min_freq!r}; expected an integer >= 1")
        specials = list(specials)
        if max_size is not None and (
            not isinstance(max_size, int) or max_size < max(1, len(specials))
        ):
            raise ValueError(
                f"Vocab.build: max_size={max_size!r}; expected None or an integer >= "
                f"{max(1, len(specials))} (the number of specials)"
            )
        if level is not None and level not in _LEVELS:
            raise ValueError(f"Vocab.build: level={level!r}; expected 'char', 'word' or None")
        counts = Counter(tokens)  # insertion order = first occurrence
        first = {tok: i for i, tok in enumerate(counts)}
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_freq and t not in specials),
            key=lambda t: (-counts[t], first[t]),
        )
        itos = list(dict.fromkeys(specials)) + ranked
        if max_size is not None:
            itos = itos[:max_size]
        if level is None:
            level = "char" if not specials and all(len(t) == 1 for t in itos) else "word"
        return cls(itos, unk=UNK if UNK in specials else None, level=level)

    # ------------------------------------------------------------------ mapping

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        return (self.itos, self.unk, self.level) == (other.itos, other.unk, other.level)

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, level={self.level!r}, unk={self.unk!r})"

    @property
    def unk_id(self) -> int | None:
        """Id of the unknown token, or ``None`` when the vocab has none."""
        return None if self.unk is None else self.stoi[self.unk]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Map tokens to ids; a string is encoded character by character.

        Raises:
            OutOfVocabularyError: a token is not in the vocabulary and the vocabulary
                has no ``<unk>``; the message names the token (repr) and its position.
        """
        stoi, unk_id = self.stoi, self.unk_id
        ids: list[int] = []
        for pos, tok in enumerate(tokens):
            i = stoi.get(tok)
            if i is None:
                if unk_id is None:
                    kind = f"{self.level} " if self.level else ""
                    raise OutOfVocabularyError(
                        f"token {shown(tok)} at position {pos} is outside the vocabulary "
                        f"({len(self)} {kind}types, no {UNK}); expected one of the training tokens",
                        tok,
                        pos,
                    )
                i = unk_id
            ids.append(i)
        return ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Map ids (ints or a 1-D tensor) back to tokens.

        Raises:
            ValueError: an id outside ``[0, len(self))``.
        """
        out: list[str] = []
        n = len(self.itos)
        for pos, i in enumerate(ids):
            i = int(i)
            if not 0 <= i < n:
                raise ValueError(
                    f"decode: id {i} at position {pos} is out of range; expected 0..{n - 1}"
                )
            out.append(self.itos[i])
        return out

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``{"format", "version", "level", "unk", "itos"}``."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "level": self.level,
            "unk": self.unk,
            "itos": list(self.itos),
        }

    @classmethod
    def from_dict(cls, d: Any, *, source: str = "vocab") -> Vocab:
        """Inverse of :meth:`to_dict`; ``source`` names the origin in error messages.

        Raises:
            VocabFileError: not a dict, missing/ill-typed ``itos``, bad ``unk`` or
                ``level``, duplicate tokens.
        """
        if not isinstance(d, dict):
            raise VocabFileError(
                f"{source}: expected a JSON object with an 'itos' list, got {type(d).__name__}"
            )
        if d.get("format", _FORMAT) != _FORMAT:
            raise VocabFileError(f"{source}: format={shown(d.get('format'))}; expected {_FORMAT!r}")
        itos = d.get("itos")
        if not isinstance(itos, list) or not itos:
            raise VocabFileError(f"{source}: 'itos' must be a non-empty list of strings")
        unk = d.get("unk")
        if unk is not None and not isinstance(unk, str):
            raise VocabFileError(f"{source}: 'unk' must be a string or null, got {shown(unk)}")
        try:
            return cls(itos, unk=unk, level=d.get("level"))
        except VocabFileError as e:
            raise VocabFileError(f"{source}: {str(e).removeprefix('vocab: ')}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocab as JSON, atomically (a temp file renamed into place)."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.to_dict(), f, ensure_ascii=False, indent=0)
                f.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocab:
        """Read a vocab written by :meth:`save`.

        Raises:
            FileNotFoundError: the file does not exist.
            VocabFileError: the file is not UTF-8 JSON or not a valid vocabulary.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such vocabulary file")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as e:
            raise VocabFileError(
                f"{path}: not UTF-8 ({e.reason} at byte {e.start}); expected a JSON vocabulary"
            ) from None
        except json.JSONDecodeError as e:
            raise VocabFileError(
                f"{path}:{e.lineno}:{e.colno}: invalid JSON ({e.msg}); expected a vocabulary"
            ) from None
        except (ValueError, RecursionError) as e:  # an integer of over 4300 digits; deep nesting
            raise VocabFileError(
                f"{path}: invalid JSON ({str(e)[:120] or 'nested too deeply'}); "
                "expected a vocabulary"
            ) from None
        return cls.from_dict(d, source=str(path))
