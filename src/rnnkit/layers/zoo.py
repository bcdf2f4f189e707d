"""The later cells as layers: IndRNN, QRNN, SRU, MinGRU, MinLSTM, LayerNormLSTM/GRU, LRU, RGLRU.

Each is a thin :class:`~rnnkit.Recurrent` over its cell (equations in
:mod:`rnnkit.cells`), so it has every layer feature: stacking, bidirection,
residual connections, padded input with ``lengths=`` or a ``PackedSequence``,
an initial state, ``batch_first``, inter-layer dropout. All take

    (input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
     dropout=0.0, bidirectional=False, device=None, dtype=None, *, <cell options>,
     residual=False, backend="auto", init_ih=None, init_hh=None, forget_bias=None, ...)

and return ``(output, h_n)`` like :class:`rnnkit.GRU` (``(output, (h_n, c_n))``
for LayerNormLSTM). ``output`` is (T, B, D*H) and ``h_n`` (D*L, B, H); for QRNN
and SRU ``h_n`` is the cell state ``c``, as in their authors' code; for the LRU it is
the pair ``(Re s, Im s)``, each (D*L, B, N); for the sLSTM ``(h, c, n, m)`` and for the
mLSTM ``(C, n, m)`` (the memory matrices flattened); for S6 the state ``h`` (D*L, B, H*N).

``forget_bias`` sets the forget gate's bias where the cell has one (QRNN, SRU,
MinLSTM: the single ``bias``; LayerNormLSTM: ``bias_ih``, with ``bias_hh`` 0).
``init_hh`` applies to the cells with a recurrent weight matrix (the LayerNorm
cells) and is refused by the others.
"""
from __future__ import annotations

import math

from ..cells import (
    IndRNNCell,
    LayerNormGRUCell,
    LayerNormLSTMCell,
    LRUCell,
    MinGRUCell,
    MinLSTMCell,
    MLSTMCell,
    QRNNCell,
    RGLRUCell,
    S6Cell,
    SLSTMCell,
    SRUCell,
)
from .recurrent import Recurrent

__all__ = ["IndRNN", "QRNN", "SRU", "MinGRU", "MinLSTM", "LayerNormLSTM", "LayerNormGRU", "LRU",
           "RGLRU", "SLSTM", "MLSTM", "S6"]


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


class LRU(Recurrent):
    """LRU (Orvieto et al. 2023): a complex diagonal linear recurrence; :mod:`rnnkit.cells.lru`.

    ``s_t = lambda * s_{t-1} + gamma * B x_t``, ``y_t = Re(C s_t) + D x_t``, run as a parallel
    scan. Zoneout is refused: it would mix the real and imaginary parts of different steps.

    Args (keyword-only): ``state_size`` N (default H); ``r_min``, ``r_max`` (0, 1): the ring
    of ``|lambda|`` at initialisation; ``max_phase`` (2 pi).
    Parameters: ``weight_ih_l{k} (2N, I)``, ``nu_log_l{k}``, ``theta_log_l{k}``,
    ``gamma_log_l{k}`` (N,), ``weight_out_l{k} (H, 2N)``, ``weight_skip_l{k}`` (H,) if I == H
    else (H, I), ``bias_l{k} (H,)``. ``hx`` and ``h_n`` are ``(Re s, Im s)``, each (D*L, B, N).

    Example::

        >>> lru = LRU(16, 32, num_layers=2, state_size=64, r_min=0.9, r_max=0.999)
        >>> out, (s_re, s_im) = lru(torch.randn(100, 4, 16))  # (100, 4, 32), (2, 4, 64) x 2
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, state_size: int | None = None, r_min: float = 0.0,
                 r_max: float = 1.0, max_phase: float = 2 * math.pi, **extras):
        super().__init__(LRUCell, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype,
                         state_size=state_size, r_min=r_min, r_max=r_max, max_phase=max_phase,
                         **extras)
        self.state_size = self.cells[0].state_size


class RGLRU(Recurrent):
    """RG-LRU (De et al. 2024, Griffin): a gated real diagonal recurrence; :mod:`rnnkit.cells.lru`.

    ``h_t = a_t * h_{t-1} + sqrt(1 - a_t^2) * (i_t * v_t)`` with ``a_t = a^(c r_t)``, run as a
    parallel scan (or step by step with a per-step regulariser).

    Args (keyword-only): ``c`` (8); ``r_min``, ``r_max`` (0.9, 0.999): the range of ``a`` at
    initialisation; ``value``: "project" (the cell projects its value) or "identity" (the value
    is the input itself, as in Griffin's block; needs I == H). Parameters: ``weight_ih_l{k}
    (3H, I)`` (blocks gate_a, gate_x, value; (2H, I) with "identity"), ``bias_l{k}`` as long,
    ``a_param_l{k} (H,)``.

    Example::

        >>> rnn = RGLRU(16, 32, num_layers=2, residual=True)
        >>> out, h_n = rnn(torch.randn(100, 4, 16), lengths=[100, 7, 50, 1])
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, c: float = 8.0, r_min: float = 0.9,
                 r_max: float = 0.999, **extras):
        super().__init__(RGLRUCell, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype, c=c, r_min=r_min,
                         r_max=r_max, **extras)


class SLSTM(Recurrent):
    """sLSTM (Beck et al. 2024, xLSTM): exponential gating, a normaliser and a stabiliser;
    see :mod:`rnnkit.cells.xlstm`.

    Args (keyword-only): ``num_heads`` (1; divides H): heads of the block-diagonal recurrent
    matrix; ``forget``: "sigmoid" or "exp". Parameters: ``weight_ih_l{k} (4H, I)`` (blocks z,
    i, f, o), ``weight_hh_l{k} (4, heads, d, d)``, ``bias_l{k} (4H,)``; every regulariser,
    ``forget_bias`` too. ``hx`` and ``h_n`` are ``(h, c, n, m)``, each (D*L, B, H).

    Example::

        >>> rnn = SLSTM(16, 32, num_layers=2, num_heads=4, recurrent_dropout=0.1)
        >>> out, (h, c, n, m) = rnn(torch.randn(50, 4, 16))  # (50, 4, 32), (2, 4, 32) x 4
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, num_heads: int = 1, forget: str = "sigmoid",
                 **extras):
        super().__init__(SLSTMCell, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype, num_heads=num_heads,
                         forget=forget, **extras)


class MLSTM(Recurrent):
    """mLSTM (Beck et al. 2024, xLSTM): a matrix memory per head, gates read only the input;
    see :mod:`rnnkit.cells.xlstm`.

    Args (keyword-only): ``num_heads`` (1; divides H), ``forget``: "sigmoid" or "exp";
    ``mode``: "parallel" (chunks of 64 steps at once, the default) or "sequential" (step by
    step); both give the same results.
    Parameters: ``weight_ih_l{k} (4H + 2 heads, I)`` (blocks q, k, v, i, f, o), ``bias_l{k}``.
    ``hx`` and ``h_n`` are ``(C, n, m)``: (D*L, B, heads*d*d), (D*L, B, H), (D*L, B, heads).

    Example::

        >>> rnn = MLSTM(16, 32, num_heads=4)
        >>> out, (C, n, m) = rnn(torch.randn(50, 4, 16))  # (50, 4, 32); C (1, 4, 256)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, num_heads: int = 1, forget: str = "sigmoid",
                 **extras):
        super().__init__(MLSTMCell, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype, num_heads=num_heads,
                         forget=forget, **extras)


class S6(Recurrent):
    """Mamba's selective state-space recurrence S6 (Gu & Dao 2023); :mod:`rnnkit.cells.ssm`.

    ``h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t``, ``y_t = C_t h_t + D u_t`` per channel,
    with ``delta``, ``B``, ``C`` read from the input; run as a parallel scan.

    Args (keyword-only): ``state_size`` N (16); ``dt_min``, ``dt_max`` (0.001, 0.1): the
    range of the initial step sizes; ``value``: "project" or "identity" (``u`` is the input
    itself, as in Mamba's block; needs I == H). Parameters: ``weight_ih_l{k} (2H + 2N, I)``
    (blocks u, delta, B, C; no u block with "identity"), ``bias_l{k} (2H,)`` (u, delta),
    ``dt_bias_l{k} (H,)``, ``A_log_l{k} (H, N)``, ``D_l{k} (H,)``. ``hx`` and ``h_n`` are the
    states (D*L, B, H*N).

    Example::

        >>> ssm = S6(16, 32, num_layers=2, state_size=8, residual=True)
        >>> out, h_n = ssm(torch.randn(100, 4, 16))            # (100, 4, 32), (2, 4, 256)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, state_size: int = 16, dt_min: float = 0.001,
                 dt_max: float = 0.1, **extras):
        super().__init__(S6Cell, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype,
                         state_size=state_size, dt_min=dt_min, dt_max=dt_max, **extras)
        self.state_size = self.cells[0].state_size
