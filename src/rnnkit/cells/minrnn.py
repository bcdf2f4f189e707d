"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?").

Gates that read only the input make the recurrence linear in ``h``,

    h_t = a_t * h_{t-1} + b_t,

so it can run over all steps at once. minGRU:

    z_t = sigmoid(k^z_t)          k_t = W x_t + b  (all T at once, in ``project``)
    h~_t = g(k^h_t)
    h_t = (1 - z_t) * h_{t-1} + z_t * h~_t                a = 1 - z,   b = z * h~

minLSTM (with the paper's length-independent normalisation of the gates):

    f_t = sigmoid(k^f_t)   i_t = sigmoid(k^i_t)   h~_t = g(k^h_t)
    f'_t = f_t / (f_t + i_t)   i'_t = i_t / (f_t + i_t)
    h_t = f'_t * h_{t-1} + i'_t * h~_t                    a = f',      b = i' * h~

with the paper's ``g(x) = x + 1/2`` for ``x >= 0`` and ``sigmoid(x)`` below, so
``h~ > 0`` and ``b`` has a logarithm. Two modes give the same results:

- ``"sequential"``: ``step`` one time step at a time (generation, streaming);
- ``"parallel"``: ``scan`` in log space (Heinsen 2023), with everything computed
  from the logits without forming a gate first:

      log a, log b   e.g. minGRU: log(1 - z) = -softplus(k^z),
                     log(z h~) = -softplus(-k^z) + log g(k^h)
      a*_t = sum_{j<=t} log a_j
      h_t  = exp(a*_t + logcumsumexp_{k<=t}(log b_k - a*_k)) + exp(a*_t) * h_0

  Departures: the paper also takes ``log g(h_0)``, which needs ``h_0 > 0``;
  rnnkit keeps the ``h_0`` term out of the logarithm, so any initial state works
  (and padded steps enter as a = 1, b = 0). The two terms of ``log h_t`` cancel
  to within about ``|a*_t| * eps``, which over thousands of steps costs float32
  several digits (5e-4 relative at T = 5000), so rnnkit scans chunks of 64
  steps at once and carries the state between chunks in a loop (T/64 steps):
  7e-6 at T = 5000. Both modes use ``g`` (the paper's sequential pseudo-code
  uses a plain linear ``h~``; its log-space appendix uses ``g``, and the two
  modes must agree).

Parameters: ``weight_ih (G*H, I)`` stacking (z, h) for minGRU and (f, i, h) for
minLSTM, and ``bias (G*H,)``, initialised like ``nn.Linear``. There is no
``weight_hh``: the gates do not see ``h``. State ``(h,)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Cell, Params, State

__all__ = ["MinGRUCell", "MinLSTMCell", "g", "log_g", "log_space_scan"]


def g(x: Tensor) -> Tensor:
    """The paper's positive activation: ``x + 1/2`` for ``x >= 0``, ``sigmoid(x)`` below."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """``log(g(x))`` without forming ``g``: ``log(x + 1/2)`` or ``-softplus(-x)``."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


class _LogCumSumExp(torch.autograd.Function):
    """``torch.logcumsumexp`` along dim 1, with a backward that differentiates again.

    torch's backward takes ``log|grad|``, so its derivative is NaN wherever the incoming
    gradient is 0 (a padded step, an output the loss does not read). This one computes
    the same formula (TensorFlow's, as torch's) with the zeros kept out of the log, in
    ops that autograd differentiates, this function included: every order is finite.
    """

    generate_vmap_rule = True  # torch.func: vmap over the torch ops of forward and backward

    @staticmethod
    def forward(x):
        return torch.logcumsumexp(x, dim=1)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], output)

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        # dx_s = sum_{t >= s} grad_t exp(x_s - out_t), split by the sign of grad_t
        log_abs = torch.where(grad != 0, grad, torch.ones_like(grad)).abs().log()
        lo = torch.finfo(grad.dtype).min  # log 0
        pos = torch.where(grad > 0, log_abs, lo) - out
        neg = torch.where(grad < 0, log_abs, lo) - out
        rev = lambda v: logcumsumexp(v.flip(1)).flip(1)  # noqa: E731  (sum over t >= s)
        return (rev(pos) + x).exp() - (rev(neg) + x).exp()


def logcumsumexp(x: Tensor) -> Tensor:
    """``torch.logcumsumexp(x, dim=1)``, differentiable any number of times."""
    return _LogCumSumExp.apply(x)


def log_space_scan(log_a: Tensor, log_b: Tensor, h0: Tensor, mask: Tensor | None = None,
                   chunk: int = 64) -> Tensor:
    """All ``h_t = a_t * h_{t-1} + b_t`` at once, for ``a, b > 0`` given as logs.

    The log-space scan runs within chunks of ``chunk`` steps, all chunks at once; a
    plain loop over the T/chunk chunks carries the state across. Chunking bounds
    ``|a*|`` and so the rounding error of the cancellation in ``a* + logcumsumexp``.

    Args:
        log_a, log_b: (T, B, H); ``log_a <= 0`` keeps the scan stable.
        h0: (B, H), any sign.
        mask: (T, B, 1) bool or None; where False the step is skipped (a = 1, b = 0).
    Returns:
        h (T, B, H), including the skipped steps (which repeat the state), in ``log_b``'s
        dtype. A half-precision scan runs in float32: in bfloat16 the cumulative sums and
        the cancellation in ``a* + logcumsumexp`` lost a quarter of the result at T = 300.
    """
    if log_b.dtype in (torch.float16, torch.bfloat16):
        return log_space_scan(log_a.float(), log_b.float(), h0.float(), mask,
                              chunk).to(log_b.dtype)
    # a skipped step (masked, or padding up to whole chunks) has a = 1 and b = 0: log a = 0,
    # and its term of the logcumsumexp a constant -1e4 (exp underflows to 0 in every dtype)
    skip = None if mask is None else ~mask  # (T, B, 1)
    if skip is not None:
        log_a = log_a.masked_fill(skip, 0.0)
    T = log_a.shape[0]
    n = -(-T // chunk)
    if n * chunk > T:  # pad with skipped steps to whole chunks
        pad = (n * chunk - T, *log_a.shape[1:])
        log_a = torch.cat([log_a, log_a.new_zeros(pad)])
        log_b = torch.cat([log_b, log_b.new_zeros(pad)])
        if skip is None:
            skip = torch.zeros(T, 1, 1, dtype=torch.bool, device=log_a.device)
        skip = torch.cat([skip, skip.new_ones(n * chunk - T, *skip.shape[1:])])
    log_a = log_a.view(n, chunk, *log_a.shape[1:])  # (T', B, H) -> (n, chunk, B, H)
    log_b = log_b.view(n, chunk, *log_b.shape[1:])
    a_star = torch.cumsum(log_a, dim=1)  # log prod of a within the chunk, up to t
    from_h = torch.exp(a_star)  # h_t's factor on the chunk's incoming state
    z = log_b - a_star
    if skip is not None:
        z = z.masked_fill(skip.view(n, chunk, *skip.shape[1:]), -1e4)
    from_b = torch.exp(a_star + logcumsumexp(z))  # h_t if h_in = 0
    h, hs = h0, []
    for k in range(n):
        hs.append(from_h[k] * h + from_b[k])  # (chunk, B, H)
        h = hs[-1][-1]
    return torch.cat(hs)[:T]


class _MinCell(Cell):
    """Shared by minGRU and minLSTM: the input projection, the modes, the scan."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 mode: str = "parallel"):
        super().__init__(input_size, hidden_size, bias)
        if mode not in ("parallel", "sequential"):
            raise ValueError(f"mode: expected 'parallel' or 'sequential', got {mode!r}")
        self.mode = mode

    def param_shapes(self):
        G, H, I = self.num_gates, self.hidden_size, self.input_size
        shapes = {"weight_ih": (G * H, I)}
        if self.bias:
            shapes["bias"] = (G * H,)
        return shapes

    def project(self, x: Tensor, p: Params) -> Tensor:
        return F.linear(x, p["weight_ih"], p.get("bias"))  # (T, B, I) -> (T, B, G*H)

    def log_coefficients(self, k: Tensor) -> tuple[Tensor, Tensor]:
        """(T, B, G*H) logits -> ``log a``, ``log b``, each (T, B, H)."""
        raise NotImplementedError

    @property
    def scan(self):
        """The whole-sequence form in parallel mode (a log-space scan), else None: in
        sequential mode the layer's loop runs :meth:`step` (cells import only torch)."""
        return self._log_space_scan if self.mode == "parallel" else None

    def _log_space_scan(self, xp: Tensor, state: State, p: Params, mask: Tensor | None = None):
        """All T steps at once: (T, B, G*H) logits -> ys (T, B, H) and the last state."""
        half = xp.dtype in (torch.float16, torch.bfloat16)  # the logs in float32 too
        log_a, log_b = self.log_coefficients(xp.float() if half else xp)
        h = log_space_scan(log_a, log_b, state[0].to(log_b.dtype), mask).to(xp.dtype)
        y = h if mask is None else h.masked_fill(~mask, 0.0)
        return y, (h[-1],)

    def reset_parameters(self, p: Params) -> None:
        k = 1.0 / math.sqrt(self.input_size)  # nn.Linear's bound
        with torch.no_grad():
            for w in p.values():
                w.uniform_(-k, k)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}, mode={self.mode!r}"


class MinGRUCell(_MinCell):
    """minGRU step ``h = (1 - z) h + z g(k^h)``; ``mode`` "parallel" or "sequential"."""

    kernel_kind = "mingru"
    num_gates = 2

    def step(self, x_t: Tensor, state: State, p: Params):
        (h,) = state
        k_z, k_h = x_t.chunk(2, dim=-1)
        z = torch.sigmoid(k_z)
        h_tilde = g(k_h)
        h = (1 - z) * h + z * h_tilde
        return h, (h,)

    def log_coefficients(self, k):
        k_z, k_h = k.chunk(2, dim=-1)
        log_a = -F.softplus(k_z)                        # log(1 - z)
        log_b = -F.softplus(-k_z) + log_g(k_h)          # log(z * h~)
        return log_a, log_b


class MinLSTMCell(_MinCell):
    """minLSTM step ``h = f' h + i' g(k^h)`` with ``f' + i' = 1``; ``mode`` as minGRU."""

    kernel_kind = "minlstm"
    num_gates = 3
    forget_gate = 0  # blocks: f, i, h

    def step(self, x_t: Tensor, state: State, p: Params):
        (h,) = state
        k_f, k_i, k_h = x_t.chunk(3, dim=-1)
        f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
        f_n, i_n = f / (f + i), i / (f + i)
        h = f_n * h + i_n * g(k_h)
        return h, (h,)

    def log_coefficients(self, k):
        k_f, k_i, k_h = k.chunk(3, dim=-1)
        diff = F.softplus(-k_f) - F.softplus(-k_i)      # log(i / f)
        log_a = -F.softplus(diff)                       # log f' = -log(1 + i/f)
        log_b = -F.softplus(-diff) + log_g(k_h)         # log(i' * h~)
        return log_a, log_b
