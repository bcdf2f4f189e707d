"""Subword and word tokenizers (HuggingFace ``tokenizers``) and length-bucketed batches.

The NLP pipelines (classification, tagging, translation) share one tokenizer type::

    tok = train_tokenizer(texts, kind="word", vocab_size=25_000, lowercase=True, min_freq=2)
    ids = tok.encode("A wonderful film.")            # [id, ...], no specials added
    ids = tok.encode("Ein Hund.", add_bos=True, add_eos=True, max_length=50)
    tok.decode(ids)                                  # "a wonderful film." (specials skipped)
    tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id   # 0, 1, 2, 3
    tok.save("tokenizer.json"); tok = TextTokenizer.load("tokenizer.json")
    batches = length_buckets([len(x) for x in data], 32, shuffle=True, seed=epoch)

API (stable; other modules import it):

- :func:`train_tokenizer` ``(texts, kind="word"|"bpe"|"wordpiece", vocab_size=30_000,
  lowercase=False, min_freq=1, *, reversible=True) -> TextTokenizer``, trained on ``texts``
  (an iterable of strings, typically the training split only).
- :class:`TextTokenizer`: ``encode(text, *, add_bos=False, add_eos=False, max_length=None)``,
  ``encode_batch(texts, ...)``, ``decode(ids)`` (detokenised, special tokens skipped),
  ``decode_batch``, ``token_to_id``, ``id_to_token``, ``tokenize`` (the token strings),
  ``pad_id / unk_id / bos_id / eos_id``, ``vocab_size``, ``kind``, ``lowercase``,
  ``save(path)`` / ``TextTokenizer.load(path)`` (the ``tokenizers`` JSON, loadable by
  ``tokenizers.Tokenizer.from_file`` too; never pickled).
- :func:`length_buckets` ``(lengths, batch_size, *, shuffle, seed=0, bucket_factor=50)
  -> list[list[int]]``: index batches of similar lengths.

Specials are ``<pad>`` = 0, ``<unk>`` = 1, ``<bos>`` = 2, ``<eos>`` = 3 in every kind. The
pipeline: NFKC normalisation (+ lowercasing) -> pre-tokenisation -> model. With the default
``reversible=True``, ``word`` and ``bpe`` split at whitespace and punctuation while marking
a word start with ``▁`` (U+2581, SentencePiece's convention), so ``decode`` restores the
spacing exactly (``"it's (really) good."`` round-trips, modulo normalisation).
``reversible=False`` (``word`` only) splits like ``\\w+|[^\\w\\s]+`` with no markers (one
vocabulary entry per word form; ``decode`` joins tokens with spaces). ``wordpiece`` follows
BERT (``##`` continuations, approximate detokenisation).
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

__all__ = ["SPECIALS", "KINDS", "TokenizerError", "TextTokenizer", "train_tokenizer",
           "length_buckets"]

#: special tokens, in id order: pad 0, unk 1, bos 2, eos 3
SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
KINDS = ("word", "bpe", "wordpiece")


class TokenizerError(ValueError):
    """A tokenizer file or argument that cannot be used."""


def _kind_of(model_type: str) -> str:
    return {"WordLevel": "word", "BPE": "bpe", "WordPiece": "wordpiece"}.get(model_type, model_type)


class TextTokenizer:
    """A trained ``tokenizers.Tokenizer`` with rnnkit's specials and a small typed API.

    Args:
        tokenizer: a ``tokenizers.Tokenizer`` whose vocabulary holds :data:`SPECIALS`.

    Example::

        >>> tok = train_tokenizer(["a b c", "a b"], kind="word")
        >>> tok.encode("a c d")
        [4, 6, 1]
        >>> tok.decode([2, 4, 6, 3, 0])
        'a c'
    """

    def __init__(self, tokenizer):
        self._tok = tokenizer
        ids = [tokenizer.token_to_id(s) for s in SPECIALS]
        if None in ids:
            missing = [s for s, i in zip(SPECIALS, ids) if i is None]
            raise TokenizerError(f"tokenizer: special tokens {missing} are missing from the "
                                 f"vocabulary; expected all of {list(SPECIALS)}")
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = ids
        self._tok.no_padding()
        self._tok.no_truncation()
        spec = json.loads(tokenizer.to_str())
        self._kind = _kind_of(spec["model"]["type"])
        self._lowercase = "Lowercase" in json.dumps(spec.get("normalizer"))

    # ------------------------------------------------------------------ properties

    @property
    def vocab_size(self) -> int:
        """Number of ids (specials included); ids are ``0 .. vocab_size - 1``."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    @property
    def kind(self) -> str:
        """``"word"``, ``"bpe"`` or ``"wordpiece"``."""
        return self._kind

    @property
    def lowercase(self) -> bool:
        """Whether the normaliser lowercases."""
        return self._lowercase

    @property
    def backend(self):
        """The wrapped ``tokenizers.Tokenizer``."""
        return self._tok

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return (f"TextTokenizer(kind={self.kind!r}, vocab_size={self.vocab_size}, "
                f"lowercase={self.lowercase})")

    # ------------------------------------------------------------------ encode / decode

    def _finish(
        self, ids: list[int], add_bos: bool, add_eos: bool, max_length: int | None
    ) -> list[int]:
        if max_length is not None:
            keep = max_length - add_bos - add_eos
            if keep < 0:
                raise TokenizerError(f"max_length={max_length}: too short for the requested "
                                     "<bos>/<eos> tokens")
            ids = ids[:keep]
        return [self.bos_id] * add_bos + ids + [self.eos_id] * add_eos

    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False,
               max_length: int | None = None) -> list[int]:
        """Ids of ``text`` (unknown pieces -> ``unk_id``), optionally wrapped in
        ``<bos> ... <eos>`` and cut to ``max_length`` ids in all (the end is dropped)."""
        if not isinstance(text, str):
            raise TokenizerError(f"encode: expected a string, got {type(text).__name__}")
        return self._finish(self._tok.encode(text, add_special_tokens=False).ids,
                            add_bos, add_eos, max_length)

    def encode_batch(self, texts: Sequence[str], *, add_bos: bool = False, add_eos: bool = False,
                     max_length: int | None = None) -> list[list[int]]:
        """:meth:`encode` of each text (in parallel threads inside ``tokenizers``)."""
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TokenizerError(
                    f"encode_batch: texts[{i}] is {type(t).__name__}; expected a string"
                )
        encs = self._tok.encode_batch(texts, add_special_tokens=False)
        return [self._finish(e.ids, add_bos, add_eos, max_length) for e in encs]

    def tokenize(self, text: str) -> list[str]:
        """The token strings of ``text`` (for inspection)."""
        return self._tok.encode(text, add_special_tokens=False).tokens

    def decode(self, ids: Iterable[int]) -> str:
        """Detokenised text of ``ids``; specials (pad, unk, bos, eos) are skipped."""
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=True)

    def decode_batch(self, batch: Iterable[Iterable[int]]) -> list[str]:
        return self._tok.decode_batch([[int(i) for i in ids] for ids in batch],
                                      skip_special_tokens=True)

    def token_to_id(self, token: str) -> int | None:
        """Id of ``token`` (an exact vocabulary entry), or None."""
        return self._tok.token_to_id(token)

    def id_to_token(self, i: int) -> str | None:
        return self._tok.id_to_token(int(i))

    # ------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike) -> None:
        """Write the ``tokenizers`` JSON (atomically: a temporary file, then a rename)."""
        p = Path(path)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(self._tok.to_str(pretty=False), encoding="utf-8")
        os.replace(tmp, p)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TextTokenizer:
        """Read a tokenizer saved by :meth:`save`.

        Raises:
            FileNotFoundError: no such file.
            TokenizerError: the file is not a tokenizers JSON with rnnkit's specials.
        """
        from tokenizers import Tokenizer

        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such tokenizer file; expected a tokenizers JSON")
        try:
            tok = Tokenizer.from_str(p.read_text(encoding="utf-8"))
        except Exception as e:  # tokenizers raises bare Exceptions on bad JSON
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise TokenizerError(f"{p}: not a valid tokenizers JSON ({msg})") from None
        try:
            return cls(tok)
        except TokenizerError as e:
            raise TokenizerError(f"{p}: {str(e).removeprefix('tokenizer: ')}") from None


# ----------------------------------------------------------------------------- training


def _pipeline(kind: str, lowercase: bool, reversible: bool):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    norm = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
        trainer = trainers.WordPieceTrainer
    else:
        tok = Tokenizer(models.WordLevel(unk_token="<unk>") if kind == "word"
                        else models.BPE(unk_token="<unk>"))
        if reversible:
            # "▁" marks a word start, so decode can put the spaces back
            tok.pre_tokenizer = pre_tokenizers.Sequence(
                [pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()])
            tok.decoder = decoders.Metaspace()
        else:
            tok.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.WordLevelTrainer if kind == "word" else trainers.BpeTrainer
    tok.normalizer = normalizers.Sequence(norm)
    return tok, trainer


def train_tokenizer(texts: Iterable[str], kind: str = "word", vocab_size: int = 30_000,
                    lowercase: bool = False, min_freq: int = 1, *,
                    reversible: bool = True) -> TextTokenizer:
    """Train a tokenizer on ``texts`` (use the training split only).

    Args:
        texts: the training texts (any iterable of strings; read once).
        kind: ``"word"`` (a word-level vocabulary of the most frequent words),
            ``"bpe"`` (byte-pair merges over characters) or ``"wordpiece"``.
        vocab_size: at most this many ids, the 4 specials included.
        lowercase: lowercase before tokenising (also at encode time).
        min_freq: drop words (``word``) or merges (``bpe``/``wordpiece``) seen fewer times.
        reversible: see the module docstring (only ``word`` may set False).

    Returns:
        a :class:`TextTokenizer`.
    """
    if kind not in KINDS:
        raise TokenizerError(f"kind={kind!r}; expected one of {', '.join(KINDS)}")
    if not isinstance(vocab_size, int) or vocab_size <= len(SPECIALS):
        raise TokenizerError(f"vocab_size={vocab_size}; expected an integer > {len(SPECIALS)}")
    if not isinstance(min_freq, int) or min_freq < 1:
        raise TokenizerError(f"min_freq={min_freq}; expected an integer >= 1")
    if not reversible and kind != "word":
        raise TokenizerError(f"reversible=False is only available for kind='word', not {kind!r}")
    tok, trainer_cls = _pipeline(kind, lowercase, reversible)
    trainer = trainer_cls(vocab_size=vocab_size, min_frequency=min_freq,
                          special_tokens=list(SPECIALS), show_progress=False)
    n = 0

    def counted():
        nonlocal n
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TokenizerError(f"train_tokenizer: texts[{i}] is {type(t).__name__}; "
                                     "expected a string")
            n += 1
            yield t

    tok.train_from_iterator(counted(), trainer)
    if n == 0:
        raise TokenizerError("train_tokenizer: no texts to train on")
    return TextTokenizer(tok)


# ----------------------------------------------------------------------------- batching


def length_buckets(lengths: Sequence[int], batch_size: int, *, shuffle: bool, seed: int = 0,
                   bucket_factor: int = 50) -> list[list[int]]:
    """Batches of indices whose items have similar lengths, so little compute goes to padding.

    With ``shuffle``: a seeded permutation is cut into pools of ``batch_size *
    bucket_factor`` items, each pool is sorted by length (stable) and cut into batches,
    and the batch order is shuffled; so batches differ between seeds (epochs) but each
    holds neighbours in length. Without ``shuffle``: all items sorted by length (stable),
    cut into batches in order (evaluation). Every index appears exactly once; only the
    last batch of a pool may be smaller than ``batch_size``.

    Args:
        lengths: length of item ``i`` (tokens).
        batch_size: items per batch (>= 1).
        shuffle: randomise (training) or not (evaluation).
        seed: the permutation's seed (e.g. ``seed * 1000 + epoch``).
        bucket_factor: batches per sorting pool; larger = less padding, less randomness.

    Returns:
        ``[[i, ...], ...]``, a list of index batches.
    """
    if batch_size < 1 or bucket_factor < 1:
        raise ValueError(f"batch_size={batch_size}, bucket_factor={bucket_factor}; "
                         "expected positive integers")
    lens = np.asarray(lengths, dtype=np.int64)
    n = len(lens)
    if not shuffle:
        order = np.argsort(lens, kind="stable")
        return [order[k:k + batch_size].tolist() for k in range(0, n, batch_size)]
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    pool = batch_size * bucket_factor
    batches = []
    for k in range(0, n, pool):
        chunk = perm[k:k + pool]
        chunk = chunk[np.argsort(lens[chunk], kind="stable")]
        batches.extend(chunk[j:j + batch_size].tolist() for j in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]
