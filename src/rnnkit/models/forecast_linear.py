"""DLinear (Zeng et al. 2023): a moving-average trend, the remainder, and one linear map each.

Per window and channel (``individual=False``: the two maps are shared by every channel)::

    t = MA_k(y)                       moving average over k steps, the window's ends repeated
                                      (k - 1) / 2 times on each side, so t has L steps
    s = y - t                         the seasonal remainder
    y_hat = W_s s + b_s + W_t t + b_t     W_s, W_t: (H, L)

A small trained baseline: the issue's "strong baselines" beside every recurrent model.
Shapes: ``B`` windows, ``L`` lookback, ``H`` horizon, ``C`` channels.

Example::

    m = DLinear(ForecastModelConfig(arch="dlinear"), n_targets=7, horizon=96)
    m(torch.randn(8, 336, 7)).shape          # (8, 96, 7, 1)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.models.forecast import ForecastModelConfig
from rnnkit.models.forecast_norm import InstanceNorm
from rnnkit.models.forecast_segrnn import check_targets_only

__all__ = ["DLinear", "moving_average"]


def moving_average(y: Tensor, k: int) -> Tensor:
    """Centred moving average over ``k`` (odd) steps with the ends repeated: (B, L, C) -> same."""
    if k < 1 or k % 2 == 0:
        raise ValueError(f"model.decomposition_kernel={k}: expected an odd positive integer")
    r = (k - 1) // 2
    ext = torch.cat([y[:, :1].expand(-1, r, -1), y, y[:, -1:].expand(-1, r, -1)], 1)  # (B, L+2r, C)
    return F.avg_pool1d(ext.transpose(1, 2), k, stride=1).transpose(1, 2)  # (B, L, C)


class DLinear(nn.Module):
    """DLinear with shared maps (see the module docstring); needs ``L`` at construction.

    Args:
        config: ``arch="dlinear"``, ``decomposition_kernel``, ``norm`` (default "none"),
            ``head`` "point".
        n_targets: C.  horizon: H.  input_length: L.
    """

    def __init__(self, config: ForecastModelConfig, *, n_targets: int, n_past: int = 0,
                 n_future: int = 0, horizon: int = 1, input_length: int):
        super().__init__()
        c = config
        check_targets_only("dlinear", n_past, n_future)
        if c.head != "point" or c.channels != "independent":
            raise ValueError(f"model.arch='dlinear': head 'point' with channels 'independent' "
                             f"(got head {c.head!r}, channels {c.channels!r})")
        self.config, self.C, self.P, self.F, self.H, self.K = c, n_targets, 0, 0, horizon, 1
        self.L, self.k = input_length, c.decomposition_kernel
        moving_average(torch.zeros(1, 1, 1), self.k)  # validates k
        self.norm = InstanceNorm(c.norm, n_targets, affine=c.revin_affine)
        self.seasonal = nn.Linear(input_length, horizon)
        self.trend = nn.Linear(input_length, horizon)

    def forward(self, x: Tensor, xf: Tensor | None = None, lengths: Tensor | None = None,
                y_teacher: Tensor | None = None) -> Tensor:
        if x.shape[1:] != (self.L, self.C):
            raise ValueError(f"DLinear: x has shape {tuple(x.shape)}; expected (B, {self.L}, "
                             f"{self.C})")
        z, stats = self.norm(x)  # (B, L, C)
        t = moving_average(z, self.k)
        s = z - t
        # (B, L, C) -> (B, C, L) -> (B, C, H) -> (B, H, C)
        y = (self.seasonal(s.transpose(1, 2)) + self.trend(t.transpose(1, 2))).transpose(1, 2)
        return self.norm.inverse(y[..., None], stats)  # (B, H, C, 1)
