"""Text classifier: embedding -> optional Conv1D -> bidirectional RNN -> pooling -> classifier.

For a text of ``T`` token ids ``w_1..w_T`` (padded with id 0 past its length)::

    e_t     = E[w_t]                                 (B, T, E), E[pad] = 0
    e       = SpatialDropout(e)                      training only: whole channels per text
    u^k     = relu(conv1d_k(u^{k-1})) * mask         optional, kernel K, 'same' padding (B, T, C)
    h_t     = [h_fwd_t ; h_bwd_t]                    any rnnkit cell, (B, T, D*H)
    z       = pool(h_1..h_T)                         last:  [h_fwd_len ; h_bwd_1]
                                                     max / mean / meanmax (both) over t <= len
                                                     attention: a = softmax_t(v . tanh(W h_t))
    logits  = W_out dropout(z) + b                   (B, K)

Padding never changes a text's logits: padded embeddings are zero, convolution outputs
are re-masked, and the recurrence is run with each text's own length. By default
(``flip_reverse=True``) the two directions are two one-way layers run *without* lengths,
the backward one on each text reversed within its own length (``x[b, len_b - 1 - t]``), so
that padding only ever follows the real tokens and the outputs at real positions equal a
bidirectional layer run with ``lengths`` (tested); torch's fused CPU kernel then runs with
no packing, whose backward pass is several times slower on CPU (measured in
docs/pipelines/text-classification.md). ``flip_reverse=False`` uses one bidirectional
layer with ``lengths``.

Shapes: ``B`` batch, ``T`` tokens, ``E`` embedding, ``C`` channels, ``H`` hidden, ``D``
directions, ``K`` classes.

Example::

    cfg = ClassifierConfig(cell="lstm", embedding_dim=64, hidden_size=64, pooling="meanmax")
    model = TextClassifier(cfg, vocab_size=20_000, num_classes=2)
    logits = model(torch.randint(1, 20_000, (4, 30)), torch.tensor([30, 12, 7, 1]))  # (4, 2)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .sequence import build_sequence_layer, reverse_within_lengths

__all__ = ["ClassifierConfig", "TextClassifier", "reverse_within_lengths"]


@dataclass
class ClassifierConfig:
    """Hyperparameters of :class:`TextClassifier` (the ``model:`` section of a classify recipe).

    Attributes:
        cell: recurrent cell for :func:`rnnkit.layers.build_layer` ("lstm", "gru", "sru", ...),
            or a block, "griffin", "mamba", "xlstm" or "deep_lru"
            (:func:`rnnkit.models.sequence.build_sequence_layer`: ``num_layers`` blocks per
            direction, ``dropout`` also their residual dropout).
        embedding_dim: E.
        conv_channels: output channels of each Conv1D block (empty: no front-end).
        conv_kernel: convolution width in tokens (odd).
        hidden_size: H of the recurrent layer, per direction.
        num_layers: stacked recurrent layers.
        bidirectional: run the recurrence both ways.
        embedding_dropout: spatial dropout on the embeddings (whole channels per text).
        dropout: between recurrent layers and before the classifier.
        pooling: "last", "max", "mean", "meanmax" (both, concatenated) or "attention".
        flip_reverse: run the backward direction on texts reversed within their lengths
            (fast; see the module docstring) instead of a bidirectional layer with lengths.
        freeze_embedding: keep the (pretrained) embedding fixed.
        extras: extra keyword arguments for build_layer (e.g. ``backend``, ``zoneout``), or
            the block's options (``expand``, ``state_size``, ...).
    """

    cell: str = "lstm"
    embedding_dim: int = 128
    conv_channels: list[int] = field(default_factory=list)
    conv_kernel: int = 3
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    embedding_dropout: float = 0.2
    dropout: float = 0.3
    pooling: Literal["last", "max", "mean", "meanmax", "attention"] = "meanmax"
    flip_reverse: bool = True
    freeze_embedding: bool = False
    extras: dict[str, Any] = field(default_factory=dict)


def _mask(lengths: Tensor, T: int) -> Tensor:
    """(B,) -> (B, T, 1) float, 1 on real tokens."""
    return (
        (torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(-1).float()
    )


class TextClassifier(nn.Module):
    """Embedding, optional CNN front-end, (bidirectional) RNN, masked pooling, linear head.

    Args:
        config: :class:`ClassifierConfig`.
        vocab_size: V (id 0 is padding).
        num_classes: K (logits; the task picks softmax or per-class sigmoid).

    Forward: ``ids (B, T)`` int64, ``lengths (B,)`` or None (all T) -> ``logits (B, K)``.
    """

    def __init__(self, config: ClassifierConfig, vocab_size: int, num_classes: int):
        super().__init__()
        c = config
        if c.conv_kernel < 1 or c.conv_kernel % 2 == 0:
            raise ValueError(f"model.conv_kernel={c.conv_kernel}; expected a positive odd number")
        if any(ch < 1 for ch in c.conv_channels):
            raise ValueError(f"model.conv_channels={c.conv_channels}; expected positive integers")
        for key in ("dropout", "embedding_dropout"):
            if not 0.0 <= getattr(c, key) < 1.0:
                raise ValueError(f"model.{key}={getattr(c, key)}; expected a probability in [0, 1)")
        if c.pooling not in ("last", "max", "mean", "meanmax", "attention"):
            raise ValueError(f"model.pooling={c.pooling!r}; expected last, max, mean, meanmax "
                             "or attention")
        if vocab_size < 2 or num_classes < 1:
            raise ValueError(f"vocab_size={vocab_size}, num_classes={num_classes}; expected at "
                             "least 2 ids and 1 class")
        self.config = c
        self.vocab_size, self.num_classes = vocab_size, num_classes
        self.embedding = nn.Embedding(vocab_size, c.embedding_dim, padding_idx=0)
        self.embedding.weight.requires_grad_(not c.freeze_embedding)
        chans = [c.embedding_dim, *c.conv_channels]
        self.convs = nn.ModuleList(nn.Conv1d(chans[k], chans[k + 1], c.conv_kernel,
                                             padding=c.conv_kernel // 2)
                                   for k in range(len(c.conv_channels)))
        D = 2 if c.bidirectional else 1
        self.split_directions = c.bidirectional and c.flip_reverse
        if self.split_directions and c.extras.get("attention_every"):
            raise ValueError("model.extras.attention_every: Griffin's attention levels need "
                             "model.flip_reverse: false (the flipped path builds each level "
                             "alone)")
        if self.split_directions:  # one one-way layer per direction and depth
            sizes = [chans[-1]] + [D * c.hidden_size] * (c.num_layers - 1)
            self.fwd = nn.ModuleList(
                build_sequence_layer(c.cell, n, c.hidden_size, dropout=c.dropout,
                                     batch_first=True, **c.extras)
                for n in sizes
            )
            self.bwd = nn.ModuleList(
                build_sequence_layer(c.cell, n, c.hidden_size, dropout=c.dropout,
                                     batch_first=True, **c.extras)
                for n in sizes
            )
            for layer in self.bwd:  # diagnostics label it the reverse direction
                layer.input_reversed = True
        else:
            self.rnn = build_sequence_layer(c.cell, chans[-1], c.hidden_size,
                                            num_layers=c.num_layers, dropout=c.dropout,
                                            bidirectional=c.bidirectional, batch_first=True,
                                            **c.extras)
        width = D * c.hidden_size
        if c.pooling == "attention":
            self.att = nn.Sequential(
                nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1, bias=False)
            )
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(2 * width if c.pooling == "meanmax" else width, num_classes)

    @torch.no_grad()
    def load_vectors(self, vectors: Tensor, found: Tensor) -> int:
        """Copy pretrained rows ``vectors[found]`` (V, E) into the embedding; returns how many."""
        if vectors.shape != self.embedding.weight.shape:
            raise ValueError(f"pretrained vectors have shape {tuple(vectors.shape)}; the embedding "
                             f"is {tuple(self.embedding.weight.shape)} (set model.embedding_dim)")
        found = found.clone()
        found[0] = False  # padding stays zero
        self.embedding.weight[found] = vectors[found].to(self.embedding.weight)
        return int(found.sum())

    def _recur(self, u: Tensor, lengths: Tensor) -> Tensor:  # u (B, T, C) -> (B, T, D*H)
        if not self.split_directions:
            return self.rnn(u, lengths=lengths.cpu())[0]
        for k, (f, b) in enumerate(zip(self.fwd, self.bwd)):
            if k:
                u = self.drop(u)
            h_f, _ = f(u)  # (B, T, H); past a length: garbage, never read
            h_b, _ = b(reverse_within_lengths(u, lengths))  # (B, T, H), reversed time
            u = torch.cat([h_f, reverse_within_lengths(h_b, lengths)], dim=-1)  # (B, T, 2H)
        return u

    def _pool(self, h: Tensor, lengths: Tensor) -> Tensor:  # h (B, T, DH) -> (B, DH or 2DH)
        kind = self.config.pooling
        mask = _mask(lengths, h.shape[1])  # (B, T, 1)
        if kind == "last":
            H = self.config.hidden_size
            last = h.gather(
                1, (lengths - 1).view(-1, 1, 1).expand(-1, 1, h.shape[-1])
            )[:, 0]  # (B, DH)
            return torch.cat([last[:, :H], h[:, 0, H:]], -1) if self.config.bidirectional else last
        if kind == "attention":
            score = self.att(h).masked_fill(mask == 0, float("-inf"))  # (B, T, 1)
            return (torch.softmax(score, dim=1) * h).sum(1)
        mean = (h * mask).sum(1) / lengths[:, None].to(h.dtype)  # (B, DH)
        if kind == "mean":
            return mean
        mx = h.masked_fill(mask == 0, float("-inf")).amax(1)  # (B, DH)
        return mx if kind == "max" else torch.cat([mean, mx], dim=-1)

    def forward(self, ids: Tensor, lengths: Tensor | None = None) -> Tensor:
        if ids.dim() != 2:
            raise ValueError(
                f"TextClassifier expects token ids of shape (B, T), got {tuple(ids.shape)}"
            )
        B, T = ids.shape
        lengths = (
            torch.full((B,), T, device=ids.device) if lengths is None else lengths.to(ids.device)
        )
        mask = _mask(lengths, T)  # (B, T, 1)
        e = self.embedding(ids) * mask  # (B, T, E); ids past a length need not be 0
        p = self.config.embedding_dropout
        if self.training and p > 0:  # spatial: one mask per (text, channel)
            e = e * torch.bernoulli(e.new_full((B, 1, e.shape[-1]), 1 - p)) / (1 - p)
        u = e
        for conv in self.convs:
            u = F.relu(conv(u.transpose(1, 2))).transpose(1, 2) * mask  # (B, T, C)
        h = self._recur(u, lengths)
        return self.head(self.drop(self._pool(h, lengths)))  # (B, K)
