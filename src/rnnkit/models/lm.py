"""Recurrent language model: embedding -> recurrent layer -> dropout -> decoder.

For a token sequence ``x_1..x_T`` the model computes::

    e_t      = dropout_in(E[x_t])         (embedding; rows of E can be dropped whole)
    h_t, s_t = RNN(e_t, s_{t-1})          (any rnnkit cell, stacked, or a stack of Griffin's
                                           or Mamba's blocks; the state s carried)
    logits_t = W_dec dropout(h_t) + b     (W_dec = E when weights are tied)
    p(x_{t+1} | x_<=t) = softmax(logits_t)

Shapes: ``T`` time, ``B`` batch, ``V`` vocabulary, ``E`` embedding size, ``H`` hidden size,
``L`` layers.  Input and output are time-major: ``(T, B)`` ids -> ``(T, B, V)`` logits.

Embedding dropout (Gal & Ghahramani 2016; Merity et al. 2017, AWD-LSTM) zeroes whole rows
of ``E`` for a batch, so every occurrence of a dropped word is dropped, and scales the rest
by ``1/(1-p)``.  Weight tying (Press & Wolf 2017; Inan et al. 2017) shares ``E`` with the
decoder, which needs ``H == E``.

The model owns no training arguments: it maps a batch (and an optional state) to outputs.

Example::

    cfg = LMConfig(cell="lstm", embedding_size=64, hidden_size=64, num_layers=2, tie_weights=True)
    lm = LanguageModel(cfg, vocab_size=65)
    logits, state = lm(torch.randint(0, 65, (35, 8)))      # (35, 8, 65)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import BLOCKS
from .sequence import build_sequence_layer

__all__ = ["LMConfig", "LanguageModel", "detach_state"]


@dataclass
class LMConfig:
    """Hyperparameters of :class:`LanguageModel` (the ``model:`` section of an LM recipe).

    Attributes:
        cell: recurrent cell for :func:`rnnkit.layers.build_layer` ("lstm", "gru", ...), or
            a block, "griffin", "mamba", "xlstm" or "deep_lru": a
            :class:`rnnkit.models.blocks.BlockStack` of
            ``num_layers`` blocks with ``d_model = hidden_size`` (``extras`` go to each
            block, e.g. ``expand``, ``state_size``; ``dropout`` is each block's residual
            dropout, and ``init_range`` is refused: the blocks keep their own init).
        embedding_size: E.
        hidden_size: H of every recurrent layer.
        num_layers: L stacked layers.
        dropout: between recurrent layers and on the last layer's output.
        input_dropout: on the embedded input of the first layer (Zaremba et al.'s dropout on
            every non-recurrent connection is ``dropout = input_dropout = p``).
        embedding_dropout: probability of dropping a whole embedding row (word) per batch.
        tie_weights: share the embedding matrix with the decoder (needs H == E).
        init_range: if set, every parameter is drawn from U(-r, r) (Zaremba et al. use 0.1).
        extras: extra keyword arguments for build_layer (e.g. backend, zoneout).
    """

    cell: str = "lstm"
    embedding_size: int = 128
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.0
    input_dropout: float = 0.0
    embedding_dropout: float = 0.0
    tie_weights: bool = False
    init_range: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def detach_state(state: Any) -> Any:
    """Cut the autograd history of a (nested tuple of) state tensor(s): truncated BPTT."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return tuple(detach_state(s) for s in state)


class LanguageModel(nn.Module):
    """Embedding, a stacked recurrent layer and a (possibly tied) linear decoder.

    Args:
        config: :class:`LMConfig`.
        vocab_size: V.

    Forward:
        tokens: ``(T, B)`` int64 ids.
        state: the layer's ``h_0`` (LSTM: ``(h, c)``, each ``(L, B, H)``) or None for zeros.

    Returns:
        ``(logits (T, B, V), h_n)``.
    """

    def __init__(self, config: LMConfig, vocab_size: int):
        super().__init__()
        c = config
        for name in ("embedding_size", "hidden_size", "num_layers"):
            if getattr(c, name) < 1:
                raise ValueError(f"model.{name}={getattr(c, name)}; expected a positive integer")
        for name in ("dropout", "input_dropout", "embedding_dropout"):
            if not 0.0 <= getattr(c, name) < 1.0:
                raise ValueError(
                    f"model.{name}={getattr(c, name)}; expected a probability in [0, 1)"
                )
        if vocab_size < 1:
            raise ValueError(f"vocab_size={vocab_size}; expected a positive integer")
        if c.tie_weights and c.hidden_size != c.embedding_size:
            raise ValueError(
                f"model.tie_weights needs the recurrent output size (hidden_size={c.hidden_size}) "
                f"to equal embedding_size={c.embedding_size}"
            )
        if c.init_range is not None and c.cell in BLOCKS:
            raise ValueError(f"model.init_range={c.init_range} with model.cell={c.cell!r}: the "
                             "blocks keep their own initialisation (RMSNorm weights 1, the "
                             "recurrence's decay and step sizes), which U(-r, r) would overwrite;"
                             " unset init_range")
        if c.extras.get("bidirectional"):
            raise ValueError("model.extras.bidirectional: a language model must be unidirectional "
                             "(the backward direction would see the tokens it predicts)")
        self.config = c
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, c.embedding_size)
        self.rnn = build_sequence_layer(c.cell, c.embedding_size, c.hidden_size,
                                        num_layers=c.num_layers, dropout=c.dropout, **c.extras)
        self.drop = nn.Dropout(c.dropout)
        self.drop_in = nn.Dropout(c.input_dropout)
        self.decoder = nn.Linear(c.hidden_size, vocab_size)
        if c.tie_weights:
            self.decoder.weight = self.embedding.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-r, r) for every parameter when ``init_range`` is set; else the layer defaults
        with U(-0.1, 0.1) embedding and a zero decoder bias (as in pytorch/examples)."""
        r = self.config.init_range
        if r is not None:
            for p in self.parameters():
                nn.init.uniform_(p, -r, r)
            return
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        if not self.config.tie_weights:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def _embed(self, tokens: Tensor) -> Tensor:
        w = self.embedding.weight  # (V, E)
        p = self.config.embedding_dropout
        if self.training and p > 0:
            mask = w.new_empty((w.size(0), 1)).bernoulli_(1 - p) / (1 - p)  # (V, 1): whole rows
            w = w * mask
        return F.embedding(tokens, w)  # (T, B, E)

    def forward(self, tokens: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        if tokens.dim() != 2:
            raise ValueError(
                f"LanguageModel expects (T, B) token ids, got shape {tuple(tokens.shape)}"
            )
        x = self.drop_in(self._embed(tokens))  # (T, B, E)
        out, state = self.rnn(x, state)  # (T, B, H)
        logits = self.decoder(self.drop(out))  # (T, B, V)
        return logits, state
