"""The cell contract: the math of one time step, as a pure function of weights.

A cell describes one recurrent step and nothing else. The layer that runs it
(:class:`rnnkit.Recurrent`) owns time, direction, depth, lengths and dropout,
and owns the parameters too: it registers one set per layer and direction,
named ``{name}_l{k}`` (``_reverse`` for the backward direction) exactly like
``torch.nn.LSTM``, and hands them to the cell as a dict ``p``.

A cell subclass provides:

- ``param_shapes()``: ``{name: shape}`` of the weights of one layer/direction;
- ``step(x_t, state, p) -> (y_t, new_state)``: one time step; ``state`` is a
  tuple of tensors, ``y_t`` the output at that step;

and may override:

- ``project(x, p)``: the part of the step that depends only on the input, run
  once over all time steps (one large GEMM instead of T small ones);
  ``step`` then receives ``project(x, p)[t]`` as ``x_t``. Default: identity;
- ``state_sizes``: the feature size of each state tensor (default ``(H,)``);
- ``reset_parameters(p)``: initialisation (default: torch.nn's
  ``U(-1/sqrt(H), 1/sqrt(H))`` for every weight);
- ``scan(xp, state, p, mask) -> (ys, state)``: the whole time loop at once,
  for cells whose recurrence has a faster form than stepping (a parallel
  scan); it must equal stepping ``step`` with the masking of
  :func:`rnnkit.kernels.loop.scan`. The layer uses it when defined and not None
  (minGRU's sequential mode returns None: the layer's loop steps it).

Example (an Elman cell)::

    class Elman(Cell):
        def param_shapes(self):
            H, I = self.hidden_size, self.input_size
            return {"weight_ih": (H, I), "weight_hh": (H, H), "bias": (H,)}

        def project(self, x, p):                  # (T, B, I) -> (T, B, H)
            return x @ p["weight_ih"].T + p["bias"]

        def step(self, x_t, state, p):
            (h,) = state
            h = torch.tanh(x_t + h @ p["weight_hh"].T)
            return h, (h,)
"""
from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

__all__ = ["Cell", "Params", "State", "check_flag", "check_int", "float32_at_least",
           "forward_ad_active", "functorch_active"]

Params = dict[str, Tensor]
State = tuple[Tensor, ...]


def float32_at_least(t: Tensor) -> Tensor:
    """``t`` in float32 if it is float16 or bfloat16, else as it is: the dtype the parallel
    scans and the half-precision steps compute in."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def functorch_active() -> bool:
    """Whether a ``torch.func`` transform (grad, vmap, jacrev, ...) is running (never
    while torch.compile traces: the ops are what it must see)."""
    if torch.compiler.is_compiling():
        return False
    try:
        return torch._C._functorch.peek_interpreter_stack() is not None
    except AttributeError:  # a torch without functorch's interpreter stack
        return False


def forward_ad_active() -> bool:
    """Whether a forward-mode AD level is open (``torch.autograd.forward_ad.dual_level``):
    the fused ops and the hand-written autograd Functions without a jvp run their
    references instead."""
    return getattr(torch.autograd.forward_ad, "_current_level", -1) >= 0


def check_flag(name: str, value) -> bool:
    """``value`` if it is a bool, else a TypeError in torch.nn's words (never ``bool(value)``:
    ``"False"`` is true)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} should be of type bool, got: {type(value).__name__} ({value!r})")
    return value


def check_int(name: str, value) -> int:
    """``value`` as an int if it is an integer (not a bool), else a TypeError in torch.nn's
    words (never ``int(value)``: 2.7 is not 2)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} should be of type int, got: {type(value).__name__} ({value!r})")
    return int(value)


class Cell:
    """Base class of recurrent cells (see the module docstring for the contract).

    Args:
        input_size: features of ``x_t`` (I).
        hidden_size: features of the hidden state (H).
        bias: whether the cell has bias terms (cells may ignore it).
    """

    #: name used by torch's fused kernels ("LSTM", "GRU", "RNN_TANH", "RNN_RELU"),
    #: or None where torch has no kernel for this cell.
    native_mode: str | None = None
    #: which recurrence ``step`` computes, for the kernels that run it whole ("lstm", "gru",
    #: "rnn", "ln_lstm", "ln_gru", "indrnn", "qrnn", "sru", "mingru", "minlstm"), or None.
    #: A subclass gets None unless its body sets it again: it may change ``step``.
    kernel_kind: str | None = None
    #: rows of ``weight_ih`` per gate block are ``hidden_size``; the number of blocks.
    num_gates: int = 1
    #: index of the forget-gate block, for ``forget_bias`` (None: no forget gate).
    forget_gate: int | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "kernel_kind" not in cls.__dict__:
            cls.kernel_kind = None  # kernels run a subclass only where it opts in

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        input_size = check_int("input_size", input_size)
        hidden_size = check_int("hidden_size", hidden_size)
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(
                f"input_size and hidden_size must be positive, got input_size={input_size}, "
                f"hidden_size={hidden_size}"
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = check_flag("bias", bias)

    # ----------------------------------------------------------------- shapes
    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Feature size of each state tensor, e.g. ``(H,)`` or LSTM's ``(P or H, H)``."""
        return (self.hidden_size,)

    @property
    def output_size(self) -> int:
        """Feature size of ``y_t`` (the first state tensor for the built-in cells)."""
        return self.state_sizes[0]

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError(f"{type(self).__name__} must define param_shapes()")

    # ------------------------------------------------------------------- math
    def init_state(self, batch: int, like: Tensor) -> State:
        """Zero state for ``batch`` sequences, on ``like``'s device and dtype."""
        return tuple(like.new_zeros(batch, n) for n in self.state_sizes)

    def project(self, x: Tensor, p: Params) -> Tensor:
        """Input-only part of the step for all time steps at once: (T, B, I) -> (T, B, G)."""
        return x

    def step(self, x_t: Tensor, state: State, p: Params) -> tuple[Tensor, State]:
        raise NotImplementedError(f"{type(self).__name__} must define step()")

    def step_recurrent_dropout(self, x_t: Tensor, state: State, h_rec: Tensor,
                               p: Params) -> tuple[Tensor, State]:
        """``step`` with ``h_rec`` (the dropped ``h_{t-1}``) in the recurrent products.

        The default passes ``(h_rec, *rest)`` to :meth:`step`, right for a cell that reads
        ``h`` only through its recurrent weights (Elman, LSTM, IndRNN); a cell that also
        carries ``h`` (GRU: ``h_t = (1 - z) n + z h_{t-1}``) overrides it.
        """
        return self.step(x_t, (h_rec, *state[1:]), p)

    def reset_parameters(self, p: Params) -> None:
        """torch.nn's initialisation: every weight ~ U(-1/sqrt(H), 1/sqrt(H))."""
        k = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for w in p.values():
                w.uniform_(-k, k)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"
