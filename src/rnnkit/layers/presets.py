"""``RNN``, ``LSTM`` and ``GRU``: drop-in replacements for torch.nn's.

They take exactly torch.nn's constructor arguments (in the same order), the
same forward arguments and return the same outputs and shapes, and use the
same parameter names, so ``load_state_dict`` works both ways with torch.nn
modules. rnnkit's extras (``lengths=`` in forward; ``residual``, ``backend``,
``init_ih``, ``init_hh``, ``forget_bias`` and, for GRU, ``reset_after``) are
keyword-only. With ``backend="auto"`` the vanilla configurations run torch's
own fused kernels (cuDNN / oneDNN), so they are as fast as torch.nn.

Arguments are checked as torch.nn checks them, with its exception classes (a
non-bool flag or a float size is a TypeError, a size below one a ValueError, ...);
a bad forward argument raises :class:`~rnnkit.layers.errors.InputError`, both
a ValueError and a RuntimeError. docs/tutorials/layers.md lists where rnnkit
differs from torch.nn on purpose.
"""
from __future__ import annotations

from ..cells import GRUCell, LSTMCell, RNNCell
from ..cells.base import check_int
from .recurrent import Recurrent

__all__ = ["RNN", "LSTM", "GRU"]

_ONLY_LSTM = "proj_size argument is only supported for LSTM, not RNN or GRU"


class _Preset(Recurrent):
    """torch.nn.RNNBase's attributes beyond Recurrent's: ``mode`` (str) and ``proj_size`` (int)."""

    def __setstate__(self, state):
        # a GRU or RNN pickled before they had proj_size (0, as torch.nn's) has none
        super().__setstate__(state)
        if "proj_size" not in self.__dict__:
            self.proj_size = getattr(self.cells[0], "proj_size", 0)


def _check_proj_size(proj_size, hidden_size) -> None:
    if check_int("proj_size", proj_size) < 0:
        raise ValueError("proj_size should be a positive integer or zero to disable "
                         f"projections, got {proj_size}")
    if isinstance(hidden_size, int) and proj_size and proj_size >= hidden_size:
        raise ValueError(f"proj_size has to be smaller than hidden_size ({hidden_size}), "
                         f"got {proj_size}")


class RNN(_Preset):
    """Elman RNN, ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``; see torch.nn.RNN.

    Example::

        >>> rnn = RNN(10, 20, 2, nonlinearity="relu")
        >>> out, h_n = rnn(torch.randn(5, 3, 10))      # (5, 3, 20), (2, 3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None,
                 **extras):
        if "proj_size" in extras:
            raise ValueError(_ONLY_LSTM)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity {nonlinearity!r}. "
                             "Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        self.proj_size = 0
        super().__init__(RNNCell, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype,
                         nonlinearity=nonlinearity, **extras)


class LSTM(_Preset):
    """LSTM with optional projection (``proj_size``); see torch.nn.LSTM, :mod:`rnnkit.cells.lstm`.

    ``hx`` and ``h_n`` are ``(h, c)`` with ``h`` ``(D*L, B, P or H)`` and ``c`` ``(D*L, B, H)``.

    Example::

        >>> lstm = LSTM(10, 20, 2, batch_first=True, forget_bias=1.0)
        >>> out, (h, c) = lstm(torch.randn(3, 5, 10), lengths=[5, 4, 2])
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None,
                 **extras):
        _check_proj_size(proj_size, hidden_size)
        self.mode = "LSTM"
        self.proj_size = proj_size
        super().__init__(LSTMCell, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype,
                         proj_size=proj_size, **extras)


class GRU(_Preset):
    """GRU, torch's form (Cho et al.'s with ``reset_after=False``); see :mod:`rnnkit.cells.gru`.

    Example::

        >>> gru = GRU(10, 20, bidirectional=True)
        >>> out, h_n = gru(torch.randn(5, 3, 10))      # (5, 3, 40), (2, 3, 20)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None, *,
                 reset_after: bool = True, **extras):
        if "proj_size" in extras:
            raise ValueError(_ONLY_LSTM)
        self.mode = "GRU"
        self.proj_size = 0
        super().__init__(GRUCell, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype,
                         reset_after=reset_after, **extras)
