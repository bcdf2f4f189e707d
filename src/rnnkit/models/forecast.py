"""Forecasting models: an rnnkit recurrent layer, a strategy, and a point/quantile/Gaussian head.

Inputs (batch-first): ``x (B, L, C+P+F)`` holds per input step the targets (``C``, first),
past covariates (``P``) and known-future covariates (``F``, calendar features included);
``xf (B, H, F)`` holds the known-future covariates of the ``H`` steps to forecast.  The
output is ``(B, H, C, K)`` head parameters, ``K`` = 1 (point), ``Q`` (quantiles) or 2
(Gaussian ``mu``, ``sigma_raw``; ``sigma = softplus(sigma_raw) + 1e-3``).

Strategies (``h_t`` the top-layer output, ``g`` the head)::

    single     y_L          = g(h_{L-1}, xf_0)                   H = 1
    recursive  y_{t+1}      = g(h_t),  h_t = RNN([y_t, f_t], h_{t-1})   fed back for H steps
                                       (trained teacher-forced; no past covariates)
    direct     y_{L..L+H-1} = g(h_{L-1}, xf)                     one head for all horizons
    seq2seq    e = Enc(x);  d_h = Dec([xf_h, y_{h-1} or y_{L-1}], d_{h-1}; d_{-1} = e_{L-1})
               y_{L+h}      = g(d_h [, c_h]),  c_h = sum_t a_{h,t} e_t,
                              a_h = softmax(score(d_h, e) + mask)
               score: dot d.e | general d W e | additive v' tanh(W_q d + W_k e)  (Luong 2015;
               Bahdanau 2015).  Padded input steps (beyond ``lengths``) get weight exactly 0.

``norm="last"`` / ``"mean"`` subtracts each window's last / mean target value from the target
channels and adds it back to the location outputs (RevIN-style, without the scale; Kim et
al. 2022), which lets a small RNN follow a drifting level.  ``highway=k`` adds LSTNet's
autoregressive component (Lai et al. 2018): a linear map of each target's last ``k`` input
values to its ``H`` forecasts, ``y_{L+h} += sum_i w_{h,i} y_{L-k+i} + b_h``, shared by channels.

``arch`` picks the model behind the same interface: "rnn" is this module's
:class:`Forecaster`; "segrnn" is :class:`~rnnkit.models.forecast_segrnn.SegRNN` (segments of
the lookback through any rnnkit cell, parallel decoding, RevIN); "dlinear" is the linear
baseline :class:`~rnnkit.models.forecast_linear.DLinear`.  Build any of them with
:func:`rnnkit.models.forecasters.build_forecaster`.

Baselines (NumPy, on the same windows, :mod:`rnnkit.models.forecast_baselines`, re-exported
here): :func:`naive_forecast`, :func:`seasonal_naive_forecast`, :class:`LinearAR` and
:class:`NLinear`.

Example::

    cfg = ForecastModelConfig(cell="gru", hidden_size=32, strategy="seq2seq", attention="dot")
    m = Forecaster(cfg, n_targets=1, n_future=4, horizon=24)
    params = m(torch.randn(8, 96, 5), torch.randn(8, 24, 4))      # (8, 24, 1, 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.models.forecast_baselines import (
    LinearAR,
    NLinear,
    naive_forecast,
    seasonal_naive_forecast,
)

__all__ = [
    "ForecastModelConfig",
    "Forecaster",
    "head_size",
    "forecast_loss",
    "point_forecast",
    "quantile_forecast",
    "naive_forecast",
    "seasonal_naive_forecast",
    "LinearAR",
    "NLinear",
]


@dataclass
class ForecastModelConfig:
    """The ``model:`` section of a forecasting recipe.

    Attributes:
        arch: "rnn" (:class:`Forecaster`), "segrnn" or "dlinear" (see the module docstring).
        cell: any rnnkit cell name ("lstm", "gru", "rnn_tanh", "indrnn", "sru", "mingru", ...).
        hidden_size / num_layers / dropout: of the recurrent layer(s) (dropout also before the
            head).
        strategy: "single", "recursive", "direct" or "seq2seq" (see the module docstring).
        attention: seq2seq only: "none", "dot", "general" or "additive".
        decoder_feedback: seq2seq: feed the previous target into the decoder (teacher-forced in
            training); else the decoder sees the known-future covariates and the last observed
            target.
        head: "point", "quantile" or "gaussian".
        loss: point head loss: "mse", "mae" or "huber".
        quantiles: quantile head levels (sorted, in (0, 1)).
        norm: "none", "last" or "mean" (see the module docstring); "revin" (segrnn, dlinear):
            per window and channel ``(y - mean) / std``, undone on the outputs (Kim et al. 2022).
        revin_affine: RevIN's learnable per-channel scale and shift.
        segment_length: segrnn: steps per input/output segment (SegRNN's ``seg_len``).
        channels: segrnn, dlinear: "independent" (one shared model run on each channel alone)
            or "mixed" (all channels of a step in one input).
        channel_embedding: segrnn with independent channels: decode each channel with its
            learned embedding beside the position embedding (SegRNN's ``channel_id``).
        decomposition_kernel: dlinear: the moving-average window of the trend.
        highway: LSTNet's linear autoregressive component over the last ``highway`` steps (0: none).
        linear_ar: segrnn: forecast ``linear AR + recurrent residual`` (the hybrid ES-RNN and
            LSTNet stand for): the data's linear AR baseline (least squares on the training
            split, iterated to ``H`` steps) as a fixed affine map of the window, plus SegRNN's
            output, whose head starts at zero so training starts from the AR forecast.
        ar_blend: segrnn, point head: forecast ``AR + b_h (SegRNN - AR)``, SegRNN's forecast
            blended with the same fixed linear AR map, one weight ``b_h`` in [0, 1] per horizon
            step fitted by least squares on the validation windows after training (SegRNN
            trains alone, ``b = 1``; :meth:`~rnnkit.models.forecast_segrnn.SegRNN.fit_ar_blend`).
        ar_blend_partner: ar_blend: the linear forecaster SegRNN is blended with: "linear_ar"
            (the data's linear AR baseline, iterated) or "nlinear" (a level-free direct linear
            map of the window minus its last value, fitted in closed form on the training
            windows: :class:`~rnnkit.models.forecast_baselines.NLinear`).
        ar_blend_weights: ar_blend: how the weights are fitted on the validation windows:
            "per_step" (one ``b_h`` per horizon step, least squares, clipped to [0, 1]),
            "shared" (one ``b`` for every step, the least squares pooled over the steps) or
            "equal" (``b = 0.5``, fitted on nothing, so it cannot overfit the validation
            windows; no validation split is needed).
        decoder_step: segrnn: "auto" takes the decoder's step apart where the layer allows it
            (:func:`~rnnkit.models.forecast_segrnn.separable_step`: the same function, its
            float32 gradient sums in another order); "batched" always runs the layer on all
            ``N*m`` decoder rows, as every SegRNN trained before 2026-12-06 did, so such a run
            can be trained again on its own path.
        extras: more keyword arguments for ``build_layer`` (backend, zoneout, ...).
    """

    arch: Literal["rnn", "segrnn", "dlinear"] = "rnn"
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    strategy: Literal["single", "recursive", "direct", "seq2seq"] = "direct"
    attention: Literal["none", "dot", "general", "additive"] = "none"
    decoder_feedback: bool = False
    head: Literal["point", "quantile", "gaussian"] = "point"
    loss: Literal["mse", "mae", "huber"] = "mse"
    quantiles: list[float] = field(default_factory=lambda: [0.1, 0.5, 0.9])
    norm: Literal["none", "last", "mean", "revin"] = "none"
    revin_affine: bool = False
    segment_length: int = 48
    channels: Literal["independent", "mixed"] = "independent"
    channel_embedding: bool = True
    decomposition_kernel: int = 25
    highway: int = 0
    linear_ar: bool = False
    ar_blend: bool = False
    ar_blend_partner: Literal["linear_ar", "nlinear"] = "linear_ar"
    ar_blend_weights: Literal["per_step", "shared", "equal"] = "per_step"
    decoder_step: Literal["auto", "batched"] = "auto"
    extras: dict[str, Any] = field(default_factory=dict)


def head_size(cfg: ForecastModelConfig) -> int:
    """K, the head's parameters per step and channel: 1 (point), Q (quantile), 2 (gaussian)."""
    return {"point": 1, "quantile": len(cfg.quantiles), "gaussian": 2}[cfg.head]


class _Attention(nn.Module):
    """Scores of decoder outputs ``q (B, H, D)`` against encoder outputs ``e (B, L, D)``."""

    def __init__(self, kind: str, dim: int):
        super().__init__()
        self.kind = kind
        if kind == "general":
            self.W = nn.Linear(dim, dim, bias=False)
        elif kind == "additive":
            self.Wq, self.Wk = nn.Linear(dim, dim, bias=False), nn.Linear(dim, dim)
            self.v = nn.Linear(dim, 1, bias=False)

    def forward(self, q: Tensor, e: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Returns the context ``(B, H, D)`` and the weights ``(B, H, L)``; ``mask`` (B, L)
        True = valid."""
        if self.kind == "dot":
            s = q @ e.transpose(1, 2)  # (B, H, L)
        elif self.kind == "general":
            s = self.W(q) @ e.transpose(1, 2)  # (B, H, L)
        else:
            s = self.v(
                torch.tanh(self.Wq(q)[:, :, None] + self.Wk(e)[:, None])
            ).squeeze(-1)  # (B, H, L)
        if mask is not None:
            s = s.masked_fill(~mask[:, None, :], float("-inf"))
        a = torch.softmax(s, dim=-1)
        return a @ e, a  # (B, H, D), (B, H, L)


class Forecaster(nn.Module):
    """A recurrent forecaster (see the module docstring for the strategies and shapes).

    Args:
        config: :class:`ForecastModelConfig`.
        n_targets: C.  n_past: P.  n_future: F.  horizon: H.

    Forward:
        x: (B, L, C+P+F).  xf: (B, H, F).  lengths: (B,) valid input steps (right-padded), or None.
        y_teacher: (B, H, C) true targets, used in training by "recursive" and by "seq2seq"
            with ``decoder_feedback`` (teacher forcing); ignored otherwise and in eval mode.
    Returns:
        (B, H, C, K) head parameters.
    """

    def __init__(self, config: ForecastModelConfig, *, n_targets: int, n_past: int = 0,
                 n_future: int = 0, horizon: int = 1):
        super().__init__()
        c = config
        if c.hidden_size < 1 or c.num_layers < 1:
            raise ValueError(
                f"model.hidden_size={c.hidden_size}, model.num_layers={c.num_layers}: "
                "expected positive integers"
            )
        if not 0.0 <= c.dropout < 1.0:
            raise ValueError(f"model.dropout={c.dropout}: expected a probability in [0, 1)")
        if c.strategy == "single" and horizon != 1:
            raise ValueError(
                f"model.strategy='single' predicts one step; data.horizon={horizon} needs "
                "'recursive', 'direct' or 'seq2seq'"
            )
        if c.strategy == "recursive" and n_past:
            raise ValueError(
                "model.strategy='recursive' feeds its forecasts back, but past covariates are "
                "unknown beyond the origin; use 'direct' or 'seq2seq' with past covariates"
            )
        if c.attention != "none" and c.strategy != "seq2seq":
            raise ValueError(f"model.attention={c.attention!r} needs model.strategy='seq2seq'")
        if c.head == "quantile" and (not c.quantiles or any(not 0 < q < 1 for q in c.quantiles)
                                     or list(c.quantiles) != sorted(set(c.quantiles))):
            raise ValueError(f"model.quantiles={c.quantiles}: expected increasing levels in (0, 1)")
        if c.highway < 0:
            raise ValueError(
                f"model.highway={c.highway}: expected 0 (none) or a number of input steps"
            )
        if c.arch != "rnn" or c.norm == "revin":
            raise ValueError(
                f"model.arch={c.arch!r}, model.norm={c.norm!r}: Forecaster is arch 'rnn' with norm "
                "none, last or mean; build through rnnkit.models.forecasters.build_forecaster"
            )
        if c.extras.get("bidirectional"):
            raise ValueError(
                "model.extras.bidirectional: forecasting layers run forward in time only"
            )
        from rnnkit.layers import build_layer
        from rnnkit.models.blocks import BLOCKS

        if c.cell in BLOCKS:
            raise ValueError(f"model.cell={c.cell!r}: a stack of blocks forecasts with "
                             "model.arch: segrnn; the rnn strategies read a layer's final hidden "
                             "state, which a block stack does not have")
        self.config, self.C, self.P, self.F, self.H = c, n_targets, n_past, n_future, horizon
        self.K = head_size(c)
        Hd = c.hidden_size
        drop = c.dropout if c.num_layers > 1 else 0.0

        def layer(i: int) -> nn.Module:
            return build_layer(
                c.cell, i, Hd, num_layers=c.num_layers, dropout=drop, batch_first=True, **c.extras
            )

        self.encoder = layer(
            n_targets + (n_future if c.strategy == "recursive" else n_past + n_future)
        )
        self.drop = nn.Dropout(c.dropout)
        out = n_targets * self.K
        if c.strategy == "single":
            self.head = nn.Linear(Hd + n_future, out)
        elif c.strategy == "recursive":
            self.head = nn.Linear(Hd, out)
        elif c.strategy == "direct":
            self.head = nn.Linear(Hd + horizon * n_future, horizon * out)
        else:
            self.decoder = layer(n_future + n_targets)
            self.attention = _Attention(c.attention, Hd) if c.attention != "none" else None
            self.head = nn.Linear(Hd * (2 if self.attention is not None else 1), out)
        self.highway = nn.Linear(c.highway, horizon) if c.highway else None
        self.last_attention: Tensor | None = None

    # ------------------------------------------------------------------ helpers

    def _loc(self, y: Tensor, lengths: Tensor | None) -> Tensor:
        """Per-window location of the targets ``y (B, L, C)`` -> (B, 1, C)."""
        B, L, _ = y.shape
        n = lengths.to(y.device) if lengths is not None else torch.full((B,), L, device=y.device)
        if self.config.norm == "last":
            return y[torch.arange(B, device=y.device), n - 1][:, None]  # (B, 1, C)
        valid = (torch.arange(L, device=y.device)[None] < n[:, None]).to(y.dtype)  # (B, L)
        return (y * valid[..., None]).sum(1, keepdim=True) / n[:, None, None].to(y.dtype)

    def _last(self, out: Tensor, lengths: Tensor | None) -> Tensor:
        """Top-layer output at each sequence's last valid step: (B, L, D) -> (B, D)."""
        if lengths is None:
            return out[:, -1]
        return out[torch.arange(out.size(0), device=out.device), lengths.to(out.device) - 1]

    def _params(self, z: Tensor) -> Tensor:
        return z.reshape(*z.shape[:-1], self.C, self.K)  # (..., C*K) -> (..., C, K)

    def _point(self, p: Tensor) -> Tensor:
        """Point forecast of normalised params (..., C, K) -> (..., C), differentiable."""
        if self.config.head == "quantile":
            return quantile_forecast(p, self.config, [0.5]).squeeze(-1)
        return p[..., 0]

    # ------------------------------------------------------------------ forward

    def forward(self, x: Tensor, xf: Tensor | None = None, lengths: Tensor | None = None,
                y_teacher: Tensor | None = None) -> Tensor:
        c, C = self.config, self.C
        B, L, I = x.shape
        if I != C + self.P + self.F:
            raise ValueError(
                f"Forecaster: x has {I} features per step; expected C+P+F = {C}+{self.P}+{self.F}"
            )
        if xf is None:
            xf = x.new_zeros(B, self.H, self.F)
        if xf.shape[1] != self.H or xf.shape[2] != self.F:
            raise ValueError(
                f"Forecaster: xf has shape {tuple(xf.shape)}; expected (B, {self.H}, {self.F})"
            )
        teacher = y_teacher if self.training else None
        loc = None
        if c.norm != "none":
            loc = self._loc(x[..., :C], lengths)  # (B, 1, C)
            x = torch.cat([x[..., :C] - loc, x[..., C:]], dim=-1)
            teacher = teacher - loc if teacher is not None else None
        if c.strategy == "recursive":
            p = self._recursive(x, xf, teacher)
        else:
            enc, state = self.encoder(x, lengths=lengths)  # (B, L, Hd)
            last = self.drop(self._last(enc, lengths))  # (B, Hd)
            if c.strategy == "single":
                p = self._params(
                    self.head(torch.cat([last, xf[:, 0]], -1))
                )[:, None]  # (B, 1, C, K)
            elif c.strategy == "direct":
                z = self.head(torch.cat([last, xf.reshape(B, -1)], -1))  # (B, H*C*K)
                p = z.reshape(B, self.H, C, self.K)
            else:
                p = self._seq2seq(x, xf, enc, state, lengths, teacher)
        if self.highway is not None:
            k = c.highway
            if L < k or lengths is not None:
                raise ValueError(
                    f"model.highway={k} needs unpadded input windows of at least {k} steps "
                    f"(got {L}{' with lengths' if lengths is not None else ''})"
                )
            # (B, C, k) -> (B, C, H) -> (B, H, C)
            ar = self.highway(x[:, -k:, :C].transpose(1, 2)).transpose(1, 2)
            if c.head == "quantile":
                p = p + ar[..., None]
            else:
                p = torch.cat([p[..., :1] + ar[..., None], p[..., 1:]], dim=-1)
        if loc is not None:
            shift = loc[..., None]  # (B, 1, C, 1)
            if c.head == "gaussian":
                p = torch.cat([p[..., :1] + shift, p[..., 1:]], dim=-1)
            else:
                p = p + shift
        return p

    def _recursive(self, x: Tensor, xf: Tensor, teacher: Tensor | None) -> Tensor:
        Hh = self.H
        if teacher is not None:  # one pass over the input window and the true horizon
            tail = torch.cat([teacher[:, :Hh - 1], xf[:, :Hh - 1]], -1)  # (B, H-1, C+F)
            out, _ = self.encoder(torch.cat([x, tail], 1))  # (B, L+H-1, Hd)
            return self._params(self.head(self.drop(out[:, x.size(1) - 1:])))  # (B, H, C, K)
        out, state = self.encoder(x)
        p = [self._params(self.head(self.drop(out[:, -1])))]  # (B, C, K)
        for h in range(1, Hh):
            inp = torch.cat([self._point(p[-1]), xf[:, h - 1]], -1)[:, None]  # (B, 1, C+F)
            out, state = self.encoder(inp, state)
            p.append(self._params(self.head(self.drop(out[:, -1]))))
        return torch.stack(p, 1)  # (B, H, C, K)

    def _seq2seq(self, x: Tensor, xf: Tensor, enc: Tensor, state: Any, lengths: Tensor | None,
                 teacher: Tensor | None) -> Tensor:
        B, L, _ = x.shape
        C = self.C
        mask = None
        if lengths is not None:
            mask = torch.arange(L, device=x.device)[None] < lengths.to(x.device)[:, None]  # (B, L)
        y_last = x[
            torch.arange(B, device=x.device),
            (lengths.to(x.device) - 1)
            if lengths is not None
            else torch.full((B,), L - 1, device=x.device),
            :C,
        ]  # (B, C)

        def step_head(d: Tensor) -> Tensor:  # (B, h, Hd) -> (B, h, C, K)
            if self.attention is not None:
                ctx, a = self.attention(d, enc, mask)
                self._att.append(a)
                d = torch.cat([d, ctx], -1)
            return self._params(self.head(self.drop(d)))

        self._att: list[Tensor] = []
        if not self.config.decoder_feedback:
            dec_in = torch.cat([xf, y_last[:, None].expand(B, self.H, C)], -1)  # (B, H, F+C)
            d, _ = self.decoder(dec_in, state)  # (B, H, Hd)
            p = step_head(d)
        elif teacher is not None:
            prev = torch.cat([y_last[:, None], teacher[:, :-1]], 1)  # (B, H, C)
            d, _ = self.decoder(torch.cat([xf, prev], -1), state)
            p = step_head(d)
        else:
            ps, prev = [], y_last
            for h in range(self.H):
                d, state = self.decoder(
                    torch.cat([xf[:, h], prev], -1)[:, None], state
                )  # (B, 1, Hd)
                ps.append(step_head(d))
                prev = self._point(ps[-1][:, 0])
            p = torch.cat(ps, 1)
        self.last_attention = torch.cat(self._att, 1).detach() if self._att else None  # (B, H, L)
        return p


# --------------------------------------------------------------------------- heads


def _sigma(raw: Tensor) -> Tensor:
    return F.softplus(raw) + 1e-3


def forecast_loss(p: Tensor, y: Tensor, config: ForecastModelConfig) -> Tensor:
    """Mean loss of head parameters ``p (..., C, K)`` against targets ``y (..., C)``.

    point: MSE / MAE / Huber(1).  quantile: pinball ``mean_q max(q e, (q - 1) e)``, ``e = y - y_q``.
    gaussian: negative log-likelihood ``log sigma + (y - mu)^2 / (2 sigma^2) + log(2 pi) / 2``.
    """
    if config.head == "point":
        fn = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.smooth_l1_loss}[config.loss]
        return fn(p[..., 0], y)
    if config.head == "quantile":
        q = torch.tensor(config.quantiles, dtype=p.dtype, device=p.device)  # (Q,)
        e = y[..., None] - p  # (..., C, Q)
        return torch.maximum(q * e, (q - 1) * e).mean()
    mu, sigma = p[..., 0], _sigma(p[..., 1])
    return (torch.log(sigma) + (y - mu) ** 2 / (2 * sigma**2)).mean() + 0.5 * math.log(2 * math.pi)


def point_forecast(p: Tensor, config: ForecastModelConfig) -> Tensor:
    """Point forecast (..., C): the value, the median (interpolated) or the Gaussian mean."""
    if config.head == "quantile":
        return quantile_forecast(p, config, [0.5]).squeeze(-1)
    return p[..., 0]


def quantile_forecast(p: Tensor, config: ForecastModelConfig, probs: list[float]) -> Tensor:
    """Forecast quantiles at ``probs`` -> (..., C, len(probs)).

    gaussian: ``mu + sigma Phi^{-1}(prob)``.  quantile: the learned quantiles sorted (no
    crossing), linearly interpolated between levels and held at the outermost ones.  point:
    the value for every prob.
    """
    if config.head == "point":
        return p[..., :1].expand(*p.shape[:-1], len(probs))
    if config.head == "gaussian":
        z = torch.special.ndtri(torch.tensor(probs, dtype=p.dtype, device=p.device))
        return p[..., :1] + _sigma(p[..., 1:2]) * z
    qs = np.asarray(config.quantiles, dtype=np.float64)
    srt = torch.sort(p, dim=-1).values
    cols = []
    for pr in probs:
        if pr <= qs[0]:
            cols.append(srt[..., 0])
        elif pr >= qs[-1]:
            cols.append(srt[..., -1])
        else:
            j = int(np.searchsorted(qs, pr))  # qs[j-1] < pr <= qs[j]
            w = (pr - qs[j - 1]) / (qs[j] - qs[j - 1])
            cols.append((1 - w) * srt[..., j - 1] + w * srt[..., j])
    return torch.stack(cols, -1)
