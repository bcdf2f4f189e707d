"""The later cells as layers: IndRNN, QRNN, SRU, MinGRU, MinLSTM, LayerNormLSTM/GRU.

Each is a thin :class:`~rnnkit.Recurrent` over its cell (equations in
:mod:`rnnkit.cells`), so it has every layer feature: stacking, bidirection,
residual connections, padded input with ``lengths=`` or a ``PackedSequence``,
an initial state, ``batch_first``, inter-layer dropout. All take

    (input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
     dropout=0.0, bidirectional=False, device=None, dtype=None, *, <cell options>,
     residual=False, backend="auto", init_ih=None, init_hh=None, forget_bias=None, ...)

and return ``(output, h_n)`` like :class:`rnnkit.GRU` (``(output, (h_n, c_n))``
for LayerNormLSTM). ``output`` is (T, B, D*H) and ``h_n`` (D*L, B, H); for QRNN
and SRU ``h_n`` is the cell state ``c``, as in their authors' code.

``forget_bias`` sets the forget gate's bias where the cell has one (QRNN, SRU,
MinLSTM: the single ``bias``; LayerNormLSTM: ``bias_ih``, with ``bias_hh`` 0).
``init_hh`` applies to the cells with a recurrent weight matrix (the LayerNorm
cells) and is refused by the others.
"""
from __future__ import annotations

from ..cells import (
    IndRNNCell,
    LayerNormGRUCell,
    LayerNormLSTMCell,
    MinGRUCell,
    MinLSTMCell,
    QRNNCell,
    SRUCell,
)
from .recurrent import Recurrent

__all__ = ["IndRNN", "QRNN", "SRU", "MinGRU", "MinLSTM", "LayerNormLSTM", "LayerNormGRU"]


class IndRNN(Recurrent):
    """IndRNN (Li et al. 2018), ``h_t = relu(W x_t + b + u * h_{t-1})``; :mod:`rnnkit.cells.indrnn`.

    Args (keyword-only, besides the common ones):
        recurrent_max: bound on ``|u|``; or
        time_horizon: T, giving ``recurrent_max = 2 ** (1 / T)`` (the paper's choice).

    Parameters per layer and direction: ``weight_ih_l{k} (H, I)``, ``weight_hh_l{k} (H,)``,
    ``bias_l{k} (H,)``. The forward pass clamps ``u`` to the bound; call
    :meth:`constrain_` after each optimiser step to project the stored weights too.

    Example::

        >>> rnn = IndRNN(2, 64, num_layers=2, time_horizon=1000)
        >>> out, h_n = rnn(torch.randn(1000, 8, 2))          # (1000, 8, 64), (2, 8, 64)
        >>> optimizer.step(); rnn.constrain_()
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, recurrent_max: float | None = None,
                 time_horizon: int | None = None, **extras):
        super().__init__(IndRNNCell, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype,
                         recurrent_max=recurrent_max, time_horizon=time_horizon, **extras)
        self.recurrent_max = self.cells[0].recurrent_max

    def constrain_(self) -> None:
        """Clamp every ``weight_hh`` to ``[-recurrent_max, recurrent_max]`` in place."""
        for l, c in enumerate(self.cells):
            for d in range(self.num_directions):
                c.constrain_(self._params(l, d))


class QRNN(Recurrent):
    """QRNN (Bradbury et al. 2017): convolutional gates, f/fo/ifo pooling; :mod:`rnnkit.cells.qrnn`.

    Args (keyword-only): ``window`` 1 or 2 (convolution width), ``pooling`` "f", "fo" or "ifo".
    Parameters: ``weight_ih_l{k} (G*H, window*I)``, ``bias_l{k} (G*H,)``, G = 2, 3, 4.

    Example::

        >>> qrnn = QRNN(32, 64, num_layers=2, window=2, pooling="ifo", forget_bias=1.0)
        >>> out, c_n = qrnn(torch.randn(7, 4, 32), lengths=[7, 3, 5, 1])
    """


    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, window: int = 1, pooling: str = "fo", **extras):
        super().__init__(QRNNCell, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype, window=window,
                         pooling=pooling, **extras)


class SRU(Recurrent):
    """SRU (Lei et al. 2018) with its highway connection; see :mod:`rnnkit.cells.sru`.

    Args (keyword-only): ``rescale`` (scale the highway input by sqrt(3)).
    Parameters: ``weight_ih_l{k} (3H or 4H, I)``, ``weight_c_l{k} (2H,)``, ``bias_l{k} (2H,)``.

    Example::

        >>> sru = SRU(32, 64, num_layers=3, bidirectional=True)
        >>> out, c_n = sru(torch.randn(7, 4, 32))            # (7, 4, 128), (6, 4, 64)
    """


    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, rescale: bool = False, **extras):
        super().__init__(SRUCell, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype, rescale=rescale,
                         **extras)


class MinGRU(Recurrent):
    """minGRU (Feng et al. 2024), ``h_t = (1 - z_t) h_{t-1} + z_t g(W_h x_t)``.

    See :mod:`rnnkit.cells.minrnn`.

    Args (keyword-only): ``mode`` "parallel" (log-space scan over all steps) or
    "sequential" (step by step); both give the same results.
    Parameters: ``weight_ih_l{k} (2H, I)``, ``bias_l{k} (2H,)``.

    Example::

        >>> rnn = MinGRU(16, 32, num_layers=2, residual=True)
        >>> out, h_n = rnn(torch.randn(100, 4, 16))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, mode: str = "parallel", **extras):
        super().__init__(MinGRUCell, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype, mode=mode, **extras)
        self.mode = mode


class MinLSTM(Recurrent):
    """minLSTM (Feng et al. 2024), ``h_t = f'_t h_{t-1} + i'_t g(W_h x_t)``.

    See :mod:`rnnkit.cells.minrnn`.

    Args (keyword-only): ``mode`` "parallel" or "sequential", as :class:`MinGRU`.
    Parameters: ``weight_ih_l{k} (3H, I)``, ``bias_l{k} (3H,)`` (gates f, i, h).

    Example::

        >>> rnn = MinLSTM(16, 32, mode="sequential", forget_bias=1.0)
        >>> out, h_n = rnn(torch.randn(100, 4, 16))
    """


    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, mode: str = "parallel", **extras):
        super().__init__(MinLSTMCell, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype, mode=mode, **extras)
        self.mode = mode


class LayerNormLSTM(Recurrent):
    """LSTM with layer normalisation (Ba et al. 2016); see :mod:`rnnkit.cells.layernorm`.

    Args (keyword-only): ``eps`` of the normalisation (1e-5).
    Parameters: torch.nn.LSTM's (``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``,
    ``bias_hh_l{k}``) plus ``ln_ih_weight_l{k}``, ``ln_hh_weight_l{k}`` (4H,),
    ``ln_c_weight_l{k}``, ``ln_c_bias_l{k}`` (H,). ``hx`` and ``h_n`` are ``(h, c)``.

    Example::

        >>> lstm = LayerNormLSTM(16, 32, num_layers=2, forget_bias=1.0)
        >>> out, (h_n, c_n) = lstm(torch.randn(9, 4, 16), lengths=[9, 2, 5, 7])
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, eps: float = 1e-5, **extras):
        super().__init__(LayerNormLSTMCell, input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, device=device, dtype=dtype, eps=eps,
                         **extras)


class LayerNormGRU(Recurrent):
    """GRU (torch's form) with layer normalisation (Ba et al. 2016); :mod:`rnnkit.cells.layernorm`.

    Args (keyword-only): ``eps`` of the normalisation (1e-5).
    Parameters: torch.nn.GRU's plus ``ln_ih_weight_l{k}``, ``ln_hh_weight_l{k}`` (3H,).

    Example::

        >>> gru = LayerNormGRU(16, 32, bidirectional=True)
        >>> out, h_n = gru(torch.randn(9, 4, 16))             # (9, 4, 64), (2, 4, 32)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, eps: float = 1e-5, **extras):
        super().__init__(LayerNormGRUCell, input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, device=device, dtype=dtype, eps=eps,
                         **extras)
