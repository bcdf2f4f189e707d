"""Language-modeling data: corpus -> ids -> parallel streams -> truncated-BPTT batches.

The standard recipe (Zaremba et al. 2014; pytorch/examples ``word_language_model``;
Merity et al. 2017, AWD-LSTM)::

    corpus = load_corpus("ptb")                       # vocab + 1-D LongTensor per split
    data = batchify(corpus.splits["train"], 20)       # (N // B, B): B streams, time-major
    for x, y in BPTTBatches(data, bptt=35):           # (T, B) each, y[t] = x[t + 1]
        ...                                           # carry the hidden state, detached

``batchify`` cuts the token stream into ``B`` contiguous streams laid side by side,
so column ``b`` of consecutive batches continues the same text and the recurrent
state can be carried from one batch to the next. Shape legend: ``N`` tokens,
``B`` batch (streams), ``T`` time steps of one batch, ``L = N // B`` stream length.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rnnkit.data.registry import KNOWN, resolve_corpus
from rnnkit.data.text import read_text, split_text, tokenize
from rnnkit.data.vocab import UNK, OutOfVocabularyError, Vocab

__all__ = ["batchify", "BPTTBatches", "LMCorpus", "load_corpus"]


# ----------------------------------------------------------------------------- streams


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Lay a token stream out as ``B`` parallel streams, time-major.

    ``out[t, b] = ids[b * L + t]`` with ``L = N // B``; the trailing ``N mod B``
    tokens are dropped (as in Zaremba et al. and pytorch/examples).

    Args:
        ids: ``(N,)`` integer tensor of token ids.
        batch_size: number of streams ``B``.

    Returns:
        ``(L, B)`` tensor (contiguous, same dtype and device as ``ids``).

    Example::

        >>> batchify(torch.arange(7), 2)
        tensor([[0, 3],
                [1, 4],
                [2, 5]])
    """
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1:
        shape = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"batchify: ids has shape {shape}; expected a 1-D tensor of token ids")
    if ids.is_floating_point() or ids.is_complex():
        raise ValueError(f"batchify: ids has dtype {ids.dtype}; expected an integer tensor")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batchify: batch_size={batch_size!r}; expected an integer >= 1")
    L = ids.numel() // batch_size
    if L == 0:
        raise ValueError(f"batchify: {ids.numel()} tokens is fewer than batch_size={batch_size}")
    return ids[: L * batch_size].view(batch_size, L).t().contiguous()  # (B, L) -> (L, B)


# ----------------------------------------------------------------------------- BPTT batches


class BPTTBatches:
    """Truncated-BPTT batches over batchified streams.

    Batch ``k`` of an epoch starts at row ``s_k`` and spans ``T_k`` rows::

        x = data[s_k : s_k + T_k],  y = data[s_k + 1 : s_k + 1 + T_k]      (T_k, B) each

    with ``s_0 = 0`` and ``s_{k+1} = s_k + T_k``, until all ``L - 1`` targets are
    used, so every row of ``data`` except the first is a target exactly once per
    epoch (and every row but the last an input exactly once).

    Fixed (``variable=False``): ``T_k = min(bptt, L - 1 - s_k)``.

    Variable (AWD-LSTM, Merity et al. 2017): ``b = bptt`` with probability
    ``p_full`` (0.95) else ``bptt / 2``; ``T_k = clip(int(N(b, std^2)), min_len,
    max_len)`` with ``std = 5``, ``min_len = 5``, ``max_len = bptt + 20``, and the last
    batch truncated at the end of the data. The draws come from a generator seeded
    by ``(seed, epoch)`` only (Python's ``random.Random.random`` via Box-Muller,
    stable across versions), so an epoch's schedule is the same in every run and on
    every rank of a distributed job. Scale the learning rate by ``T_k / bptt`` as
    AWD-LSTM does if wanted (``T_k = x.size(0)``).

    Resuming: ``start_step=k`` skips the first ``k`` batches of the epoch, so a run
    resumed at batch ``k`` sees exactly the remaining batches of the uninterrupted
    run. The constructor's ``start_step`` applies to the first ``iter(...)`` only
    (later epochs start at 0); ``iter_epoch(epoch, start_step)`` is explicit.

    Args:
        data: ``(L, B)`` ids from :func:`batchify` (``L >= 2``).
        bptt: the (mean) number of time steps per batch.
        variable: draw the sequence lengths as above.
        seed: non-negative integer seed of the variable schedule.
        epoch: epoch used by ``iter(self)`` and ``len(self)``; see :meth:`set_epoch`.
        start_step: batches to skip in the first iteration.
        p_full, std, min_len, max_len: the variable-length constants above.

    Example::

        >>> data = batchify(torch.arange(26), 2)          # (13, 2)
        >>> batches = BPTTBatches(data, bptt=4)
        >>> len(batches), [x.shape[0] for x, _ in batches]
        (3, [4, 4, 4])
    """

    def __init__(
        self,
        data: torch.Tensor,
        bptt: int,
        *,
        variable: bool = False,
        seed: int = 0,
        epoch: int = 0,
        start_step: int = 0,
        p_full: float = 0.95,
        std: float = 5.0,
        min_len: int = 5,
        max_len: int | None = None,
    ):
        if not isinstance(data, torch.Tensor) or data.dim() != 2 or data.size(0) < 2:
            shape = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
            raise ValueError(
                f"BPTTBatches: data has shape {shape}; expected (L, B) from batchify with L >= 2"
            )
        for name, v, lo in (
            ("bptt", bptt, 1),
            ("seed", seed, 0),
            ("epoch", epoch, 0),
            ("start_step", start_step, 0),
            ("min_len", min_len, 1),
        ):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"BPTTBatches: {name}={v!r}; expected an integer >= {lo}")
        max_len = bptt + 20 if max_len is None else max_len
        if not isinstance(max_len, int) or max_len < min_len:
            raise ValueError(
                f"BPTTBatches: max_len={max_len!r}; expected an integer >= min_len={min_len}"
            )
        if not 0.0 <= p_full <= 1.0 or std < 0:
            raise ValueError(
                f"BPTTBatches: p_full={p_full!r}, std={std!r}; expected p_full in [0, 1], std >= 0"
            )
        self.data = data
        self.bptt = bptt
        self.variable = bool(variable)
        self.seed = seed
        self.epoch = epoch
        self.start_step = start_step
        self.p_full, self.std, self.min_len, self.max_len = (
            float(p_full),
            float(std),
            min_len,
            max_len,
        )
        self._cache: tuple[int, list[tuple[int, int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose schedule ``iter(self)`` and ``len(self)`` use."""
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"BPTTBatches.set_epoch: epoch={epoch!r}; expected an integer >= 0")
        self.epoch = epoch

    def schedule(self, epoch: int | None = None) -> list[tuple[int, int]]:
        """``[(s_k, T_k), ...]``: start row and length of every batch of ``epoch``."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        n = self.data.size(0) - 1  # number of target rows
        out: list[tuple[int, int]] = []
        if not self.variable:
            out = [(s, min(self.bptt, n - s)) for s in range(0, n, self.bptt)]
        else:
            rng = random.Random(f"rnnkit.BPTTBatches:{self.seed}:{epoch}")
            s = 0
            while s < n:
                base = self.bptt if rng.random() < self.p_full else self.bptt / 2
                # Box-Muller from random(), whose stream Python keeps stable across versions
                z = math.sqrt(-2.0 * math.log(1.0 - rng.random())) * math.cos(
                    2.0 * math.pi * rng.random()
                )
                T = min(max(self.min_len, int(base + self.std * z)), self.max_len, n - s)
                out.append((s, T))
                s += T
        self._cache = (epoch, out)
        return out

    def num_batches(self, epoch: int | None = None) -> int:
        """Batches in a full epoch (depends on the epoch when ``variable``)."""
        return len(self.schedule(epoch))

    def __len__(self) -> int:
        return self.num_batches(self.epoch)

    def iter_epoch(
        self, epoch: int | None = None, start_step: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)``, each ``(T_k, B)`` views of ``data``, for batches ``start_step..``
        of ``epoch``."""
        sched = self.schedule(epoch)
        if not isinstance(start_step, int) or not 0 <= start_step <= len(sched):
            raise ValueError(
                f"BPTTBatches: start_step={start_step!r}; expected an integer in 0..{len(sched)} "
                "(the batches of this epoch)"
            )
        data = self.data
        for s, T in sched[start_step:]:
            yield data[s : s + T], data[s + 1 : s + 1 + T]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        start, self.start_step = self.start_step, 0
        return self.iter_epoch(self.epoch, start)


# ----------------------------------------------------------------------------- corpus


@dataclass
class LMCorpus:
    """A tokenized corpus ready for :func:`batchify`.

    Attributes:
        vocab: the vocabulary (built on the training split, or given).
        level: ``"char"`` or ``"word"``.
        splits: split name -> ``(N,)`` LongTensor of ids.
        files: split name -> the file it was read from.
    """

    vocab: Vocab
    level: str
    splits: dict[str, torch.Tensor]
    files: dict[str, Path] = field(default_factory=dict)


def load_corpus(
    source: str | os.PathLike,
    *,
    level: str | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    valid_fraction: float | None = None,
    test_fraction: float = 0.0,
    vocab: Vocab | None = None,
    min_freq: int = 1,
    max_size: int | None = None,
) -> LMCorpus:
    """Resolve, read, split, tokenize and encode a language-modeling corpus.

    Args:
        source: a known corpus name, a text file or a directory (see
            :func:`~rnnkit.data.registry.resolve_corpus`).
        level: ``"char"`` or ``"word"``; default: the known corpus's level, else ``"char"``.
        data_dir, download: passed to :func:`~rnnkit.data.registry.resolve_corpus`.
        valid_fraction, test_fraction: when the source has only a train file, split
            it chronologically (:func:`~rnnkit.data.text.split_text`, at line
            boundaries for words); default ``valid_fraction``: the known corpus's
            (tinyshakespeare 0.1), else 0.1. Ignored when the source has a valid file;
            ``test_fraction`` is ignored when it has a test file (that file is the test split).
        vocab: use this vocabulary (e.g. a checkpoint's) instead of building one.
        min_freq, max_size: passed to :meth:`Vocab.build` for word level.

    The built vocabulary is: char level, every character of all splits with no
    ``<unk>`` (so a prompt character never seen is a clear error); word level, the
    training tokens plus ``<unk>`` (PTB: 10,000 types, WikiText-2: 33,278).

    Raises:
        ValueError: bad ``level``; a fraction outside [0, 1) (also when the source has
            its own valid/test file); a token outside a given vocabulary without
            ``<unk>`` (names the file and line); errors of the readers.
    """
    name = os.fspath(source)
    known = KNOWN.get(name)
    level = level or (known.level if known else "char")
    if level not in ("char", "word"):
        raise ValueError(f"load_corpus: level={level!r}; expected 'char' or 'word'")
    # checked whether or not a split is cut: -0.1 must not read as "no validation split"
    for key, frac in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if frac is None and key == "valid_fraction":
            continue
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0.0 <= frac < 1.0:
            raise ValueError(f"load_corpus: {key}={frac!r}; expected a number in [0, 1)")
    files = resolve_corpus(name, data_dir=data_dir, download=download)
    texts = {split: read_text(path) for split, path in files.items()}
    if "valid" not in texts:
        vf = (
            valid_fraction
            if valid_fraction is not None
            else (known.valid_fraction if known else 0.1)
        )
        test_file = "test" in texts  # a test file is the test split: only valid is cut
        tf = 0.0 if test_file else test_fraction
        if vf > 0 or tf > 0:
            by = "char" if level == "char" else "line"
            parts = split_text(texts["train"], vf, tf, by=by)
            cut = {split: files["train"] for split in parts}
            if test_file:
                parts["test"], cut["test"] = texts["test"], files["test"]
            texts, files = parts, cut
    tokens = {split: tokenize(text, level) for split, text in texts.items()}
    if vocab is None:
        if level == "char":
            vocab = Vocab.build(
                (t for toks in tokens.values() for t in toks), specials=(), level="char"
            )
        else:
            vocab = Vocab.build(
                tokens["train"], specials=(UNK,), min_freq=min_freq, max_size=max_size, level="word"
            )
    splits = {}
    for split, toks in tokens.items():
        try:
            ids = vocab.encode(toks)
        except OutOfVocabularyError as e:
            line = _line_of(toks, e.position, level)
            raise ValueError(f"{files[split]} ({split} split, line {line}): {e}") from None
        splits[split] = torch.tensor(ids, dtype=torch.long)
    return LMCorpus(vocab=vocab, level=level, splits=splits, files=dict(files))


def _line_of(tokens: list[str], position: int, level: str) -> int:
    """1-based line (within the split) of token ``position``."""
    sep = "\n" if level == "char" else "<eos>"
    return sum(1 for t in tokens[:position] if t == sep) + 1
