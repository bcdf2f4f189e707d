"""Audio classifier: CNN front-end -> bidirectional recurrent layer -> pooling -> classifier.

For a clip of ``T`` feature frames ``x_1..x_T`` (log-mel or MFCC, ``F`` features each)::

    u^0     = x                                 (B, T, F)
    u^k     = relu(BN(conv1d_k(u^{k-1})))       kernel K, stride s_k, 'same' padding;
                                                T_k = ceil(T_{k-1} / s_k) frames
    h_t     = BiRNN(u_t)                        any rnnkit cell, (B, T', D*H), with lengths
    z       = pool(h_1..h_T')                   masked mean, max, both, or attention:
                                                a_t = softmax_t(v . tanh(W h_t)), z = sum a_t h_t
    logits  = W_out dropout(z) + b              (B, K)

Padded frames are set to zero after every convolution and batch normalisation statistics
are taken over the real frames only, so a clip's logits do not depend on the other clips
of its batch (in evaluation mode) nor on how much it is padded.

Shapes: ``B`` batch, ``T`` frames, ``F`` features, ``C`` channels, ``H`` hidden, ``D``
directions, ``K`` classes.

Example::

    cfg = AudioConfig(cell="gru", conv_channels=[32, 32], hidden_size=64)
    model = AudioClassifier(cfg, num_features=20, num_classes=10)
    logits = model(torch.randn(4, 50, 20), torch.tensor([50, 31, 12, 3]))   # (4, 10)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AudioConfig", "AudioClassifier", "frames_after"]


@dataclass
class AudioConfig:
    """Hyperparameters of :class:`AudioClassifier` (the ``model:`` section of an audio recipe).

    Attributes:
        cell: recurrent cell for :func:`rnnkit.layers.build_layer` ("gru", "lstm", ...).
            A block, "griffin", "mamba", "xlstm" or "deep_lru", builds their stack instead
            (:func:`rnnkit.models.sequence.build_sequence_layer`).
        conv_channels: output channels of each convolution block (empty: no front-end).
        conv_strides: time stride of each block (same length as ``conv_channels``).
        kernel_size: convolution width in frames (odd).
        hidden_size: H of the recurrent layer, per direction.
        num_layers: stacked recurrent layers.
        bidirectional: run the recurrent layer both ways.
        dropout: after each convolution block, between recurrent layers, before the classifier.
        pooling: "mean", "max", "meanmax" (both, concatenated) or "attention".
        extras: extra keyword arguments for build_layer (e.g. ``zoneout``, ``backend``).
    """

    cell: str = "gru"
    conv_channels: list[int] = field(default_factory=lambda: [64, 64])
    conv_strides: list[int] = field(default_factory=lambda: [1, 2])
    kernel_size: int = 5
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.2
    pooling: Literal["mean", "max", "meanmax", "attention"] = "meanmax"
    extras: dict[str, Any] = field(default_factory=dict)


def frames_after(lengths: Tensor, strides: list[int]) -> Tensor:
    """Frame counts after strided 'same'-padded convolutions: ``ceil(T / s)`` per stride."""
    for s in strides:
        lengths = torch.div(lengths + s - 1, s, rounding_mode="floor")
    return lengths


def _time_mask(lengths: Tensor, T: int) -> Tensor:
    """(B,) -> (B, 1, T) float, 1 on real frames."""
    return (torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(1).float()


class _MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d over (B, C, T) whose training statistics use only the frames where mask = 1."""

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # x (B, C, T), mask (B, 1, T)
        if not self.training:
            return super().forward(x)
        n = mask.sum().clamp(min=2.0)
        mean = (x * mask).sum((0, 2)) / n  # (C,)
        var = (((x - mean[:, None]) ** 2) * mask).sum((0, 2)) / n  # (C,), biased
        with torch.no_grad():
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / (n - 1), self.momentum)
            self.num_batches_tracked += 1
        y = (x - mean[:, None]) * torch.rsqrt(var[:, None] + self.eps)
        return y * self.weight[:, None] + self.bias[:, None]


class _ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dropout: float):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
        self.bn = _MaskedBatchNorm1d(c_out)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:  # x (B, C, T)
        y = self.conv(x)  # (B, C', T')
        lengths = frames_after(lengths, [self.stride])
        mask = _time_mask(lengths, y.shape[-1])  # (B, 1, T')
        y = self.drop(F.relu(self.bn(y * mask, mask))) * mask
        return y, lengths


class AudioClassifier(nn.Module):
    """CNN-RNN hybrid for clip classification (see the module docstring).

    Args:
        config: :class:`AudioConfig`.
        num_features: F per input frame.
        num_classes: K.

    Forward: ``x (B, T, F)``, ``lengths (B,)`` or None (all T) -> ``logits (B, K)``.
    """

    def __init__(self, config: AudioConfig, num_features: int, num_classes: int):
        super().__init__()
        c = config
        if len(c.conv_strides) != len(c.conv_channels):
            raise ValueError(
                f"model.conv_strides: expected {len(c.conv_channels)} strides (one per "
                f"conv_channels entry), got {c.conv_strides}"
            )
        if c.kernel_size < 1 or c.kernel_size % 2 == 0:
            raise ValueError(f"model.kernel_size={c.kernel_size}; expected a positive odd number")
        if any(s < 1 for s in c.conv_strides) or any(ch < 1 for ch in c.conv_channels):
            raise ValueError(
                "model.conv_channels and model.conv_strides: expected positive integers"
            )
        if not 0.0 <= c.dropout < 1.0:
            raise ValueError(f"model.dropout={c.dropout}; expected a probability in [0, 1)")
        if num_features < 1 or num_classes < 2:
            raise ValueError(f"num_features={num_features}, num_classes={num_classes}; expected "
                             "at least 1 feature and 2 classes")
        from .sequence import build_sequence_layer

        self.config = c
        self.num_features, self.num_classes = num_features, num_classes
        chans = [num_features, *c.conv_channels]
        self.convs = nn.ModuleList(
            _ConvBlock(chans[k], chans[k + 1], c.kernel_size, c.conv_strides[k], c.dropout)
            for k in range(len(c.conv_channels)))
        self.rnn = build_sequence_layer(c.cell, chans[-1], c.hidden_size,
                                        num_layers=c.num_layers, dropout=c.dropout,
                                        bidirectional=c.bidirectional, batch_first=True,
                                        **c.extras)
        D = 2 if c.bidirectional else 1
        width = D * c.hidden_size
        if c.pooling == "attention":
            self.att = nn.Sequential(
                nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1, bias=False)
            )
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(2 * width if c.pooling == "meanmax" else width, num_classes)

    def frame_lengths(self, lengths: Tensor) -> Tensor:
        """Frames the recurrent layer sees for clips of ``lengths`` input frames."""
        return frames_after(lengths, list(self.config.conv_strides))

    def _pool(self, h: Tensor, lengths: Tensor) -> Tensor:  # h (B, T, DH)
        mask = _time_mask(lengths, h.shape[1]).transpose(1, 2)  # (B, T, 1)
        kind = self.config.pooling
        if kind == "attention":
            score = self.att(h).masked_fill(mask == 0, float("-inf"))  # (B, T, 1)
            return (torch.softmax(score, dim=1) * h).sum(1)  # (B, DH)
        mean = (h * mask).sum(1) / lengths[:, None].to(h.dtype)  # (B, DH)
        if kind == "mean":
            return mean
        mx = h.masked_fill(mask == 0, float("-inf")).amax(1)  # (B, DH)
        return mx if kind == "max" else torch.cat([mean, mx], dim=-1)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.num_features:
            raise ValueError(f"AudioClassifier expects (B, T, {self.num_features}) features, "
                             f"got shape {tuple(x.shape)}")
        B, T, _ = x.shape
        lengths = torch.full((B,), T, device=x.device) if lengths is None else lengths.to(x.device)
        u = x.transpose(1, 2) * _time_mask(lengths, T)  # (B, F, T), channels first; padding 0
        for block in self.convs:
            u, lengths = block(u, lengths)
        h, _ = self.rnn(u.transpose(1, 2), lengths=lengths.cpu())  # (B, T', D*H)
        return self.head(self.drop(self._pool(h, lengths)))  # (B, K)
