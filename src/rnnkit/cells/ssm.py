"""Mamba's selective state-space recurrence, S6 (Gu & Dao 2023, "Mamba", Algorithm 2).

Each of the H channels carries its own N-dimensional state; the step size ``delta`` and the
matrices ``B``, ``C`` read the input (the selection), ``A`` is a learned diagonal:

    k_t     = W x_t                  blocks [u, delta, B, C]: H, H, N, N  (value="project")
                                     blocks [delta, B, C]:    H, N, N     (value="identity")
    u_t     = k^u_t (+ b_u)  or  x_t (value="identity")              (B, H) the SSM's input
    delta_t = softplus(k^delta_t (+ b_delta) + dt_bias)   (B, H)
    A       = -exp(A_log)                             (H, N)
    h_t[d, n] = exp(delta_t[d] A[d, n]) h_{t-1}[d, n] + delta_t[d] B_t[n] u_t[d]
    y_t[d]    = sum_n C_t[n] h_t[d, n] + D[d] u_t[d]

``A`` is discretised by zero-order hold and ``B`` by Euler's rule (``delta B``), as Mamba's
code does. The recurrence is linear in ``h`` with coefficients that read only the input, so
all T steps run at once (:func:`rnnkit.cells.selective.selective_scan`: chunks whose states
are recomputed in the backward, never the whole (T, B, H, N) state), and one step at a time
for streaming; the two agree.

Parameters (per layer and direction, in this order), ``value="project"`` (the default):
``weight_ih (2H + 2N, I)`` with row blocks [u, delta, B, C]; ``bias (2H,)`` for the u and
delta blocks only (B and C have none; dropped by ``bias=False``); ``dt_bias (H,)``, always
present (Mamba's ``dt_proj`` bias: it sets each channel's timescale; with ``bias=True`` the
delta block's bias adds to it, two parameters where one would do); ``A_log (H, N)``;
``D (H,)``, the skip. With ``value="identity"`` (needs I == H) the cell does not project its
input: ``u_t = x_t``, ``weight_ih (H + 2N, I)`` has row blocks [delta, B, C] and ``bias (H,)``
is for delta only. That is Mamba's SSM, which reads the convolved, SiLU'd branch of its
block directly (:class:`rnnkit.models.blocks.MambaBlock`, whose S6 has ``bias=False``: its
``dt_bias`` is ``dt_proj``'s bias); ``project`` then carries ``x`` through as ``u``, so
``step`` and ``scan`` read the layout ``[u, delta, B, C]`` either way.

The state is one tensor, ``h`` flattened to (B, H*N) (unit ``d * N + n``); the output is
``y`` (B, H), not the state.

Initialisation, Mamba's: ``A_log[d, n] = log(n + 1)`` (S4D-real), ``D = 1``, ``dt_bias =
softplus^-1(dt)`` with ``dt = exp(U(log dt_min, log dt_max))`` floored at 1e-4,
``weight_ih ~ U(-1/sqrt(I), 1/sqrt(I))`` (nn.Linear's), ``bias = 0``.

Departures from Mamba: the projection to ``delta`` is full rank, ``(H, I)`` (Mamba's is
``dt_proj @ x_proj[:dt_rank]``, of rank ``dt_rank = ceil(D_model / 16)``); with the default
``value="project"`` the cell projects its own ``u`` so that it stacks like any layer, and the
block around the SSM (``in_proj``, the causal convolution, SiLU, the gate ``z``,
``out_proj``) is :class:`rnnkit.models.blocks.MambaBlock`'s, not the cell's.

Shapes: ``T`` time, ``B`` batch, ``I`` input, ``H`` hidden (the channels and the output),
``N`` state size per channel.

Example::

    >>> layer = Recurrent(S6Cell, 8, 16, num_layers=2, state_size=4)
    >>> out, h = layer(torch.randn(5, 3, 8))
    >>> out.shape, h.shape
    (torch.Size([5, 3, 16]), torch.Size([2, 3, 64]))
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Cell, Params, State, check_int, float32_at_least
from .lru import _check_value
from .selective import selective_scan

__all__ = ["S6Cell"]

DT_FLOOR = 1e-4  # Mamba's dt_init_floor


def _check_dt(dt_min, dt_max) -> tuple[float, float]:
    """``(dt_min, dt_max)`` as floats, finite with ``0 < dt_min < dt_max``."""
    for name, v in (("dt_min", dt_min), ("dt_max", dt_max)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name}: expected a finite number, got {v!r}")
    if not 0 < dt_min < dt_max:
        raise ValueError(f"dt_min, dt_max: expected 0 < dt_min < dt_max, got dt_min={dt_min}, "
                         f"dt_max={dt_max}")
    return float(dt_min), float(dt_max)


class S6Cell(Cell):
    """S6 step ``h = exp(delta A) h + delta B u``, ``y = C h + D u``; state ``h`` (B, H*N).

    Args (keyword-only): ``state_size`` N (16, Mamba's ``d_state``); ``dt_min``, ``dt_max``:
    the range of the initial step sizes (0.001 and 0.1, Mamba's); ``value``: "project"
    (``u = W_u x + b_u``, the default) or "identity" (``u = x``, Mamba's; I == H).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 state_size: int = 16, dt_min: float = 0.001, dt_max: float = 0.1,
                 value: str = "project"):
        super().__init__(input_size, hidden_size, bias)
        N = check_int("state_size", state_size)
        if N <= 0:
            raise ValueError(f"state_size: expected a positive int, got {N}")
        self.state_size = N
        self.dt_min, self.dt_max = _check_dt(dt_min, dt_max)
        self.value = _check_value(value, input_size, hidden_size)

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size * self.state_size,)

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def param_shapes(self):
        H, I, N = self.hidden_size, self.input_size, self.state_size
        U = H if self.value == "project" else 0  # rows (and biases) of u
        shapes = {"weight_ih": (U + H + 2 * N, I)}
        if self.bias:
            shapes["bias"] = (U + H,)
        return shapes | {"dt_bias": (H,), "A_log": (H, N), "D": (H,)}

    def project(self, x: Tensor, p: Params) -> Tensor:
        """(T, B, I) -> (T, B, 2H + 2N): ``[u, delta, B_t, C_t]``, delta softplus'ed; ``u = x``
        for "identity"."""
        H, N = self.hidden_size, self.state_size
        k = F.linear(x, p["weight_ih"])  # (T, B, [H +] H + 2N)
        if self.value == "project":
            u, k_delta, BC = k.split([H, H, 2 * N], dim=-1)
            if "bias" in p:  # u and delta only
                b_u, b_delta = p["bias"].chunk(2)
                u, k_delta = u + b_u, k_delta + b_delta
        else:
            u, (k_delta, BC) = x, k.split([H, 2 * N], dim=-1)
            if "bias" in p:  # delta only
                k_delta = k_delta + p["bias"]
        return torch.cat([u, F.softplus(k_delta + p["dt_bias"]), BC], dim=-1)

    def _split(self, xp: Tensor):
        H, N = self.hidden_size, self.state_size
        return xp.split([H, H, N, N], dim=-1)  # u, delta (.., H); B_t, C_t (.., N)

    def step(self, x_t: Tensor, state: State, p: Params):
        u, delta, Bt, Ct = self._split(x_t)  # (B, H), (B, H), (B, N), (B, N)
        A = -torch.exp(p["A_log"])  # (H, N)
        h = state[0].view(-1, self.hidden_size, self.state_size)  # (B, H*N) -> (B, H, N)
        h = torch.exp(delta.unsqueeze(-1) * A) * h + (delta * u).unsqueeze(-1) * Bt.unsqueeze(1)
        y = (h @ Ct.unsqueeze(-1)).squeeze(-1) + p["D"] * u  # (B, H, N) @ (B, N, 1) -> (B, H)
        return y, (h.flatten(1),)  # (B, H, N) -> (B, H*N)

    def scan(self, xp: Tensor, state: State, p: Params, mask: Tensor | None = None):
        """All T steps at once: (T, B, 2H + 2N) -> ys (T, B, H) and the last state."""
        dt = xp.dtype  # a half-precision scan runs in float32, as the LRU's
        xp = float32_at_least(xp)
        if mask is not None:  # delta = 0 and u = 0 keep the state; B = C = 0: NaN stays out
            xp = xp.masked_fill(~mask, 0.0)
        u, delta, Bt, Ct = self._split(xp)
        B, H, N = u.shape[1], self.hidden_size, self.state_size
        A = -torch.exp(p["A_log"].to(u.dtype))  # (H, N)
        y, h = selective_scan(u, delta, A, Bt, Ct, state[0].to(u.dtype).view(B, H, N))
        y = (y + p["D"].to(u.dtype) * u).to(dt)
        if mask is not None:
            y = y.masked_fill(~mask, 0.0)
        return y, (h.reshape(B, H * N).to(dt),)

    def reset_parameters(self, p: Params) -> None:
        """Mamba's initialisation (``A_log``, ``D``, ``dt_bias``); ``nn.Linear``'s for
        ``weight_ih``; zero ``bias``."""
        H, N, I = self.hidden_size, self.state_size, self.input_size
        d64 = dict(dtype=torch.float64, device=p["dt_bias"].device)
        lo, hi = math.log(self.dt_min), math.log(self.dt_max)
        dt = torch.exp(torch.rand(H, **d64) * (hi - lo) + lo).clamp_min(DT_FLOOR)
        k = 1.0 / math.sqrt(I)
        with torch.no_grad():
            p["weight_ih"].uniform_(-k, k)
            if "bias" in p:
                p["bias"].zero_()
            p["dt_bias"].copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
            p["A_log"].copy_(torch.log(torch.arange(1, N + 1, **d64)).expand(H, N))
            p["D"].fill_(1.0)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}, state_size={self.state_size}"
        return s + (", value='identity'" if self.value == "identity" else "")
