"""SegRNN: the lookback read as segments by any rnnkit cell, all output segments decoded at once.

After Lin et al. (2023), "SegRNN: Segment Recurrent Neural Network for Long-Term Time Series
Forecasting".  With ``w`` steps per segment, ``n = ceil(L / w)`` input and ``m = ceil(H / w)``
output segments, per window (independent channels: per window and channel, one shared
model; mixed: a segment holds the ``w`` steps of all ``C`` channels)::

    z      = norm(y)                                 last / mean / RevIN (forecast_norm)
    e_j    = ReLU(W_e z[jw : (j+1)w] + b_e)           j = 1..n, segment embedding (B*, n, d)
    h_n    = RNN(e_1..e_n)                           any rnnkit cell, the final state
    d_i    = RNN(q_i; h_n)                           i = 1..m, ONE step each, in parallel:
             q_i = [p_i ; c_k]  (position i, channel k embeddings, d/2 each)  or  q_i = p_i
    y_i    = W_o dropout(d_i) + b_o                  (w*K,) per output segment
    y      = norm^{-1}([y_1 .. y_m])[:H]

(SegRNN's "PMF", parallel multi-step forecasting: no output is fed back, so errors do not
accumulate and the decoder's ``m`` steps cost one batched step.) ``cell`` may also name a stack
of published blocks ("mamba", "griffin", "xlstm", "deep_lru";
:func:`~rnnkit.models.sequence.build_sequence_layer`): ``h_n`` is then every block's state and
``d_i`` one :meth:`~rnnkit.models.blocks.BlockStack.step` of ``q_i`` from it; that step holds
``m`` copies of every block's state (an mLSTM block's is ``nh dh^2`` numbers per row, a
local-attention block's its whole window of keys and values), so decoding a long horizon in a
large batch needs memory that a GRU's ``d`` per row does not. Where the layer is one layer, one
direction of torch.nn's GRU, LSTM or Elman RNN step (no regulariser acting, no projection),
that step is taken with its two products once per distinct operand: ``q_i`` has ``m`` (or
``C*m``) distinct values and ``h_n`` one per sequence, where the batched step would multiply
all ``N*m`` rows; the gates are then summed by broadcasting (:func:`separable_step`;
docs/pipelines/forecasting.md has its timing).

``highway=k`` adds LSTNet's linear component on the normalised window, shared by the channels:
``y += W_a z[L-k:] + b_a`` (``W_a``: (H, k); independent channels only). ``linear_ar`` makes the
model a hybrid: the forecast is ``A_c z_c + a_c + (norm^{-1}(y) - norm^{-1}(0))``, where ``A_c``
(H, L) and ``a_c`` (H,) are channel ``c``'s linear AR baseline (fitted by least squares on the
training split, :class:`~rnnkit.models.forecast_baselines.LinearAR`) unrolled into one affine
map (:meth:`SegRNN.set_linear_ar`; fixed buffers), and the recurrent part, its level removed,
models what the AR misses; its head starts at zero. ``ar_blend`` keeps SegRNN as it is and
blends its forecast ``y`` with the same AR map afterwards: ``A_c z_c + a_c + b_h (y - A_c z_c -
a_c)``, one weight ``b_h`` in [0, 1] per horizon step, fitted by least squares on held-out
windows after training (:meth:`SegRNN.fit_ar_blend`; ``b = 1``, SegRNN alone, until then).
With ``ar_blend_partner: nlinear`` the map is NLinear's instead, a level-free direct map fitted
in closed form on the training windows (:meth:`SegRNN.set_linear_map`). An
``L`` that ``w`` does not divide is padded at the front with the window's first value. The
encoder and decoder are the same layer, as in SegRNN.

Shapes: ``B`` windows, ``L`` lookback, ``H`` horizon, ``C`` channels, ``d`` hidden size,
``K`` head parameters.

Example::

    cfg = ForecastModelConfig(arch="segrnn", cell="gru", hidden_size=64, segment_length=24,
                              norm="revin", dropout=0.5)
    m = SegRNN(cfg, n_targets=7, horizon=96)
    m(torch.randn(8, 336, 7)).shape                 # (8, 96, 7, 1)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.models.forecast import ForecastModelConfig, head_size
from rnnkit.models.forecast_norm import InstanceNorm

__all__ = ["SegRNN", "repeat_state", "separable_mode", "separable_step"]


def repeat_state(state: Any, m: int, layer: nn.Module | None = None) -> Any:
    """Each batch row of a layer state repeated ``m`` times in place (rows ``b*m .. b*m+m-1``
    are copies of ``b``): tensors ``(layers, N, ...)`` -> ``(layers, N*m, ...)``, tuples
    element-wise; a block stack's state by its own layout (``layer.repeat_state``)."""
    if layer is not None and hasattr(layer, "repeat_state"):
        return layer.repeat_state(state, m)
    if isinstance(state, (tuple, list)):
        return type(state)(repeat_state(s, m) for s in state)
    return state.repeat_interleave(m, dim=1)


def separable_mode(layer: nn.Module) -> str | None:
    """``"GRU"``, ``"LSTM"``, ``"RNN_TANH"`` or ``"RNN_RELU"`` where ``layer`` is one layer, one
    direction of that torch.nn step (rnnkit's ``Recurrent`` with a native cell, no regulariser
    acting in its current mode, no projection), so that one step's input and state products can
    be taken apart (:func:`separable_step`); else None."""
    from rnnkit.kernels.torch_kernels import TORCH_KINDS
    from rnnkit.layers.recurrent import Recurrent

    if isinstance(layer, Recurrent):
        cell = layer.cells[0]
        mode = getattr(cell, "native_mode", None)
        # kernel_kind: a subclass of the cell that changes its step does not opt in
        if (mode is None or getattr(cell, "kernel_kind", None) not in TORCH_KINDS
                or layer.num_layers != 1 or layer.bidirectional
                or getattr(cell, "proj_size", 0) or layer.residual
                or layer.regularizers.torch_unsupported(layer.training) is not None
                or (layer.training and layer.regularizers.weight_drop)):
            return None
        return mode
    return None


def separable_step(layer: nn.Module, mode: str, gi: Tensor, h: Any, rows: tuple[int, ...]
                   ) -> Tensor:
    """One step of ``layer`` (:func:`separable_mode` ``mode``) for every pair of a state row and
    an input row, from the products taken once each.

    ``gi``: the input's projection ``x W_ih^T + b_ih`` broadcastable to ``(*rows, G)``; ``h``:
    the layer's state, ``(1, N, d)`` (LSTM: ``(h, c)``), reshaped to ``rows`` (its rows must
    broadcast against ``gi``'s).  Returns the new hidden state ``(*rows, d)`` (torch.nn's
    gate order and formulas).
    """
    w_hh = layer.weight_hh_l0
    b_hh = getattr(layer, "bias_hh_l0", None)
    if mode == "LSTM":
        h0, c0 = (s[0].reshape(*rows, -1) for s in h)
    else:
        h0 = (h[0] if isinstance(h, (tuple, list)) else h)[0].reshape(*rows, -1)
    gh = torch.nn.functional.linear(h0, w_hh, b_hh)
    if mode == "GRU":
        d = h0.size(-1)
        rz = torch.sigmoid(gi[..., :2 * d] + gh[..., :2 * d])
        r, z = rz[..., :d], rz[..., d:]
        n = torch.tanh(gi[..., 2 * d:] + r * gh[..., 2 * d:])
        return n + z * (h0 - n)
    if mode == "LSTM":
        d = h0.size(-1)
        g = gi + gh
        ifo = torch.sigmoid(torch.cat([g[..., :2 * d], g[..., 3 * d:]], -1))
        c = ifo[..., d:2 * d] * c0 + ifo[..., :d] * torch.tanh(g[..., 2 * d:3 * d])
        return ifo[..., 2 * d:] * torch.tanh(c)
    act = torch.tanh if mode == "RNN_TANH" else torch.relu
    return act(gi + gh)


def check_targets_only(model: str, n_past: int, n_future: int) -> None:
    """segrnn and dlinear read the target channels only: no covariates, no calendar."""
    if n_past or n_future:
        raise ValueError(
            f"model.arch={model!r} reads the targets only, but the data has {n_past} past and "
            f"{n_future} known-future covariates; set data.calendar: false and drop the "
            "covariates (or use model.arch: rnn)"
        )


class SegRNN(nn.Module):
    """Segment recurrent forecaster (see the module docstring).

    Args:
        config: :class:`~rnnkit.models.forecast.ForecastModelConfig` with ``arch="segrnn"``:
            ``cell``, ``hidden_size`` (d), ``num_layers``, ``dropout`` (before the output map;
            also between stacked layers, or a block stack's residual dropout, from 2 on),
            ``segment_length`` (w), ``channels``, ``channel_embedding``, ``norm``,
            ``revin_affine``, ``head`` ("point" or "quantile"; "gaussian" with norm none, last
            or mean), ``highway``, ``extras`` (for ``build_layer``, or the blocks' options).
        n_targets: C.  n_past / n_future: must be 0.  horizon: H.  input_length: L (needed by
            ``linear_ar`` and ``ar_blend``).

    Forward:
        x: (B, L, C).  xf, lengths, y_teacher: accepted for the common interface; ``lengths``
        must be None (full windows).
    Returns:
        (B, H, C, K) head parameters.
    """

    def __init__(self, config: ForecastModelConfig, *, n_targets: int, n_past: int = 0,
                 n_future: int = 0, horizon: int = 1, input_length: int | None = None):
        super().__init__()
        c = config
        check_targets_only("segrnn", n_past, n_future)
        if c.segment_length < 1 or c.hidden_size < 2 or c.num_layers < 1:
            raise ValueError(
                f"model.segment_length={c.segment_length}, model.hidden_size={c.hidden_size}, "
                f"model.num_layers={c.num_layers}: expected w >= 1, d >= 2, layers >= 1"
            )
        if not 0.0 <= c.dropout < 1.0:
            raise ValueError(f"model.dropout={c.dropout}: expected a probability in [0, 1)")
        if c.head == "gaussian" and c.norm == "revin":
            raise ValueError("model.head='gaussian' with model.norm='revin' is not supported: "
                             "use head 'quantile', or norm 'last' / 'mean'")
        if c.extras.get("bidirectional"):
            raise ValueError("model.extras.bidirectional: forecasting layers run forward only")
        from rnnkit.models.sequence import build_sequence_layer

        self.config, self.C, self.P, self.F, self.H = c, n_targets, 0, 0, horizon
        self.K, self.w, d = head_size(c), c.segment_length, c.hidden_size
        self.m = math.ceil(horizon / self.w)
        self.independent = c.channels == "independent"
        width = self.w if self.independent else self.w * n_targets  # values per segment
        self.norm = InstanceNorm(c.norm, n_targets, affine=c.revin_affine)
        self.embed = nn.Linear(width, d)
        # a cell stacks through build_layer (dropout between its layers); a block name builds
        # a stack of those blocks, model.dropout its residual dropout from 2 blocks on
        self.encoder = build_sequence_layer(c.cell, d, d, num_layers=c.num_layers,
                                            dropout=c.dropout if c.num_layers > 1 else 0.0,
                                            batch_first=True, **c.extras)
        if self.independent and c.channel_embedding:
            self.pos = nn.Parameter(torch.randn(self.m, d - d // 2))
            self.chan = nn.Parameter(torch.randn(n_targets, d // 2))
        else:
            self.pos = nn.Parameter(torch.randn(self.m, d))
            self.chan = None
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(d, width * self.K)
        if c.highway < 0 or (c.highway and not self.independent):
            raise ValueError(f"model.highway={c.highway}: expected 0 or a number of input steps "
                             "(with channels 'independent')")
        self.highway = nn.Linear(c.highway, horizon) if c.highway else None
        if c.linear_ar and c.ar_blend:
            raise ValueError("model.linear_ar and model.ar_blend: choose one way to combine the "
                             "linear AR with SegRNN")
        if c.linear_ar and c.head == "gaussian":
            raise ValueError("model.linear_ar with model.head='gaussian' is not supported: "
                             "use head 'point' or 'quantile'")
        if c.ar_blend_partner != "linear_ar" and not c.ar_blend:
            raise ValueError(f"model.ar_blend_partner={c.ar_blend_partner!r} needs "
                             "model.ar_blend: true (it names what SegRNN is blended with)")
        if c.ar_blend_weights != "per_step" and not c.ar_blend:
            raise ValueError(f"model.ar_blend_weights={c.ar_blend_weights!r} needs "
                             "model.ar_blend: true (it says how the blend's weights are fitted)")
        if c.ar_blend and c.head != "point":
            raise ValueError(f"model.ar_blend with model.head={c.head!r} is not supported: it "
                             "blends point forecasts (use head 'point')")
        if c.linear_ar or c.ar_blend:
            key = "linear_ar" if c.linear_ar else "ar_blend"
            if not input_length:
                raise ValueError(f"model.{key}: the model needs input_length (L)")
            # channel c's AR forecast as one affine map of the window (set_linear_ar fills them)
            self.register_buffer("ar_map", torch.zeros(n_targets, horizon, input_length))
            self.register_buffer("ar_bias", torch.zeros(n_targets, horizon))
        if c.linear_ar:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        if c.ar_blend:  # SegRNN's weight per horizon step; 1 (SegRNN alone) until fitted
            self.register_buffer("blend", torch.ones(horizon))

    @torch.no_grad()
    def set_linear_ar(self, coef: Any) -> None:
        """The linear AR's coefficients ``coef`` (C, p + 1) (lags t-p..t-1, then the intercept;
        :attr:`LinearAR.coef`) unrolled over the ``H`` steps: its iterated forecast is the
        affine map ``ar_map (C, H, L) @ window + ar_bias (C, H)`` (the first ``L - p`` lags
        weigh 0), computed in float64."""
        import numpy as np

        coef = np.asarray(coef, dtype=np.float64)
        C, p = coef.shape[0], coef.shape[1] - 1
        has_ar = self.config.linear_ar or self.config.ar_blend
        if not has_ar or C != self.C or p > self.ar_map.size(-1):
            raise ValueError(
                f"set_linear_ar: an AR({p}) for {C} channels; the model has {self.C} channels "
                f"and windows of {self.ar_map.size(-1) if has_ar else '?'} steps "
                "(model.linear_ar or model.ar_blend must be true, and data.ar_order at most "
                "data.input_length)")
        A = np.zeros((C, self.H, self.ar_map.size(-1)))  # lags beyond p stay 0
        for k in range(C):
            rows = np.zeros((p + self.H, p + 1))  # each value as affine in (window, 1)
            rows[:p, :p] = np.eye(p)
            for h in range(self.H):
                rows[p + h] = coef[k, :p] @ rows[h:h + p]
                rows[p + h, p] += coef[k, p]
            A[k, :, A.shape[-1] - p:] = rows[p:, :p]
            self.ar_bias[k] = torch.from_numpy(rows[p:, p]).to(self.ar_bias)
        self.ar_map.copy_(torch.from_numpy(A))

    @torch.no_grad()
    def set_linear_map(self, A: Any, a: Any) -> None:
        """Any affine forecaster of the window in the AR's place: ``A`` (H, L) or (C, H, L)
        and ``a`` (H,) or (C, H), shared by the channels when given without ``C`` (``ar_blend``
        with ``ar_blend_partner: nlinear``: :meth:`NLinear.affine
        <rnnkit.models.forecast_baselines.NLinear.affine>`)."""
        has_ar = self.config.linear_ar or self.config.ar_blend
        A = torch.as_tensor(A, dtype=torch.float64)
        a = torch.as_tensor(a, dtype=torch.float64)
        if not has_ar:
            raise ValueError("set_linear_map: the model was built without model.linear_ar or "
                             "model.ar_blend")
        A = A.expand(self.C, *A.shape[-2:]) if A.dim() == 2 else A
        a = a.expand(self.C, a.shape[-1]) if a.dim() == 1 else a
        if A.shape != self.ar_map.shape or a.shape != self.ar_bias.shape:
            raise ValueError(f"set_linear_map: a map {tuple(A.shape)} and intercept "
                             f"{tuple(a.shape)}; expected {tuple(self.ar_map.shape[-2:])} and "
                             f"({self.H},), with or without {self.C} channels first")
        self.ar_map.copy_(A)
        self.ar_bias.copy_(a)

    def ar_forecast(self, x: Tensor) -> Tensor:
        """The linear AR's forecast of each window: (B, L, C) -> (B, H, C) (``linear_ar`` or
        ``ar_blend`` models, after :meth:`set_linear_ar`)."""
        if x.size(1) != self.ar_map.size(-1):
            key = "linear_ar" if self.config.linear_ar else "ar_blend"
            raise ValueError(f"SegRNN: model.{key} was built for windows of "
                             f"{self.ar_map.size(-1)} steps; got {x.size(1)}")
        return torch.einsum("blc,chl->bhc", x, self.ar_map) + self.ar_bias.T

    @torch.no_grad()
    def fit_ar_blend(self, batches: Any, *, weights: str | None = None) -> Tensor:
        """Fit ``blend`` (``ar_blend``): for each horizon step ``h`` the ``b`` in [0, 1] that
        minimises the squared error of ``AR + b (SegRNN - AR)`` over ``batches``, an iterable
        of ``(x (B, L, C), y (B, H, C))`` held-out windows in the model's space (least squares
        in float64, then clipped).  ``weights`` (default ``model.ar_blend_weights``):
        "per_step" as above; "shared", one ``b`` for every step, the least squares pooled over
        the steps; "equal", ``b = 0.5`` (``batches`` is not read).  Idempotent: SegRNN's own
        forecast is recomputed with ``b = 1``.  Returns the weights (H,)."""
        if not self.config.ar_blend:
            raise ValueError("fit_ar_blend: the model was built without model.ar_blend")
        weights = weights or self.config.ar_blend_weights
        if weights not in ("per_step", "shared", "equal"):
            raise ValueError(f"fit_ar_blend: weights={weights!r}: expected 'per_step', "
                             "'shared' or 'equal'")
        if weights == "equal":
            self.blend.fill_(0.5)
            return self.blend.clone()
        was = self.training
        self.eval()
        self.blend.fill_(1.0)
        num = torch.zeros(self.H, dtype=torch.float64)
        den = torch.zeros(self.H, dtype=torch.float64)
        n = 0
        for x, y in batches:
            x = x.to(self.blend.device)
            base = self.ar_forecast(x).double()  # (B, H, C)
            gap = self(x)[..., 0].double() - base  # SegRNN - AR
            num += ((y.to(gap) - base) * gap).sum((0, 2)).cpu()
            den += (gap * gap).sum((0, 2)).cpu()
            n += x.size(0)
        self.train(was)
        if n == 0:
            raise ValueError("fit_ar_blend: no windows to fit the blend on")
        if weights == "shared":
            num, den = num.sum().expand(self.H), den.sum().expand(self.H)
        b = torch.where(den > 0, num / den.clamp_min(1e-300), torch.ones_like(num))
        self.blend.copy_(b.clamp(0.0, 1.0).to(self.blend))
        return self.blend.clone()

    def _query_table(self) -> Tensor:
        """The decoder's distinct inputs: (C, m, d) with channel embeddings, else (m, d)."""
        if self.chan is None:
            return self.pos
        C, m = self.C, self.m
        return torch.cat([self.pos[None].expand(C, m, -1),
                          self.chan[:, None].expand(C, m, -1)], -1)

    def _decode(self, h: Any, B: int) -> Tensor:
        """The decoder's one step for every (sequence, output segment): (N*m, d), rows
        ``n*m + i``."""
        mode = None if self.config.decoder_step == "batched" else separable_mode(self.encoder)
        if mode is None:  # any other layer (or asked for): the batched step over all N*m rows
            out, _ = self.encoder(self._queries(B), repeat_state(h, self.m, self.encoder))
            # (N*m, 1, d)
            return out[:, 0]
        q = self._query_table()
        gi = torch.nn.functional.linear(q, self.encoder.weight_ih_l0,
                                        getattr(self.encoder, "bias_ih_l0", None))
        if self.chan is None:  # gi (m, G); state rows n = 0..N-1
            rows = ((h[0] if isinstance(h, (tuple, list)) else h).size(1), 1)
        else:  # gi (C, m, G); state rows n = b*C + c
            rows = (B, self.C, 1)
        out = separable_step(self.encoder, mode, gi, h, rows)  # (..., m, d)
        return out.reshape(-1, out.size(-1))

    def _queries(self, B: int) -> Tensor:
        """Decoder inputs, one per (sequence, output segment): (N*m, 1, d), N = B*C or B."""
        q = self._query_table()
        if self.chan is None:
            n = B * self.C if self.independent else B
            return q.repeat(n, 1)[:, None]  # (n*m, 1, d)
        C, m = self.C, self.m
        return q.reshape(1, C * m, -1).expand(B, -1, -1).reshape(B * C * m, 1, -1)

    def forward(self, x: Tensor, xf: Tensor | None = None, lengths: Tensor | None = None,
                y_teacher: Tensor | None = None) -> Tensor:
        B, L, I = x.shape
        C, w, m, K = self.C, self.w, self.m, self.K
        if I != C:
            raise ValueError(f"SegRNN: x has {I} features per step; expected the {C} targets")
        if lengths is not None and bool((lengths.to(x.device) < L).any()):
            raise ValueError("SegRNN: padded windows (lengths < L) are not supported")
        z, stats = self.norm(x)  # (B, L, C)
        x_n = z
        pad = -L % w
        if pad:
            z = torch.cat([z[:, :1].expand(B, pad, C), z], 1)  # (B, n*w, C)
        n = z.size(1) // w
        if self.independent:
            u = z.transpose(1, 2).reshape(B * C, n, w)  # (B*C, n, w)
        else:
            u = z.reshape(B, n, w * C)  # (B, n, w*C): a segment's steps, channels inner
        _, h = self.encoder(torch.relu(self.embed(u)))  # a layer's (layers, N, d), or blocks
        y = self.head(self.drop(self._decode(h, B)))  # (N*m, width*K)
        if self.independent:
            # (B*C*m, w*K) -> (B, C, m*w, K) -> (B, H, C, K)
            p = y.reshape(B, C, m * w, K)[:, :, :self.H].transpose(1, 2)
        else:
            # (B*m, w*C*K) -> (B, m*w, C, K) -> (B, H, C, K)
            p = y.reshape(B, m * w, C, K)[:, :self.H]
        if self.highway is not None:
            k = self.config.highway
            if L < k:
                raise ValueError(f"model.highway={k} needs input windows of at least {k} steps")
            ar = self.highway(x_n[:, -k:].transpose(1, 2)).transpose(1, 2)  # (B, H, C)
            p = p + ar[..., None] if self.config.head == "quantile" else torch.cat(
                [p[..., :1] + ar[..., None], p[..., 1:]], -1)
        if self.config.linear_ar:
            base = self.ar_forecast(x)  # (B, H, C)
            res = self.norm.inverse(p, stats) - self.norm.inverse(torch.zeros_like(p), stats)
            return res + base[..., None]
        if self.config.head == "gaussian" and stats is not None:
            return torch.cat([self.norm.inverse(p[..., :1], stats), p[..., 1:]], -1)
        if self.config.ar_blend:
            base = self.ar_forecast(x)[..., None]  # (B, H, C, 1)
            return base + self.blend[:, None, None] * (self.norm.inverse(p, stats) - base)
        return self.norm.inverse(p, stats)
