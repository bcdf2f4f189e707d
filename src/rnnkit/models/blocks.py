"""The published blocks around two modern cells, Griffin's residual block and Mamba's block,
and :class:`BlockStack`, which stacks any of :data:`BLOCKS` (these two, xLSTM's in
:mod:`rnnkit.models.xlstm_blocks`, the deep LRU's in :mod:`rnnkit.models.lru_block`).

**GriffinBlock** (De et al. 2024, "Griffin", Figure 2): a residual block of two pre-norm
halves, temporal mixing then an MLP, each added to the stream,

    x = x + TemporalMix(RMSNorm(x))
    x = x + MLP(RMSNorm(x))
    TemporalMix(n) = W_out ( GeLU(W_y n + b_y)  *  RG-LRU(Conv1D(W_x n + b_x)) )    width R
    MLP(n)         = W_down ( GeLU(W_g n + b_g) * (W_u n + b_u) ) + b_down          width E

with ``R = rnn_width`` (``d_model`` by default), ``E = expansion * d_model`` (3, Griffin's),
``Conv1D`` causal and depthwise (``conv_width`` 4, with bias) and the RG-LRU reading the
convolved branch directly (``rnnkit.RGLRU(R, R, value="identity")``: ``v_t = x_t``).

**MambaBlock** (Gu & Dao 2023, "Mamba", Figure 3) with its pre-norm residual,

    in_x, z = chunk(W_in RMSNorm(x), 2)                     W_in (2 Din, d_model), no bias
    u       = SiLU(Conv1D(in_x))                            causal, depthwise, with bias
    x       = x + W_out ( S6(u) * SiLU(z) )                 W_out (d_model, Din), no bias

with ``Din = expand * d_model`` (2) and S6 reading ``u`` directly
(``rnnkit.S6(Din, Din, bias=False, value="identity")``: ``delta = softplus(W_delta u +
dt_bias)``, ``B``, ``C`` from ``u``, ``y = C h + D u``; see :mod:`rnnkit.cells.ssm`).

Parameters (names as ``state_dict`` shows them), GriffinBlock: ``temporal_norm.weight``,
``linear_y``, ``linear_x`` (R, d), ``conv.weight`` (R, 1, k), ``conv.bias`` (R,),
``rg_lru.weight_ih_l0`` (2R, R), ``rg_lru.bias_l0`` (2R,), ``rg_lru.a_param_l0`` (R,),
``linear_out`` (d, R), ``mlp_norm.weight``, ``mlp_gate``, ``mlp_up`` (E, d), ``mlp_down``
(d, E), every Linear with a bias. MambaBlock: ``norm.weight``, ``in_proj.weight`` (2 Din, d),
``conv.weight`` (Din, 1, k), ``conv.bias``, ``ssm.weight_ih_l0`` (Din + 2N, Din) (rows delta,
B, C), ``ssm.dt_bias_l0``, ``ssm.A_log_l0`` (Din, N), ``ssm.D_l0``, ``out_proj.weight``
(d, Din).

Padded batches: ``forward(x, lengths)`` zeroes ``x`` past each length first (NaN there never
reaches a valid step or a gradient); every part but the convolution and the recurrence is
per step, the convolution is causal (a valid step reads only earlier steps of its own
sequence, so padding, which comes after, never reaches it) and the recurrence gets
``lengths=``; the output is zero past each length.

Streaming: ``step(x_t, state)`` runs one step (the convolution keeps its last ``k - 1``
inputs, the recurrence its state), and stepping a sequence gives ``forward``'s outputs.

Departures from the papers (and the authors' code):

- Griffin: the RG-LRU's gate weights are dense (R, R) blocks, not block-diagonal per head; the
  first step of a sequence is scaled by ``sqrt(1 - a^2)`` like every other (Griffin's code
  uses 1 at a document's first token); the initialisation is torch's default for the Linear
  and Conv1d layers (Griffin's code uses scaled normals and zero biases); GeLU is the tanh
  approximation, as Griffin's code (``gelu_pytorch_tanh``). Biases in every Linear and the
  convolution as in Griffin's code (the paper's figure does not say). Griffin interleaves
  these with its local-attention block (:mod:`rnnkit.models.local_attention`;
  ``BlockStack(..., attention_every=3)``); the recurrent blocks alone are Hawk.
- Mamba: ``delta``'s projection is full rank, (Din, Din) inside ``weight_ih``, where Mamba's
  is ``dt_proj @ x_proj[:dt_rank]`` of rank ``ceil(d_model / 16)``: ``Din^2`` parameters
  instead of ``2 dt_rank Din``; the S6 weights get nn.Linear's initialisation, not Mamba's
  ``dt_proj`` one; RMSNorm's eps is 1e-5 (Mamba's ``norm_epsilon``); no fused
  add-and-norm and no residual kept in float32; the output projection is not rescaled by
  ``1/sqrt(n_layer)`` (a model-level choice).

Shapes: ``T`` time, ``B`` batch, ``d`` d_model, ``R`` rnn_width, ``E`` the MLP's width,
``Din`` Mamba's inner width, ``N`` its state size, ``k`` conv_width.
"""
from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells.base import check_flag
from rnnkit.layers import RGLRU, S6

from ._block_parts import (
    _add_gated_mlp,
    _Block,
    _CausalConv1d,
    _gated_mlp,
    _lengths,
    _positive_int,
    _probability,
    _time_major,
)
from .local_attention import LocalAttentionBlock
from .lru_block import LRUBlock
from .xlstm_blocks import MLSTMBlock, SLSTMBlock

__all__ = ["GriffinBlock", "MambaBlock", "BlockStack", "BLOCKS", "PERIODIC"]


class GriffinBlock(_Block):
    """Griffin's residual block: RMSNorm, the recurrent block (GeLU gate * RG-LRU over a causal
    convolution), then RMSNorm and a gated MLP, each added to the input.

    Args:
        d_model: features of ``x`` (d).
        expansion: the MLP's width over d (3, Griffin's ``M``).
        rnn_width: the RG-LRU's width R (``d_model``; Griffin's is about 4/3 d).
        conv_width: the causal convolution's kernel (4).
        c: the RG-LRU's constant (8).
        batch_first: ``x`` is (B, T, d). eps: RMSNorm's (1e-6, Griffin's).
        dropout: residual dropout on the temporal mix and the MLP before each joins ``x`` (0).

    Example::

        >>> block = GriffinBlock(16, rnn_width=24)
        >>> block(torch.randn(10, 2, 16), lengths=torch.tensor([10, 4])).shape
        torch.Size([10, 2, 16])
        >>> y_t, state = block.step(torch.randn(2, 16))       # streaming, one step
        >>> y_t.shape, state[0].shape, state[1].shape
        (torch.Size([2, 16]), torch.Size([2, 24, 3]), torch.Size([1, 2, 24]))
    """

    def __init__(self, d_model: int, *, expansion: int = 3, rnn_width: int | None = None,
                 conv_width: int = 4, c: float = 8.0, batch_first: bool = False,
                 eps: float = 1e-6, dropout: float = 0.0, device=None, dtype=None):
        super().__init__()
        f = dict(device=device, dtype=dtype)
        d = self.d_model = _positive_int("d_model", d_model)
        R = self.rnn_width = d if rnn_width is None else _positive_int("rnn_width", rnn_width)
        E = _positive_int("expansion", expansion) * d
        k = _positive_int("conv_width", conv_width)
        self.batch_first = check_flag("batch_first", batch_first)
        self.drop = nn.Dropout(_probability("dropout", dropout))
        self.eps = eps
        self.temporal_norm = nn.RMSNorm(d, eps=eps, **f)
        self.linear_y = nn.Linear(d, R, **f)  # the gate branch
        self.linear_x = nn.Linear(d, R, **f)  # the recurrent branch
        self.conv = _CausalConv1d(R, k, **f)
        self.rg_lru = RGLRU(R, R, c=c, value="identity", **f)
        self.linear_out = nn.Linear(R, d, **f)
        _gated_mlp(self, d, E, eps, f)

    @property
    def _rnn(self):
        return self.rg_lru

    def _mix(self, x: Tensor, lengths: Tensor | None, buf: Tensor, h: Tensor):
        n = self.temporal_norm(x)
        gate = F.gelu(self.linear_y(n), approximate="tanh")
        u, buf = self.conv.scan(self.linear_x(n), buf, lengths)
        y, h = self.rg_lru(u, h, lengths=lengths)  # (T, B, R)
        return self.linear_out(gate * y), buf, h

    def _mix_step(self, x_t: Tensor, buf: Tensor, h: Tensor):
        n = self.temporal_norm(x_t)
        gate = F.gelu(self.linear_y(n), approximate="tanh")
        u, buf = self.conv.step(self.linear_x(n), buf)
        y, h = self.rg_lru.step(u, h)
        return self.linear_out(gate * y), buf, h

    def _add_mlp(self, x: Tensor) -> Tensor:
        return _add_gated_mlp(self, x)


class MambaBlock(_Block):
    """Mamba's block with a pre-norm residual: ``x + out_proj(S6(SiLU(conv(in_x))) * SiLU(z))``,
    ``in_x, z = in_proj(RMSNorm(x))``.

    Args:
        d_model: features of ``x`` (d).
        expand: the inner width over d (2, Mamba's).
        state_size: N per channel (16, Mamba's ``d_state``).
        conv_width: the causal convolution's kernel (4, Mamba's ``d_conv``).
        dt_min, dt_max: the range of the initial step sizes (0.001, 0.1).
        batch_first: ``x`` is (B, T, d). eps: RMSNorm's (1e-5, Mamba's).
        dropout: residual dropout on the mixer's output before it joins ``x`` (0).

    Example::

        >>> block = MambaBlock(16, state_size=4)
        >>> block(torch.randn(10, 2, 16), lengths=torch.tensor([10, 4])).shape
        torch.Size([10, 2, 16])
        >>> y_t, state = block.step(torch.randn(2, 16))       # streaming, one step
        >>> y_t.shape, state[0].shape, state[1].shape
        (torch.Size([2, 16]), torch.Size([2, 32, 3]), torch.Size([1, 2, 128]))
    """

    def __init__(self, d_model: int, *, expand: int = 2, state_size: int = 16,
                 conv_width: int = 4, dt_min: float = 0.001, dt_max: float = 0.1,
                 batch_first: bool = False, eps: float = 1e-5, dropout: float = 0.0,
                 device=None, dtype=None):
        super().__init__()
        f = dict(device=device, dtype=dtype)
        d = self.d_model = _positive_int("d_model", d_model)
        Din = self.d_inner = _positive_int("expand", expand) * d
        k = _positive_int("conv_width", conv_width)
        self.batch_first = check_flag("batch_first", batch_first)
        self.drop = nn.Dropout(_probability("dropout", dropout))
        self.eps = eps
        self.norm = nn.RMSNorm(d, eps=eps, **f)
        self.in_proj = nn.Linear(d, 2 * Din, bias=False, **f)
        self.conv = _CausalConv1d(Din, k, **f)
        self.ssm = S6(Din, Din, bias=False, value="identity", state_size=state_size,
                      dt_min=dt_min, dt_max=dt_max, **f)
        self.out_proj = nn.Linear(Din, d, bias=False, **f)

    @property
    def _rnn(self):
        return self.ssm

    def _mix(self, x: Tensor, lengths: Tensor | None, buf: Tensor, h: Tensor):
        in_x, z = self.in_proj(self.norm(x)).chunk(2, dim=-1)  # (T, B, 2 Din) -> 2 x (T, B, Din)
        u, buf = self.conv.scan(in_x, buf, lengths)
        y, h = self.ssm(F.silu(u), h, lengths=lengths)
        return self.out_proj(y * F.silu(z)), buf, h

    def _mix_step(self, x_t: Tensor, buf: Tensor, h: Tensor):
        in_x, z = self.in_proj(self.norm(x_t)).chunk(2, dim=-1)  # (B, 2 Din) -> 2 x (B, Din)
        u, buf = self.conv.step(in_x, buf)
        y, h = self.ssm.step(F.silu(u), h)
        return self.out_proj(y * F.silu(z)), buf, h


#: The blocks a :class:`BlockStack` (and a recipe's ``model.cell``) can name: Griffin's
#: recurrent block (Hawk), Mamba's, xLSTM's mLSTM block (:mod:`rnnkit.models.xlstm_blocks`)
#: and the deep LRU's (:mod:`rnnkit.models.lru_block`).
BLOCKS = {"griffin": GriffinBlock, "mamba": MambaBlock, "xlstm": MLSTMBlock,
          "deep_lru": LRUBlock}

#: A stack's second kind of block, placed at every ``every``-th position by an option:
#: block -> (the option, the blocks it places, their class).
PERIODIC = {"griffin": ("attention_every", "Griffin's local-attention blocks",
                        LocalAttentionBlock),
            "xlstm": ("slstm_every", "xLSTM's sLSTM blocks", SLSTMBlock)}

#: The stack's final norm after each kind of block: RMSNorm after Griffin's and Mamba's and
#: LayerNorm without bias after xLSTM's (the published models'), LayerNorm after the deep
#: LRU's (ours: the paper's model goes from its last block to pooling and the decoder).
_FINAL_NORM = {"griffin": nn.RMSNorm, "mamba": nn.RMSNorm,
               "xlstm": lambda d, eps, **f: nn.LayerNorm(d, eps=eps, bias=False, **f),
               "deep_lru": nn.LayerNorm}


def _options_for(cls, options: dict) -> dict:
    """The ``options`` that ``cls``'s constructor takes by keyword."""
    params = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in options.items() if k in params}


class BlockStack(nn.Module):
    """``num_layers`` blocks of one kind over a ``d_model`` stream, as the published models
    stack them (Hawk: Griffin's recurrent blocks alone, or Griffin with its local attention;
    Mamba; xLSTM; the deep LRU): a linear map from the input
    when ``input_size != d_model``, the blocks (with residual dropout), and a final norm.
    It answers like a recurrent layer, ``(x, state) -> (y, state)``, so the task models that
    carry a layer's state (the language model's truncated BPTT) take it in place of one.

    Args:
        block: "griffin", "mamba", "xlstm" or "deep_lru" (:data:`BLOCKS`).
        input_size: features of ``x`` (I). d_model: the stream's and the output's (d).
        num_layers: blocks (L). dropout: each block's residual dropout (on every branch
            before it joins the stream; the stream itself is never dropped).
        batch_first: ``x`` is (B, T, I). **block_options: for each block (``expand``,
        ``state_size``, ``rnn_width``, ``conv_width``, ...).
        attention_every: with "griffin", every this-many-th block is Griffin's local-attention
            block (:class:`rnnkit.models.local_attention.LocalAttentionBlock`), 3 in the paper
            (recurrent, recurrent, attention); 0 (default): none, Hawk.
        attention_window: the past tokens each attention query sees (1024, the paper's).
        attention_heads: query heads (default ``d_model // 64``, at least 1); ``expansion``
            and ``eps`` apply to the attention blocks' MLP too.
        slstm_every: with "xlstm", every this-many-th block is an sLSTM block
            (:class:`~rnnkit.models.xlstm_blocks.SLSTMBlock`), the others mLSTM blocks: 0
            (default) is the paper's xLSTM[1:0], 8 its xLSTM[7:1], 1 xLSTM[0:1]. The block
            options go to the blocks that take them (``num_heads``, ``conv_width`` and ``eps``
            to both, ``expand`` and ``qkv_block_size`` to mLSTM, ``ffn_width`` to sLSTM).

    State: a tuple with each block's ``(conv inputs (B, C, k - 1), recurrent state)``, an
    attention block's ``(keys, values (B, W, dh), tokens seen (B,))``, an LRU block's
    ``(Re s, Im s)``.

    Example::

        >>> stack = BlockStack("mamba", 8, 16, num_layers=2, state_size=4)
        >>> y, state = stack(torch.randn(10, 3, 8))
        >>> y.shape, len(state), state[0][1].shape
        (torch.Size([10, 3, 16]), 2, torch.Size([1, 3, 128]))
    """

    def __init__(self, block: str, input_size: int, d_model: int, num_layers: int = 1, *,
                 dropout: float = 0.0, batch_first: bool = False, attention_every: int = 0,
                 attention_window: int = 1024, attention_heads: int | None = None,
                 slstm_every: int = 0, **block_options):
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"block: expected one of {sorted(BLOCKS)}, got {block!r}")
        I, d = _positive_int("input_size", input_size), _positive_int("d_model", d_model)
        L = _positive_int("num_layers", num_layers)
        dropout = _probability("dropout", dropout)
        self.block, self.input_size, self.hidden_size, self.num_layers = block, I, d, L
        self.batch_first = check_flag("batch_first", batch_first)
        every = max(self.check_every(block, "attention_every", attention_every, L),
                    self.check_every(block, "slstm_every", slstm_every, L))  # each refuses a
        # block not its own, so at most one is non-zero
        f = {k: block_options.pop(k) for k in ("device", "dtype") if k in block_options}
        self.proj = nn.Linear(I, d, **f) if I != d else None
        if block == "xlstm":  # an option neither xLSTM block takes would be dropped silently
            bad = sorted(set(block_options) - set(_options_for(MLSTMBlock, block_options))
                         - set(_options_for(SLSTMBlock, block_options)))
            if bad:
                raise TypeError(f"{bad[0]}: not an option of xLSTM's mLSTM or sLSTM block")

        def make(i: int) -> nn.Module:
            second = every and (i + 1) % every == 0
            if second and block == "griffin":  # Griffin: recurrent, recurrent, attention
                mlp = {k: v for k, v in block_options.items() if k in ("expansion", "eps")}
                heads = max(1, d // 64) if attention_heads is None else attention_heads
                return LocalAttentionBlock(d, num_heads=heads, window=attention_window,
                                           dropout=dropout, **mlp, **f)
            if block == "xlstm":
                cls = SLSTMBlock if second else MLSTMBlock
                opts = _options_for(cls, block_options)
                if second:  # the forget gate's initial biases follow the block's depth
                    opts.setdefault("position", i / (L - 1) if L > 1 else 0.0)
                return cls(d, dropout=dropout, **opts, **f)
            return BLOCKS[block](d, dropout=dropout, **block_options, **f)

        self.blocks = nn.ModuleList(make(i) for i in range(L))
        self.norm = _FINAL_NORM[block](d, eps=self.blocks[0].eps, **f)

    @staticmethod
    def check_every(block: str, option: str, every, num_layers: int) -> int:
        """``option`` (``attention_every``, ``slstm_every``: :data:`PERIODIC`) checked: 0, or a
        period with its block that puts at least one of its blocks among ``num_layers`` (a
        longer one would silently add none)."""
        if every == 0:
            return 0
        every = _positive_int(option, every)
        owner, what = next((b, w) for b, (o, w, _) in PERIODIC.items() if o == option)
        if block != owner:
            raise ValueError(f"{option}: {what} go with block={owner!r}, not {block!r}")
        if every > num_layers:
            raise ValueError(f"{option}={every} with num_layers={num_layers}: no block "
                             f"would be one of {what}; stack at least {every} blocks")
        return every

    def init_state(self, batch: int) -> tuple:
        """Zeros for every block (see the class's State)."""
        return tuple(b.init_state(batch) for b in self.blocks)

    def repeat_state(self, state: tuple, m: int) -> tuple:
        """Each sequence's state repeated ``m`` times in place (rows ``b*m .. b*m+m-1`` copies
        of ``b``), whichever dimension each block keeps its batch in."""
        def rep(s, dim):
            if isinstance(s, Tensor):
                return s.repeat_interleave(m, dim=dim)
            return tuple(rep(*t) for t in zip(s, dim))

        return rep(state, self._batch_dims())

    def _batch_dims(self):
        """Each state tensor's batch dimension, as a tree like the state's: found once, by
        comparing :meth:`init_state` for 1 and 2 sequences (the layout never changes)."""
        if getattr(self, "_dims", None) is None:
            def dims(one, two):
                if isinstance(one, Tensor):
                    dim = next((i for i, (a, b) in enumerate(zip(one.shape, two.shape))
                                if a != b), None)
                    if dim is None:
                        raise ValueError(f"repeat_state: a state tensor of shape "
                                         f"{tuple(one.shape)} has no batch dimension "
                                         "(init_state(1) and init_state(2) agree)")
                    return dim
                return tuple(dims(*t) for t in zip(one, two))

            with torch.no_grad():
                self._dims = dims(self.init_state(1), self.init_state(2))
        return self._dims

    def forward(self, x: Tensor, state=None, lengths=None) -> tuple[Tensor, tuple]:
        """``x`` (T, B, I) [(B, T, I) if batch_first], ``state`` or None (zeros), ``lengths``
        (B,) or None -> ``(y (T, B, d) [(B, T, d)], state)``; zeros past each length."""
        x = _time_major(x, self.input_size, self.batch_first, "input_size")
        mask = None
        if lengths is not None:  # checked (and NaN in the padding kept out) before the map
            mask = _lengths(lengths, x.shape[0], x.shape[1], x.device)[1]
            x = x.masked_fill(~mask, 0.0)
        if self.proj is not None:
            x = self.proj(x)
        states = []
        for i, b in enumerate(self.blocks):
            x, s = b.scan(x, None if state is None else state[i], lengths)
            states.append(s)
        y = self.norm(x)
        if mask is not None:  # a LayerNorm's bias would fill the padding (RMSNorm keeps 0)
            y = y.masked_fill(~mask, 0.0)
        return (y.transpose(0, 1) if self.batch_first else y), tuple(states)

    def step(self, x_t: Tensor, state=None) -> tuple[Tensor, tuple]:
        """One step, ``x_t`` (B, I) -> ``(y_t (B, d), state)``; stepping gives forward's."""
        if not isinstance(x_t, Tensor) or x_t.dim() != 2 or x_t.shape[-1] != self.input_size:
            got = tuple(x_t.shape) if isinstance(x_t, Tensor) else type(x_t).__name__
            raise ValueError(f"x_t: expected shape (B, input_size={self.input_size}), got {got}")
        x = x_t if self.proj is None else self.proj(x_t)
        states = []
        for i, b in enumerate(self.blocks):
            x, s = b.step(x, None if state is None else state[i])
            states.append(s)
        return self.norm(x), tuple(states)
