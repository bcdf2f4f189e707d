"""Instance normalisation of forecasting windows: each window's own level (and scale) removed.

Per window ``b`` and channel ``c`` over the ``L`` input steps (``mode``)::

    last   z = y - y_L                                   (SegRNN's default)
    mean   z = y - mu,            mu = mean_t y_t
    revin  z = g (y - mu) / s + b, s = sqrt(var_t y_t + eps)   (RevIN, Kim et al. 2022;
                                    g, b learned per channel when ``affine``)

and the model's outputs ``o`` are mapped back with the inverse (``(o - b) / g * s + mu``), so
the loss is taken on the data's own scale.  The statistics are computed without gradient, as
RevIN does.

Example::

    norm = InstanceNorm("revin", 7)
    z, st = norm(torch.randn(4, 96, 7))          # (4, 96, 7), stats of shape (4, 1, 7)
    y = norm.inverse(torch.randn(4, 24, 7, 1), st)   # (B, H, C, K) back to the data's scale
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["InstanceNorm"]


class InstanceNorm(nn.Module):
    """Removes each window's level (and scale) per channel, and puts it back on the outputs.

    Args:
        mode: "none", "last", "mean" or "revin" (module docstring).
        channels: C (the affine parameters' size).
        affine: revin: learn a per-channel scale ``g`` (init 1) and shift ``b`` (init 0).
        eps: added to the variance.
    """

    def __init__(self, mode: str, channels: int, *, affine: bool = False, eps: float = 1e-5):
        super().__init__()
        if mode not in ("none", "last", "mean", "revin"):
            raise ValueError(f"model.norm={mode!r}: expected none, last, mean or revin")
        if affine and mode != "revin":
            raise ValueError(f"model.revin_affine needs model.norm='revin' (got {mode!r})")
        self.mode, self.eps = mode, eps
        if affine:
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))
        else:
            self.weight = self.bias = None

    def forward(self, y: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """``y (B, L, C)`` -> normalised ``(B, L, C)`` and the statistics ``(loc, scale)``, each
        ``(B, 1, C)`` (None for mode "none")."""
        if self.mode == "none":
            return y, None
        with torch.no_grad():
            if self.mode == "last":
                loc = y[:, -1:]
            else:
                loc = y.mean(1, keepdim=True)
            if self.mode == "revin":
                scale = torch.sqrt(y.var(1, keepdim=True, unbiased=False) + self.eps)
            else:
                scale = torch.ones_like(loc)
        z = (y - loc) / scale
        if self.weight is not None:
            z = z * self.weight + self.bias
        return z, (loc, scale)

    def inverse(self, p: Tensor, stats: tuple[Tensor, Tensor] | None) -> Tensor:
        """Outputs ``p (B, H, C, K)`` (locations: points or quantiles) to the data's scale."""
        if stats is None:
            return p
        loc, scale = (s[..., None] for s in stats)  # (B, 1, C, 1)
        if self.weight is not None:
            p = (p - self.bias[:, None]) / (self.weight[:, None] + self.eps**2)
        return p * scale + loc
