"""Diagonal linear recurrences: the LRU and Griffin's RG-LRU.

Both cells update each state unit on its own, linearly, with coefficients that read only
the input,

    h_t = a_t * h_{t-1} + b_t,

so all T steps run at once as a parallel scan (:mod:`rnnkit.cells.scan`), and one step at a
time for streaming; the two agree.

**LRU** (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for Long
Sequences"): a complex diagonal state ``s`` (N units), a fixed (time-invariant) ``lambda``,

    lambda = exp(-exp(nu_log) + i exp(theta_log))      |lambda| < 1 for any nu_log
    gamma  = exp(gamma_log)                             (init sqrt(1 - |lambda|^2))
    s_t = lambda * s_{t-1} + gamma * (B x_t)            B = B_re + i B_im, complex (N, I)
    y_t = Re(C s_t) + D x_t (+ bias)

Parameters: ``weight_ih (2N, I)`` stacks B_re over B_im; ``nu_log``, ``theta_log``,
``gamma_log`` (N,); ``weight_out (H, 2N)`` maps ``[Re s; Im s]`` to the output (this is
``Re(C s)`` with ``C_re = W[:, :N]``, ``C_im = -W[:, N:]``); ``weight_skip`` the paper's
diagonal ``D`` (H,) when I == H, else a matrix (H, I) (departure: the paper's layer keeps
the width, a stacked or bidirectional layer does not); ``bias (H,)``, zero at first
(departure: the paper has none; ``bias=False`` drops it). The state is ``(Re s, Im s)``,
each (B, N), and the output ``y`` (B, H). Initialisation is the paper's: ``|lambda|``
uniform on the ring ``[r_min, r_max]``, phase uniform in ``[0, max_phase]``, ``B`` and ``C``
Glorot-like Gaussians, ``D ~ N(0, 1)``. Complex numbers are carried as real pairs, so every
dtype, export and the fused loop see real tensors only.

**RG-LRU** (De et al. 2024, "Griffin"): a real diagonal state gated by the input,

    k_t = W x_t + b                    blocks (gate_a, gate_x[, value]), all T at once
    r_t = sigmoid(k^a_t)   i_t = sigmoid(k^x_t)
    v_t = k^v_t  (value="project")  or  x_t  (value="identity")
    log a_t = -c * r_t * softplus(a_param)          c = 8
    h_t = a_t * h_{t-1} + sqrt(1 - a_t^2) * (i_t * v_t)

Parameters: ``weight_ih (3H, I)`` with row blocks [gate_a, gate_x, value] and ``bias (3H,)``
(``value="project"``, the default), or ``weight_ih (2H, I)`` with blocks [gate_a, gate_x] and
``bias (2H,)`` (``value="identity"``, which needs I == H); ``a_param (H,)`` initialised as
Griffin's code does (``rnn_param_init`` in google-deepmind/recurrentgemma): the base decay
``a = exp(-softplus(a_param))`` has ``a^2`` uniform on ``[r_min^2, r_max^2]`` =
``[0.9^2, 0.999^2]``, so a fully open gate decays by ``a^c``, in ``[0.43, 0.992]`` at
``c = 8`` (the paper's sentence, "a^c uniformly distributed between 0.9 and 0.999", reads
otherwise; rnnkit follows the code). ``value="identity"`` is Griffin's
RG-LRU: its recurrent block (:class:`rnnkit.models.blocks.GriffinBlock`) projects and
convolves the input, and the RG-LRU reads that branch directly, ``v_t = x_t``;
``project`` then carries ``x`` through (``[k^a, k^x, x]``, the layout ``step`` and ``scan``
read either way). ``value="project"`` lets the cell project its own value so that it stacks
like any layer. Departures: dense gate weights (Griffin's are block-diagonal, one block per
head); no reset of the state at a document boundary (Griffin's code also sets the factor
``sqrt(1 - a^2)`` to 1 at a sequence's first step: here every step is scaled, and a
sequence starts from ``hx``, zero by default). ``sqrt(1 - a^2)`` is computed as
``sqrt(max(-expm1(2 log a), 2.5e-7))``: its derivative is at most 1000, Griffin's bound, and
the value changes only where ``a`` is within 1.3e-7 of 1 (float32's spacing there). State
``(h,)``, output ``h``.

Shapes: ``T`` time, ``B`` batch, ``I`` input, ``H`` hidden (the output), ``N`` LRU state.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Cell, Params, State, check_int, float32_at_least
from .scan import Pair, complex_recurrence, linear_recurrence

__all__ = ["LRUCell", "RGLRUCell"]

def _check_ring(r_min, r_max, open_ends: bool) -> tuple[float, float]:
    """``(r_min, r_max)`` as floats, ``0 <= r_min < r_max <= 1`` (``0 < .. < 1``: open)."""
    for name, v in (("r_min", r_min), ("r_max", r_max)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{name}: expected a finite number, got {v!r}")
    ok = 0 < r_min < r_max < 1 if open_ends else 0 <= r_min < r_max <= 1
    if not ok:
        what = "0 < r_min < r_max < 1" if open_ends else "0 <= r_min < r_max <= 1"
        raise ValueError(f"r_min, r_max: expected {what}, got r_min={r_min}, r_max={r_max}")
    return float(r_min), float(r_max)


def _positive(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: expected a positive finite number, got {v!r}")
    return float(v)


def _check_value(value, input_size: int, hidden_size: int) -> str:
    """``value`` ("project" or "identity"); "identity" passes ``x`` on as the value: I == H."""
    if value not in ("project", "identity"):
        raise ValueError(f"value: expected 'project' or 'identity', got {value!r}")
    if value == "identity" and input_size != hidden_size:
        raise ValueError(f"value='identity' reads x as the value, so it needs input_size == "
                         f"hidden_size, got input_size={input_size}, hidden_size={hidden_size} "
                         "(a layer above a bidirectional one reads 2 * hidden_size)")
    return value


class LRUCell(Cell):
    """LRU step ``s = lambda s + gamma B x``, ``y = Re(C s) + D x``; state ``(Re s, Im s)``.

    Args (keyword-only): ``state_size`` N (default ``hidden_size``); ``r_min``, ``r_max``:
    the ring of ``|lambda|`` at initialisation (0 and 1, the paper's defaults; 0.9 and 0.999
    for its long-range tasks); ``max_phase``: phases drawn in ``[0, max_phase]`` (2 pi).
    """

    num_gates = 2  # weight_ih's row blocks: B_re, B_im (for init_ih)
    #: why zoneout does not apply (read by the layer's regularisers)
    zoneout_refused = ("the state is one complex number per unit, carried as (Re s, Im s); "
                       "zoning them out apart would keep parts of different steps")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 state_size: int | None = None, r_min: float = 0.0, r_max: float = 1.0,
                 max_phase: float = 2 * math.pi):
        super().__init__(input_size, hidden_size, bias)
        N = hidden_size if state_size is None else check_int("state_size", state_size)
        if N <= 0:
            raise ValueError(f"state_size: expected a positive int, got {N}")
        self.state_size = N
        self.r_min, self.r_max = _check_ring(r_min, r_max, open_ends=False)
        self.max_phase = _positive("max_phase", max_phase)
        self.diagonal_skip = input_size == hidden_size  # the paper's D; else a matrix

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return (self.state_size, self.state_size)

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def param_shapes(self):
        H, I, N = self.hidden_size, self.input_size, self.state_size
        shapes = {"weight_ih": (2 * N, I), "nu_log": (N,), "theta_log": (N,),
                  "gamma_log": (N,), "weight_out": (H, 2 * N),
                  "weight_skip": (H,) if self.diagonal_skip else (H, I)}
        if self.bias:
            shapes["bias"] = (H,)
        return shapes

    @staticmethod
    def lam(p: Params) -> Pair:
        """``lambda`` as (re, im), each (N,), in float32 at least (in bfloat16 ``|lambda|``
        rounded past 1 for ``r_max = 0.999``)."""
        nu, theta = float32_at_least(p["nu_log"]), float32_at_least(p["theta_log"])
        mod, arg = torch.exp(-torch.exp(nu)), torch.exp(theta)
        return mod * torch.cos(arg), mod * torch.sin(arg)

    def project(self, x: Tensor, p: Params) -> Tensor:
        """(T, B, I) -> (T, B, 2N + H): ``gamma * B x`` (re, im) and ``D x + bias``."""
        gamma = torch.exp(p["gamma_log"]).repeat(2)  # (2N,): the same for re and im
        u = F.linear(x, p["weight_ih"]) * gamma
        w = p["weight_skip"]
        skip = x * w if w.dim() == 1 else F.linear(x, w)
        if "bias" in p:
            skip = skip + p["bias"]
        return torch.cat([u, skip], dim=-1)

    def _split(self, xp: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        N = self.state_size
        return xp[..., :N], xp[..., N:2 * N], xp[..., 2 * N:]

    def step(self, x_t: Tensor, state: State, p: Params):
        dt = x_t.dtype  # half precision: the step in float32, the state stored in dt
        u_re, u_im, skip = self._split(float32_at_least(x_t))
        s_re, s_im = (s.to(u_re.dtype) for s in state)
        l_re, l_im = self.lam(p)
        s_re, s_im = l_re * s_re - l_im * s_im + u_re, l_re * s_im + l_im * s_re + u_im
        y = F.linear(torch.cat([s_re, s_im], dim=-1), p["weight_out"].to(u_re.dtype)) + skip
        return y.to(dt), (s_re.to(dt), s_im.to(dt))

    def scan(self, xp: Tensor, state: State, p: Params, mask: Tensor | None = None):
        """All T steps at once: (T, B, 2N + H) -> ys (T, B, H) and the last state."""
        dt = xp.dtype  # a half-precision scan runs in float32, as minGRU's
        u_re, u_im, skip = self._split(float32_at_least(xp))
        lam = tuple(v.to(u_re.dtype) for v in self.lam(p))
        s_re, s_im = complex_recurrence(lam, (u_re, u_im),
                                        tuple(s.to(u_re.dtype) for s in state), mask)
        y = F.linear(torch.cat([s_re, s_im], dim=-1), p["weight_out"].to(u_re.dtype)) + skip
        y = y.to(dt)
        if mask is not None:
            y = y.masked_fill(~mask, 0.0)
        return y, (s_re[-1].to(dt), s_im[-1].to(dt))

    def reset_parameters(self, p: Params) -> None:
        """The paper's ring initialisation (its appendix A), drawn from torch's RNG."""
        N, I = self.state_size, self.input_size
        d64 = dict(dtype=torch.float64, device=p["nu_log"].device)
        u1, u2 = torch.rand(N, **d64), torch.rand(N, **d64)
        r2 = (u1 * (self.r_max ** 2 - self.r_min ** 2) + self.r_min ** 2).clamp(1e-12, 1 - 1e-6)
        nu = -0.5 * torch.log(r2)  # |lambda| = exp(-nu) = sqrt(r2)
        with torch.no_grad():
            p["nu_log"].copy_(torch.log(nu))
            p["theta_log"].copy_(torch.log((self.max_phase * u2).clamp_min(1e-12)))
            p["gamma_log"].copy_(0.5 * torch.log(-torch.expm1(-2 * nu)))  # sqrt(1 - |l|^2)
            p["weight_ih"].normal_(0.0, 1.0 / math.sqrt(2 * I))
            p["weight_out"].normal_(0.0, 1.0 / math.sqrt(N))
            if self.diagonal_skip:
                p["weight_skip"].normal_()
            else:
                p["weight_skip"].uniform_(-1 / math.sqrt(I), 1 / math.sqrt(I))  # nn.Linear's
            if "bias" in p:
                p["bias"].zero_()

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.state_size != self.hidden_size:
            s += f", state_size={self.state_size}"
        return s + f", r_min={self.r_min}, r_max={self.r_max}"


#: floor of ``1 - a^2`` under the square root: ``d sqrt(q) / dq <= 1000`` (Griffin's bound)
SQRT_FLOOR = 2.5e-7


class RGLRUCell(Cell):
    """RG-LRU step ``h = a h + sqrt(1 - a^2) (i * v)``, ``a = exp(-c r softplus(a_param))``.

    Args (keyword-only): ``c`` (8, Griffin's); ``r_min``, ``r_max``: the range of the base
    decay ``a = exp(-softplus(a_param))`` at initialisation (0.9 and 0.999, Griffin's code's);
    ``value``: "project"
    (``v = W_v x + b_v``, the default) or "identity" (``v = x``, Griffin's; I == H).
    """

    num_gates = 3  # weight_ih's row blocks: gate_a, gate_x, value (2 with value="identity")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 c: float = 8.0, r_min: float = 0.9, r_max: float = 0.999,
                 value: str = "project"):
        super().__init__(input_size, hidden_size, bias)
        self.c = _positive("c", c)
        self.r_min, self.r_max = _check_ring(r_min, r_max, open_ends=True)
        self.value = _check_value(value, input_size, hidden_size)
        self.num_gates = 3 if self.value == "project" else 2

    def param_shapes(self):
        G, H, I = self.num_gates * self.hidden_size, self.hidden_size, self.input_size
        shapes = {"weight_ih": (G, I)}
        if self.bias:
            shapes["bias"] = (G,)
        shapes["a_param"] = (H,)
        return shapes

    def project(self, x: Tensor, p: Params) -> Tensor:
        """(T, B, I) -> (T, B, 3H): ``[k^a, k^x, v]``, with ``v = x`` for "identity"."""
        k = F.linear(x, p["weight_ih"], p.get("bias"))  # (T, B, G*H)
        return k if self.value == "project" else torch.cat([k, x], dim=-1)

    def coefficients(self, k: Tensor, p: Params) -> tuple[Tensor, Tensor]:
        """Projected inputs (..., 3H) -> ``a``, ``b`` (..., H) of ``h = a h + b``."""
        k_a, k_x, v = k.chunk(3, dim=-1)
        log_a = -self.c * torch.sigmoid(k_a) * F.softplus(p["a_param"].to(k.dtype))
        mult = torch.sqrt(torch.clamp_min(-torch.expm1(2 * log_a), SQRT_FLOOR))
        return torch.exp(log_a), mult * torch.sigmoid(k_x) * v

    def step(self, x_t: Tensor, state: State, p: Params):
        dt = x_t.dtype  # half precision: a in float32 (in bfloat16 6% of a_t rounded to 1)
        a, b = self.coefficients(float32_at_least(x_t), p)
        h = (a * state[0].to(a.dtype) + b).to(dt)
        return h, (h,)

    def scan(self, xp: Tensor, state: State, p: Params, mask: Tensor | None = None):
        """All T steps at once: (T, B, 3H) -> ys (T, B, H) and the last state."""
        dt = xp.dtype
        a, b = self.coefficients(float32_at_least(xp), p)
        h = linear_recurrence(a, b, state[0].to(b.dtype), mask).to(dt)
        y = h if mask is None else h.masked_fill(~mask, 0.0)
        return y, (h[-1],)

    def reset_parameters(self, p: Params) -> None:
        """``nn.Linear``'s init for ``weight_ih``/``bias``; ``a_param`` as Griffin's code."""
        k = 1.0 / math.sqrt(self.input_size)
        H = self.hidden_size
        d64 = dict(dtype=torch.float64, device=p["a_param"].device)
        r = torch.sqrt(torch.rand(H, **d64) * (self.r_max ** 2 - self.r_min ** 2)
                       + self.r_min ** 2)  # the base decay: a^2 ~ U(r_min^2, r_max^2)
        with torch.no_grad():
            p["weight_ih"].uniform_(-k, k)
            if "bias" in p:
                p["bias"].uniform_(-k, k)
            p["a_param"].copy_(torch.log(torch.expm1(-torch.log(r))))  # softplus^-1(-log a)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}, c={self.c}"
        return s + (", value='identity'" if self.value == "identity" else "")
