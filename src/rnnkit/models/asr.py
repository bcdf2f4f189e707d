"""CTC speech recogniser: log-mel frames -> conv front-end -> recurrent stack -> unit scores.

For an utterance of ``T`` feature frames ``x_1..x_T`` (``F`` features each)::

    u^0     = x                                   (B, T, F)
    u^k     = relu(BN(conv1d_k(u^{k-1})))         kernel K, time stride s_k;
                                                  T_k = ceil(T_{k-1} / s_k) frames
    h       = RNN(u)                              any rnnkit cell, stacked, bidirectional or
                                                  not, with lengths: (B, T', D*H)
    log p_t = log_softmax(W h_t + b)              (B, T', V), V units with the blank at 0
    loss    = CTC(log p, targets)                 torch.nn.CTCLoss: -log sum over alignments

A bidirectional model pads its convolutions on both sides ("same"); a unidirectional one
pads only the past (causal), so that :class:`CTCStream` can run it frame by frame through
the layers' ``step`` API and give the same scores as :meth:`CTCModel.forward` on the whole
utterance.

Shapes: ``B`` batch, ``T`` frames, ``F`` features, ``C`` channels, ``H`` hidden, ``D``
directions, ``V`` units (blank included).

Example::

    model = CTCModel(ASRConfig(cell="gru", hidden_size=64), num_features=40, num_units=16)
    logp, out_len = model(torch.randn(2, 100, 40), torch.tensor([100, 70]))  # (2, 50, 16)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.models.audio import _MaskedBatchNorm1d, _time_mask, frames_after

__all__ = ["ASRConfig", "CTCModel", "CTCStream"]


@dataclass
class ASRConfig:
    """Hyperparameters of :class:`CTCModel` (the ``model:`` section of an asr recipe).

    Attributes:
        cell: recurrent cell for :func:`rnnkit.layers.build_layer` ("gru", "lstm", "sru", ...).
            A block, "griffin", "mamba", "xlstm" or "deep_lru", builds their stack instead
            (:func:`rnnkit.models.sequence.build_sequence_layer`).
        conv_channels: output channels of each convolution block (empty: no front-end).
        conv_strides: time stride of each block (the product divides the frame rate).
        kernel_size: convolution width in frames (odd).
        hidden_size: H per direction.
        num_layers: stacked recurrent layers.
        bidirectional: both directions (False: causal convolutions, streamable).
        dropout: after each convolution block, between recurrent layers, before the output.
        extras: extra keyword arguments for build_layer (e.g. ``zoneout``, ``backend``).
    """

    cell: str = "gru"
    conv_channels: list[int] = field(default_factory=lambda: [64, 64])
    conv_strides: list[int] = field(default_factory=lambda: [1, 2])
    kernel_size: int = 5
    hidden_size: int = 128
    num_layers: int = 2
    bidirectional: bool = True
    dropout: float = 0.2
    extras: dict[str, Any] = field(default_factory=dict)


class _Conv(nn.Module):
    """conv1d -> masked BN -> relu -> dropout, 'same' or causal padding."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dropout: float,
                 causal: bool):
        super().__init__()
        self.stride, self.kernel, self.causal = stride, kernel, causal
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride)
        self.bn = _MaskedBatchNorm1d(c_out)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:  # x (B, C, T)
        K = self.kernel
        pad = (K - 1, 0) if self.causal else (K // 2, K // 2)
        y = self.conv(F.pad(x, pad))  # (B, C', ceil(T / s))
        lengths = frames_after(lengths, [self.stride])
        mask = _time_mask(lengths, y.shape[-1])  # (B, 1, T')
        return self.drop(F.relu(self.bn(y * mask, mask))) * mask, lengths

    def frame(self, window: Tensor) -> Tensor:
        """One output frame from its ``K`` input frames (B, C, K), in evaluation mode."""
        y = self.conv(window)  # (B, C', 1)
        return F.relu(self.bn(y, None))[:, :, 0]  # (B, C'), BN in eval: no mask


class CTCModel(nn.Module):
    """Conv front-end + recurrent stack + linear output over CTC units (module docstring).

    Forward: ``x (B, T, F)``, ``lengths (B,)`` or None -> ``(log_probs (B, T', V),
    out_lengths (B,))``.
    """

    def __init__(self, config: ASRConfig, num_features: int, num_units: int):
        super().__init__()
        c = config
        if len(c.conv_strides) != len(c.conv_channels):
            raise ValueError(f"model.conv_strides: expected {len(c.conv_channels)} strides (one "
                             f"per conv_channels entry), got {c.conv_strides}")
        if c.kernel_size < 1 or c.kernel_size % 2 == 0:
            raise ValueError(f"model.kernel_size={c.kernel_size}; expected a positive odd number")
        if any(s < 1 for s in c.conv_strides) or any(ch < 1 for ch in c.conv_channels):
            raise ValueError("model.conv_channels and model.conv_strides: expected positive "
                             "integers")
        if not 0.0 <= c.dropout < 1.0:
            raise ValueError(f"model.dropout={c.dropout}; expected a probability in [0, 1)")
        if num_features < 1 or num_units < 2:
            raise ValueError(f"num_features={num_features}, num_units={num_units}; expected "
                             "at least 1 feature and 2 units (the blank and one more)")
        from .sequence import build_sequence_layer

        self.config, self.num_features, self.num_units = c, num_features, num_units
        chans = [num_features, *c.conv_channels]
        causal = not c.bidirectional
        self.convs = nn.ModuleList(
            _Conv(chans[k], chans[k + 1], c.kernel_size, c.conv_strides[k], c.dropout, causal)
            for k in range(len(c.conv_channels)))
        self.rnn = build_sequence_layer(c.cell, chans[-1], c.hidden_size,
                                        num_layers=c.num_layers, dropout=c.dropout,
                                        bidirectional=c.bidirectional, batch_first=True,
                                        **c.extras)
        self.drop = nn.Dropout(c.dropout)
        self.out = nn.Linear((2 if c.bidirectional else 1) * c.hidden_size, num_units)

    def frame_lengths(self, lengths: Tensor) -> Tensor:
        """Output frames for utterances of ``lengths`` input frames."""
        return frames_after(lengths, list(self.config.conv_strides))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.dim() != 3 or x.shape[-1] != self.num_features:
            raise ValueError(f"CTCModel expects (B, T, {self.num_features}) features, got "
                             f"shape {tuple(x.shape)}")
        B, T, _ = x.shape
        lengths = torch.full((B,), T) if lengths is None else lengths.cpu()
        u = x.transpose(1, 2) * _time_mask(lengths.to(x.device), T)  # (B, F, T); padding 0
        for block in self.convs:
            u, lengths = block(u, lengths)
        h, _ = self.rnn(u.transpose(1, 2), lengths=lengths)  # (B, T', D*H)
        return F.log_softmax(self.out(self.drop(h)).float(), dim=-1), lengths


class CTCStream:
    """A unidirectional :class:`CTCModel` run as feature frames arrive (evaluation mode).

    ``push(frames (n, F)) -> (m, V)`` log-probabilities of the output frames that those
    input frames complete: each convolution keeps its last ``K - 1`` inputs (causal padding:
    zeros before the first) and emits a frame on every ``s``-th input; the recurrent stack
    advances by ``rnn.step``. Concatenated, the outputs equal ``model(x)[0][0]`` on the whole
    utterance ``x`` up to floating-point error.
    """

    def __init__(self, model: CTCModel):
        if model.config.bidirectional:
            raise ValueError("streaming needs a unidirectional model (model.bidirectional: "
                             "false); a bidirectional one reads the whole utterance")
        self.model = model.eval()
        self.reset()

    def reset(self) -> None:
        """Start a new utterance."""
        dev = next(self.model.parameters()).device
        self.windows = [torch.zeros(1, b.conv.in_channels, b.kernel - 1, device=dev)
                        for b in self.model.convs]  # (1, C, K-1) past inputs per block
        self.seen = [0] * len(self.model.convs)
        self.state = None

    @torch.no_grad()
    def push(self, frames: Tensor) -> Tensor:
        m = self.model
        out = []
        for x_t in frames.to(next(m.parameters()).device):  # (F,)
            u = x_t[None]  # (1, C)
            for k, b in enumerate(m.convs):
                w = torch.cat([self.windows[k], u[:, :, None]], dim=2)  # (1, C, K)
                self.windows[k] = w[:, :, 1:]
                emit = self.seen[k] % b.stride == 0
                self.seen[k] += 1
                if not emit:
                    u = None
                    break
                u = b.frame(w)  # (1, C')
            if u is None:
                continue
            h, self.state = m.rnn.step(u, self.state)  # (1, H)
            out.append(F.log_softmax(m.out(h).float(), dim=-1))  # (1, V)
        return torch.cat(out) if out else torch.zeros(0, m.num_units)
