"""Sequence tagger: word embeddings + character features -> BiRNN -> softmax or CRF.

For a sentence of ``n`` tokens ``w_1..w_n`` (Lample et al. 2016; Plank et al. 2016)::

    c_t     = CharBiRNN(chars of w_t)               [h_fwd at the last char; h_bwd at the first]
            | max_k tanh(conv1d(chars of w_t))_k    (char CNN, Ma & Hovy 2016)
    x_t     = [E_word[lower(w_t)] ; c_t]            the word table is lowercased, chars keep case
    h_t     = BiRNN(dropout(x_1..x_n))_t            any rnnkit cell, run with lengths
    e_t     = W dropout(h_t) + b                    (B, T, K) emissions
    softmax: p(y_t | x) = softmax(e_t)              loss = -sum_t log p(y_t | x)
    CRF:     p(y | x) = exp s(y) / Z                loss = -log p(y | x); Viterbi decoding
                                                    (see :mod:`rnnkit.models.crf`)

Character features are computed once per distinct token of a batch (``U`` of them) and
gathered back, which saves most of the character work. Padded tokens and characters are
masked everywhere, so a sentence's emissions and scores do not depend on the other
sentences of its batch or on how much it is padded (in evaluation mode).

Shapes: ``B`` sentences, ``T`` tokens, ``U`` distinct tokens, ``C`` characters per token,
``H`` hidden, ``D`` directions, ``K`` tags.

Example::

    cfg = TaggerConfig(word_dim=32, char_hidden=16, hidden_size=32)
    model = Tagger(cfg, num_words=1000, num_chars=80, num_tags=17)
    batch = TagBatch(words, lengths, chars, char_lengths, token_index, tags)
    loss, n = model.loss(batch)            # summed over the n real tokens
    paths = model.decode(batch)            # [[tag ids], ...] one list per sentence
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.models.crf import CRF

__all__ = ["TaggerConfig", "TagBatch", "CharEncoder", "Tagger"]


@dataclass
class TaggerConfig:
    """Hyperparameters of :class:`Tagger` (the ``model:`` section of a tagging recipe).

    Attributes:
        word_dim: word embedding size (0: no word embeddings, characters only).
        char_encoder: "lstm" (character BiRNN), "cnn" (convolution + max-pool) or "none".
        char_cell: the character BiRNN's cell (``build_layer`` name).
        char_dim: character embedding size.
        char_hidden: per-direction hidden size of the character BiRNN, or CNN filters.
        char_kernel: CNN width in characters (odd).
        cell: the sentence BiRNN's cell ("lstm", "gru", "sru", ...), or a block, "griffin",
            "mamba", "xlstm" or "deep_lru" (:func:`rnnkit.models.sequence.build_sequence_layer`).
        hidden_size: H of the sentence BiRNN, per direction.
        num_layers: stacked sentence layers.
        bidirectional: run the sentence layer both ways.
        dropout: on the token inputs, between layers and before the output layer.
        output: "softmax" (independent tags) or "crf" (linear-chain CRF, Viterbi).
        extras: extra keyword arguments for the sentence layer's build_layer.
    """

    word_dim: int = 100
    char_encoder: Literal["lstm", "cnn", "none"] = "lstm"
    char_cell: str = "lstm"
    char_dim: int = 50
    char_hidden: int = 50
    char_kernel: int = 3
    cell: str = "lstm"
    hidden_size: int = 200
    num_layers: int = 2
    bidirectional: bool = True
    dropout: float = 0.33
    output: Literal["softmax", "crf"] = "softmax"
    extras: dict[str, Any] = field(default_factory=dict)


class TagBatch(NamedTuple):
    """A padded batch of sentences (id 0 is padding in ``words`` and ``chars``).

    Attributes:
        words: (B, T) word ids.
        lengths: (B,) tokens per sentence, each >= 1.
        chars: (U, C) character ids of the batch's distinct tokens.
        char_lengths: (U,) characters per distinct token, each >= 1.
        token_index: (B, T) row of ``chars`` for each token (any value on padding).
        tags: (B, T) gold tag ids (any value on padding), or None.
    """

    words: Tensor
    lengths: Tensor
    chars: Tensor
    char_lengths: Tensor
    token_index: Tensor
    tags: Tensor | None = None

    def to(self, device) -> TagBatch:
        return TagBatch(*(None if t is None else t.to(device) for t in self))


def _mask(lengths: Tensor, T: int) -> Tensor:
    """(B,) -> (B, T) bool, True on real steps."""
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


class CharEncoder(nn.Module):
    """One vector per token from its characters: a BiRNN's final states or a max-pooled CNN.

    Forward: ``chars (U, C)``, ``char_lengths (U,)`` -> ``(U, out_dim)``.
    """

    def __init__(self, kind: Literal["lstm", "cnn"], num_chars: int, dim: int, hidden: int,
                 kernel: int = 3, cell: str = "lstm"):
        super().__init__()
        if kind not in ("lstm", "cnn"):
            raise ValueError(f"model.char_encoder={kind!r}; expected 'lstm', 'cnn' or 'none'")
        if kind == "cnn" and (kernel < 1 or kernel % 2 == 0):
            raise ValueError(f"model.char_kernel={kernel}; expected a positive odd number")
        self.kind = kind
        self.embed = nn.Embedding(num_chars, dim, padding_idx=0)
        if kind == "lstm":
            from rnnkit.layers import build_layer

            self.rnn = build_layer(cell, dim, hidden, bidirectional=True, batch_first=True)
            self.out_dim = 2 * hidden
        else:
            self.conv = nn.Conv1d(dim, hidden, kernel, padding=kernel // 2)
            self.out_dim = hidden

    def forward(self, chars: Tensor, char_lengths: Tensor) -> Tensor:
        x = self.embed(chars)  # (U, C, E); padding rows are zero
        if self.kind == "lstm":
            _, h_n = self.rnn(x, lengths=char_lengths.cpu())
            h = h_n[0] if isinstance(h_n, tuple) else h_n  # (2, U, H): forward, backward
            return torch.cat([h[-2], h[-1]], dim=-1)  # (U, 2H)
        y = torch.tanh(self.conv(x.transpose(1, 2)))  # (U, F, C), channels first
        pad = ~_mask(char_lengths, chars.shape[1])  # (U, C)
        return y.masked_fill(pad[:, None, :], float("-inf")).amax(-1)  # (U, F)


class Tagger(nn.Module):
    """The tagger of the module docstring.

    Args:
        config: :class:`TaggerConfig`.
        num_words / num_chars: vocabulary sizes (id 0 is padding in both).
        num_tags: K.
    """

    def __init__(self, config: TaggerConfig, num_words: int, num_chars: int, num_tags: int):
        super().__init__()
        c = config
        if not 0.0 <= c.dropout < 1.0:
            raise ValueError(f"model.dropout={c.dropout}; expected a probability in [0, 1)")
        if c.word_dim < 0 or c.hidden_size < 1 or c.num_layers < 1:
            raise ValueError(
                "model.word_dim >= 0, model.hidden_size >= 1 and model.num_layers >= 1 "
                f"expected, got {c.word_dim}, {c.hidden_size}, {c.num_layers}"
            )
        if c.word_dim == 0 and c.char_encoder == "none":
            raise ValueError("model: word_dim=0 and char_encoder='none' leave no token features")
        if num_tags < 1:
            raise ValueError(f"num_tags={num_tags}; expected at least 1 tag")
        from .sequence import build_sequence_layer

        self.config = c
        self.num_tags = num_tags
        self.word_embed = nn.Embedding(num_words, c.word_dim, padding_idx=0) if c.word_dim else None
        self.chars = None if c.char_encoder == "none" else CharEncoder(
            c.char_encoder, num_chars, c.char_dim, c.char_hidden, c.char_kernel, c.char_cell)
        width = c.word_dim + (self.chars.out_dim if self.chars is not None else 0)
        self.rnn = build_sequence_layer(c.cell, width, c.hidden_size, num_layers=c.num_layers,
                                        dropout=c.dropout, bidirectional=c.bidirectional,
                                        batch_first=True, **c.extras)
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear((2 if c.bidirectional else 1) * c.hidden_size, num_tags)
        self.crf = CRF(num_tags) if c.output == "crf" else None

    def features(self, b: TagBatch) -> Tensor:
        """Token inputs ``x_t`` (B, T, word_dim + char features)."""
        parts = []
        if self.word_embed is not None:
            parts.append(self.word_embed(b.words))  # (B, T, Ew)
        if self.chars is not None:
            per_type = self.chars(b.chars, b.char_lengths)  # (U, Fc)
            parts.append(per_type[b.token_index])  # (B, T, Fc)
        return torch.cat(parts, dim=-1)

    def forward(self, b: TagBatch) -> Tensor:
        """Emissions (B, T, K); zero on padded steps."""
        B, T = b.words.shape
        mask = _mask(b.lengths.to(b.words.device), T)  # (B, T)
        x = self.drop(self.features(b)) * mask[..., None]
        h, _ = self.rnn(x, lengths=b.lengths.cpu())  # (B, T, D*H), zeros on padding
        return self.head(self.drop(h)) * mask[..., None]

    def loss(self, b: TagBatch, emissions: Tensor | None = None) -> tuple[Tensor, int]:
        """``(summed negative log-likelihood, number of real tokens)``; ``emissions`` are
        ``self(b)`` when already computed (e.g. through a distributed wrapper's forward)."""
        if b.tags is None:
            raise ValueError("Tagger.loss: the batch has no tags")
        e = (self(b) if emissions is None else emissions).float()  # (B, T, K)
        mask = _mask(b.lengths.to(e.device), e.shape[1])
        n = int(mask.sum())
        if self.crf is not None:
            return self.crf(e, b.tags, mask, reduction="sum"), n
        return F.cross_entropy(e[mask], b.tags[mask], reduction="sum"), n

    @torch.no_grad()
    def decode(self, b: TagBatch) -> list[list[int]]:
        """Best tag ids per sentence: Viterbi with a CRF, else the per-token argmax."""
        e = self(b).float()
        mask = _mask(b.lengths.to(e.device), e.shape[1])
        if self.crf is not None:
            return self.crf.decode(e, mask)
        best = e.argmax(-1).tolist()
        return [row[:n] for row, n in zip(best, b.lengths.tolist())]
