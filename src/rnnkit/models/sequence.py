"""A task model's sequence layer: any rnnkit cell, or a stack of published blocks (Griffin's,
Mamba's, xLSTM's, the deep LRU's).

:func:`build_sequence_layer` is what the task models call (classification, tagging, audio,
speech, music, language modeling, translation's encoder, SegRNN's encoder, the anomaly
detectors), so ``model.cell: griffin``, ``mamba``, ``xlstm`` or
``deep_lru`` works in each of their recipes as ``lstm`` does:

- a cell name goes to :func:`rnnkit.layers.build_layer` (stacked, bidirectional, with the
  layer's own regularisers in ``extras``); ``dropout`` is between stacked layers;
- a block name builds a :class:`~rnnkit.models.blocks.BlockStack` of ``num_layers`` blocks with
  ``d_model = hidden_size``, ``dropout`` being each block's residual dropout; bidirectional,
  a :class:`BidirectionalBlockStack`.

Every one answers ``layer(x, state=None, lengths=None) -> (y, state)`` with ``y`` zero past
each length and ``D * hidden_size`` wide.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

from .blocks import BLOCKS, PERIODIC, BlockStack

__all__ = ["build_sequence_layer", "BidirectionalBlockStack", "reverse_within_lengths"]


def reverse_within_lengths(x: Tensor, lengths: Tensor) -> Tensor:
    """``y[b, t] = x[b, len_b - 1 - t]`` for ``t < len_b``, else ``x[b, t]`` (padding stays
    at the end). ``x`` is (B, T, ...); applying it twice gives ``x`` back."""
    B, T = x.shape[:2]
    t = torch.arange(T, device=x.device)[None, :]  # (1, T)
    L = lengths.to(x.device)[:, None]  # (B, 1)
    idx = torch.where(t < L, L - 1 - t, t)  # (B, T)
    return x.gather(1, idx.view(B, T, *([1] * (x.dim() - 2))).expand_as(x))


class BidirectionalBlockStack(nn.Module):
    """``num_layers`` levels, each a one-block :class:`BlockStack` reading the sequence forward
    and one reading it backward (reversed within each length), their outputs concatenated,
    as a bidirectional stacked RNN joins its directions at every level::

        y^0 = x;  y^k = [ F_k(y^{k-1}) ; rev(B_k(rev(y^{k-1}))) ]     (..., 2d)

    ``rev`` reverses each sequence's first ``length`` steps, so the backward blocks start at
    each sequence's own last step. Level ``k > 0`` maps its ``2d`` input to ``d`` (the stack's
    input map) in each direction.

    Args: as :class:`BlockStack` (``block``, ``input_size``, ``d_model``, ``num_layers``,
    ``dropout``, ``batch_first``, block options).

    Forward: ``x`` (T, B, I) [(B, T, I)], ``state`` None (a bidirectional layer starts from
    zeros), ``lengths`` (B,) or None -> ``(y (T, B, 2d) [(B, T, 2d)], (forward states,
    backward states))``, one :class:`BlockStack` state per level each.
    """

    def __init__(self, block: str, input_size: int, d_model: int, num_layers: int = 1, *,
                 dropout: float = 0.0, batch_first: bool = False, attention_every: int = 0,
                 slstm_every: int = 0, **block_options):
        super().__init__()
        if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
            raise ValueError(f"num_layers: expected a positive integer, got {num_layers!r}")
        self.block, self.input_size, self.hidden_size = block, input_size, d_model
        self.num_layers, self.batch_first = num_layers, batch_first
        sizes = [input_size] + [2 * d_model] * (num_layers - 1)
        # Griffin's attention (xLSTM's sLSTM) at every attention_every-th (slstm_every-th)
        # level, as BlockStack places them among its blocks
        every = max(BlockStack.check_every(block, "attention_every", attention_every, num_layers),
                    BlockStack.check_every(block, "slstm_every", slstm_every, num_layers))
        attention = {k: block_options.pop(k) for k in ("attention_window", "attention_heads")
                     if k in block_options}

        def level(k: int, n: int) -> BlockStack:
            second = {}
            if every and (k + 1) % every == 0:
                second = {PERIODIC[block][0]: 1, **attention}
                if block == "xlstm" and "position" not in block_options:  # the sLSTM's forget
                    # biases follow the level's depth, unless the caller fixed a position
                    second["position"] = k / (num_layers - 1) if num_layers > 1 else 0.0
            return BlockStack(block, n, d_model, 1, dropout=dropout, batch_first=True,
                              **block_options, **second)

        self.fwd = nn.ModuleList(level(k, n) for k, n in enumerate(sizes))
        self.bwd = nn.ModuleList(level(k, n) for k, n in enumerate(sizes))

    def forward(self, x: Tensor, state=None, lengths=None) -> tuple[Tensor, tuple]:
        if state is not None:
            raise ValueError("state: a bidirectional block stack starts from zeros (its "
                             "backward direction reads the sequence from its end); pass None")
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != self.input_size:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x: expected a 3-d tensor with {self.input_size} features, "
                             f"got {got}")
        u = x if self.batch_first else x.transpose(0, 1)  # (B, T, I)
        B, T = u.shape[:2]
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long)
        lengths = torch.as_tensor(lengths)
        fs, bs = [], []
        for f, b in zip(self.fwd, self.bwd):
            y_f, s_f = f(u, lengths=lengths)  # (B, T, d), zero past each length
            y_b, s_b = b(reverse_within_lengths(u, lengths), lengths=lengths)  # reversed time
            u = torch.cat([y_f, reverse_within_lengths(y_b, lengths)], dim=-1)  # (B, T, 2d)
            fs.append(s_f)
            bs.append(s_b)
        return (u if self.batch_first else u.transpose(0, 1)), (tuple(fs), tuple(bs))


def _check_block_options(block: str, options: dict[str, Any]) -> None:
    """Refuse, by name, an option the block does not take (a cell's ``zoneout``, ``backend``)."""
    own = ("dropout", "batch_first", "device", "dtype", "position")  # the stack's, or torch's
    classes = [BLOCKS[block]] + ([PERIODIC[block][2]] if block == "xlstm" else [])
    known = sorted({k for cls in classes
                    for k, p in inspect.signature(cls.__init__).parameters.items()
                    if p.kind is p.KEYWORD_ONLY and k not in own})
    if block == "griffin":  # the stack's own: Griffin's local-attention blocks
        known = sorted(known + ["attention_every", "attention_window", "attention_heads"])
    if block == "xlstm":  # the stack's own: xLSTM's sLSTM blocks
        known = sorted(known + ["slstm_every"])
    bad = sorted(set(options) - set(known) - {"device", "dtype"})
    if bad:
        raise ValueError(f"model.extras.{bad[0]}: not an option of the {block} block (a "
                         f"recurrent layer's option?); the {block} block takes "
                         f"{', '.join(known)}")


def build_sequence_layer(cell: str, input_size: int, hidden_size: int, *, num_layers: int = 1,
                         dropout: float = 0.0, bidirectional: bool = False,
                         batch_first: bool = False, **extras: Any) -> nn.Module:
    """The sequence layer of a task model (see the module docstring).

    Args:
        cell: an rnnkit cell name ("lstm", "gru", "slstm", ...) or a block ("griffin",
            "mamba", "xlstm", "deep_lru").
        input_size / hidden_size: I and H (a block stack's ``d_model``).
        num_layers: stacked layers, or blocks (per direction).
        dropout: between stacked layers (cells; none with one layer), or each block's
            residual dropout (blocks, at any depth).
        bidirectional / batch_first: as torch.nn.LSTM's.
        extras: the layer's options (``zoneout``, ``backend``, ...) or the block's
            (``expand``, ``state_size``, ``rnn_width``, ...).

    Example::

        >>> layer = build_sequence_layer("mamba", 8, 16, bidirectional=True, state_size=4)
        >>> layer(torch.randn(10, 3, 8), lengths=torch.tensor([10, 7, 2]))[0].shape
        torch.Size([10, 3, 32])
    """
    if cell in BLOCKS:
        opts = dict(extras)
        bidirectional = bool(opts.pop("bidirectional", bidirectional))  # extras', as a cell's
        _check_block_options(cell, opts)
        kind = BidirectionalBlockStack if bidirectional else BlockStack
        return kind(cell, input_size, hidden_size, num_layers, dropout=dropout,
                    batch_first=batch_first, **opts)
    from rnnkit.layers import build_layer

    return build_layer(cell, input_size, hidden_size, num_layers=num_layers,
                       dropout=dropout if num_layers > 1 else 0.0, bidirectional=bidirectional,
                       batch_first=batch_first, **extras)
