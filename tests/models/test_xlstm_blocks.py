"""xLSTM's mLSTM and sLSTM blocks and the deep LRU's block: each written out by hand from the
papers' unstabilised equations, causality, padded batches against each sequence alone,
streaming, the state carried between pieces, options, the stacks that mix them, and the
language model on them."""
import doctest
import math

import pytest
import torch
import torch.nn.functional as F

from rnnkit.models import LanguageModel, LMConfig, lru_block, xlstm_blocks
from rnnkit.models.blocks import BlockStack
from rnnkit.models.lru_block import LRUBlock
from rnnkit.models.sequence import BidirectionalBlockStack, build_sequence_layer
from rnnkit.models.xlstm_blocks import MLSTMBlock, SLSTMBlock
from rnnkit.testing import check_block, off_initial_values

D64 = dict(dtype=torch.float64)
d, K = 8, 4  # d_model, conv width

MAKERS = {
    "mlstm": lambda **kw: MLSTMBlock(d, num_heads=2, conv_width=K, **kw),  # Din 16, dh 8
    "slstm": lambda **kw: SLSTMBlock(d, num_heads=2, conv_width=K, ffn_width=12, **kw),
    "lru": lambda **kw: LRUBlock(d, state_size=6, r_min=0.5, r_max=0.95, **kw),
}


def _block(name, **kw):
    """A float64 block with every parameter moved off its initial value (zeros, ones)."""
    torch.manual_seed(0)
    return off_initial_values(MAKERS[name](**kw).double())


def _ln(x, w, b=None, eps=1e-5):
    y = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + eps)
    return y * w + (0 if b is None else b)


def _heads_norm(h, heads, w, eps=1e-5):
    """Each head's features normalised on their own, times ``w``."""
    g = h.unflatten(-1, (heads, -1))
    g = (g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, unbiased=False, keepdim=True) + eps)
    return g.flatten(-2) * w


def _blockdiag(W, v):
    """``W`` (blocks, out, in): ``out[..., j] = W[j] @ v[..., j]``, written as a loop."""
    nb, size = W.shape[:2]
    parts = v.unflatten(-1, (nb, size))
    return torch.cat([parts[..., j, :] @ W[j].T for j in range(nb)], dim=-1)


def _causal_conv(v, conv):
    w, k = conv.weight[:, 0], conv.weight.shape[-1]
    return torch.stack([conv.bias + sum(w[:, j] * v[t - k + 1 + j] for j in range(k)
                                        if t - k + 1 + j >= 0) for t in range(v.shape[0])])


def _mlstm_by_hand(b, x):
    """The paper's unstabilised mLSTM (C~ q / max(|n~ . q|, 1)) inside the block."""
    nh, Din = b.num_heads, b.d_inner
    dh = Din // nh
    xm, z = (_ln(x, b.norm.weight) @ b.proj_up.weight.T).chunk(2, dim=-1)
    c = F.silu(_causal_conv(xm, b.conv))
    q, k, v = (_blockdiag(b.q_proj.weight, c), _blockdiag(b.k_proj.weight, c),
               _blockdiag(b.v_proj.weight, xm))
    qkv = torch.cat([q, k, v], dim=-1)
    i_ = qkv @ b.igate.weight.T + b.igate.bias
    f_ = qkv @ b.fgate.weight.T + b.fgate.bias
    T, B = x.shape[:2]
    C = torch.zeros(B, nh, dh, dh, **D64)
    n = torch.zeros(B, nh, dh, **D64)
    hs = []
    for t in range(T):
        qt, kt, vt = (u[t].reshape(B, nh, dh) for u in (q, k, v))
        kt = kt / math.sqrt(dh)
        f, i = torch.sigmoid(f_[t])[..., None], torch.exp(i_[t])[..., None]  # (B, nh, 1)
        C = f[..., None] * C + i[..., None] * vt[..., :, None] * kt[..., None, :]
        n = f * n + i * kt
        num = (C @ qt[..., None])[..., 0]
        den = torch.clamp((n * qt).sum(-1, keepdim=True).abs(), min=1.0)
        hs.append((num / den).reshape(B, Din))
    h = _heads_norm(torch.stack(hs), nh, b.outnorm_weight)
    return x + ((h + b.skip * c) * F.silu(z)) @ b.proj_down.weight.T


def _slstm_by_hand(b, x):
    """The paper's unstabilised sLSTM (i = exp, f = sigmoid) inside the block."""
    nh, T, B = b.num_heads, x.shape[0], x.shape[1]
    dh = d // nh
    nrm = _ln(x, b.norm.weight)
    c = F.silu(_causal_conv(nrm, b.conv))
    g = torch.cat([_blockdiag(b.zgate.weight, nrm), _blockdiag(b.igate.weight, c),
                   _blockdiag(b.fgate.weight, c), _blockdiag(b.ogate.weight, nrm)], -1)
    g = g + b.gate_bias
    R = b.weight_hh  # (4, nh, dh, dh): gate k, head j maps h_j by R[k, j]
    h, cc, n, hs = (torch.zeros(B, d, **D64) for _ in range(4))
    hs = []
    for t in range(T):
        rec = torch.cat([torch.cat([h[:, j * dh:(j + 1) * dh] @ R[k, j].T for j in range(nh)], -1)
                         for k in range(4)], -1)
        z_, i_, f_, o_ = (g[t] + rec).chunk(4, dim=-1)
        cc = torch.sigmoid(f_) * cc + torch.exp(i_) * torch.tanh(z_)
        n = torch.sigmoid(f_) * n + torch.exp(i_)
        h = torch.sigmoid(o_) * cc / n
        hs.append(h)
    x = x + _heads_norm(torch.stack(hs), nh, b.outnorm_weight)
    gate, up = (_ln(x, b.mlp_norm.weight) @ b.mlp_up.weight.T).chunk(2, dim=-1)
    return x + (F.gelu(gate) * up) @ b.mlp_down.weight.T


def _lru_by_hand(b, x):
    """The LRU in complex arithmetic, then GeLU (tanh) and the GLU."""
    L = b.lru
    N = L.nu_log_l0.shape[0]
    lam = torch.exp(-torch.exp(L.nu_log_l0) + 1j * torch.exp(L.theta_log_l0))
    Bc = L.weight_ih_l0[:N] + 1j * L.weight_ih_l0[N:]  # (N, d)
    Cc = L.weight_out_l0[:, :N] - 1j * L.weight_out_l0[:, N:]  # Re(C s)
    gamma = torch.exp(L.gamma_log_l0)
    u = _ln(x, b.norm.weight, b.norm.bias)
    s, ys = torch.zeros(x.shape[1], N, dtype=torch.complex128), []
    for t in range(x.shape[0]):
        s = lam * s + gamma * (u[t].to(torch.complex128) @ Bc.T)
        ys.append((s @ Cc.T).real + L.weight_skip_l0 * u[t] + L.bias_l0)
    y = F.gelu(torch.stack(ys), approximate="tanh")
    return x + (y @ b.out1.weight.T + b.out1.bias) * torch.sigmoid(y @ b.out2.weight.T + b.out2.bias)


@pytest.mark.parametrize("name, by_hand", [("mlstm", _mlstm_by_hand), ("slstm", _slstm_by_hand),
                                           ("lru", _lru_by_hand)])
def test_forward_is_the_papers_block_written_out(name, by_hand):
    block, x = _block(name), torch.randn(9, 3, d, **D64)
    with torch.no_grad():
        torch.testing.assert_close(block(x), by_hand(block, x), atol=1e-11, rtol=1e-9)


@pytest.mark.parametrize("name", MAKERS)
def test_the_block_contract(name):
    """Causality, padded batches (NaN padding) against each sequence alone, batch_first,
    streaming, pieces, each sequence's final state: :func:`rnnkit.testing.check_block`."""
    check_block(lambda **kw: _block(name, **kw), d)


def test_the_contract_catches_a_block_that_reads_ahead_or_fills_its_padding():
    class ReadsAhead(LRUBlock):
        def scan(self, x, state=None, lengths=None):
            y, state = super().scan(x.flip(0), state, lengths)
            return y.flip(0), state

    class FillsPadding(LRUBlock):
        def scan(self, x, state=None, lengths=None):
            y, state = super().scan(x, state, lengths)
            return y + 1.0, state

    for cls, pattern in ((ReadsAhead, "causality"), (FillsPadding, "not zero past its length")):
        with pytest.raises(AssertionError, match=pattern):
            check_block(lambda **kw: cls(d, state_size=4, **kw), d)


@pytest.mark.parametrize("name", MAKERS)
def test_gradients_reach_every_parameter_from_the_initial_values(name):
    torch.manual_seed(1)
    block = MAKERS[name]()  # float32, zero gate weights and zero R included
    block(torch.randn(6, 3, d), lengths=torch.tensor([6, 2, 5])).pow(2).sum().backward()
    for n, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, n


@pytest.mark.parametrize("name, bound", [("mlstm", 0.06), ("slstm", 0.1)])
def test_bfloat16_runs_the_recurrence_in_float32_over_a_long_stream(name, bound):
    """A bfloat16 block, scanned and streamed over 600 steps, stays near the float32 block: in
    bfloat16 arithmetic a forget gate near 1 rounds (sigmoid(6) to 0.996 or 1). Stepping this
    mLSTM block that way drifted to 0.13 (0.04 in float32); the sLSTM's error (0.07) is its
    weights' and inputs' rounding, and its bound only a sanity check."""
    torch.manual_seed(0)
    block = MAKERS[name]().eval()
    x = torch.randn(600, 1, d)
    with torch.no_grad():
        want = block(x)
        half = MAKERS[name]().eval()
        half.load_state_dict(block.state_dict())
        half = half.to(torch.bfloat16)
        scanned = half(x.bfloat16())
        state, stepped = None, []
        for t in range(600):
            y, state = half.step(x[t].bfloat16(), state)
            stepped.append(y)
    assert scanned.dtype == torch.bfloat16 and state[1][0].dtype == torch.bfloat16
    for got in (scanned, torch.stack(stepped)):
        assert (got.float() - want).abs().max() < bound


def test_initialisation_is_the_authors():
    m = MLSTMBlock(16, num_heads=4)
    assert (m.igate.weight == 0).all() and (m.fgate.weight == 0).all()
    torch.testing.assert_close(m.fgate.bias.data, torch.linspace(3.0, 6.0, 4))
    assert (m.skip == 1).all() and (m.outnorm_weight == 1).all()
    for position in (0.0, 1.0):
        s = SLSTMBlock(16, num_heads=2, position=position)
        assert (s.weight_hh == 0).all()
        bias = s.gate_bias.detach().double()
        assert (bias[:16] == 0).all() and (bias[16:32] == 0).all() and (bias[48:] == 0).all()
        j = torch.arange(8, dtype=torch.float64) / 7
        want = 5 - 12 * j ** (0.3 + 1.3 * position)  # per head: 5 for unit 0, -7 for the last
        torch.testing.assert_close(bias[32:48], want.repeat(2).float().double())
    assert SLSTMBlock(100).mlp_down.in_features == 192  # ceil(1.3 * 100 / 64) * 64


@pytest.mark.parametrize("make, pattern", [
    (lambda: MLSTMBlock(8, num_heads=3), r"num_heads: expected a divisor of expand \* d_model=16"),
    (lambda: MLSTMBlock(8, qkv_block_size=5), r"qkv_block_size: expected a divisor"),
    (lambda: MLSTMBlock(8, expand=1.5), r"expand: expected a positive int"),
    (lambda: SLSTMBlock(8, num_heads=3), r"num_heads: expected a divisor of d_model=8"),
    (lambda: SLSTMBlock(8, position=1.5), r"position: expected a number in \[0, 1\]"),
    (lambda: SLSTMBlock(8, ffn_width=0), r"ffn_width: expected a positive int"),
    (lambda: LRUBlock(8, state_size=0), r"state_size: expected a positive int"),
    (lambda: LRUBlock(8, dropout=1.0), r"dropout: expected a probability"),
])
def test_bad_options(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_xlstm_stack_places_slstm_blocks_and_routes_options():
    stack = BlockStack("xlstm", 5, d, 4, slstm_every=2, num_heads=2, expand=3, ffn_width=16,
                       conv_width=K)
    kinds = [type(b) for b in stack.blocks]
    assert kinds == [MLSTMBlock, SLSTMBlock, MLSTMBlock, SLSTMBlock]  # xLSTM[1:1]
    assert stack.blocks[0].d_inner == 3 * d and stack.blocks[1].mlp_down.in_features == 16
    assert all(b.num_heads == 2 and b.conv.weight.shape[-1] == K for b in stack.blocks)
    # the forget biases follow each sLSTM block's depth: positions 1/3 and 1
    for b, p in ((stack.blocks[1], 1 / 3), (stack.blocks[3], 1.0)):
        torch.testing.assert_close(b.gate_bias[2 * d:3 * d].detach(),
                                   SLSTMBlock(d, num_heads=2, position=p).gate_bias[2 * d:3 * d])
    assert isinstance(stack.norm, torch.nn.LayerNorm) and stack.norm.bias is None
    assert all(type(b) is MLSTMBlock for b in BlockStack("xlstm", 5, d, 3, num_heads=2).blocks)
    assert all(type(b) is SLSTMBlock
               for b in BlockStack("xlstm", 5, d, 2, slstm_every=1, num_heads=2).blocks)
    lru = BlockStack("deep_lru", 5, d, 2, state_size=4)
    assert isinstance(lru.norm, torch.nn.LayerNorm) and lru.norm.bias is not None
    for make, error, pattern in [
        (lambda: BlockStack("xlstm", 5, d, 2, state_size=4), TypeError,
         r"state_size: not an option of xLSTM's mLSTM or sLSTM block"),
        (lambda: BlockStack("mamba", 5, d, 2, slstm_every=2), ValueError,
         r"slstm_every: xLSTM's sLSTM blocks go with block='xlstm', not 'mamba'"),
        (lambda: BlockStack("xlstm", 5, d, 2, slstm_every=3), ValueError,
         r"slstm_every=3 with num_layers=2: no block would be one of xLSTM's sLSTM blocks"),
        (lambda: BlockStack("xlstm", 5, d, 2, attention_every=1), ValueError,
         r"attention_every: Griffin's local-attention blocks go with block='griffin'"),
        (lambda: BlockStack("griffin", 5, d, 3, attention_every=3, slstm_every=2), ValueError,
         r"slstm_every: xLSTM's sLSTM blocks go with block='xlstm', not 'griffin'"),
    ]:
        with pytest.raises(error, match=pattern):
            make()


@pytest.mark.parametrize("block, opts", [("xlstm", {"slstm_every": 2, "num_heads": 2}),
                                         ("deep_lru", {"state_size": 4})])
def test_stack_is_map_blocks_norm_streams_and_carries_state(block, opts):
    torch.manual_seed(0)
    stack = BlockStack(block, 5, d, 2, **opts).double().eval()
    x = torch.randn(8, 3, 5, **D64)
    with torch.no_grad():
        y, state = stack(x)
        n = stack.proj(x)
        for b in stack.blocks:
            n = b(n)
        torch.testing.assert_close(y, stack.norm(n), atol=0, rtol=0)
        a, s = stack(x[:3])
        b, s = stack(x[3:], s)
        torch.testing.assert_close(torch.cat([a, b]), y, atol=1e-12, rtol=1e-10)
        s, got = None, []
        for t in range(8):
            out, s = stack.step(x[t], s)
            got.append(out)
        torch.testing.assert_close(torch.stack(got), y, atol=1e-12, rtol=1e-10)


def test_sequence_layer_builds_them_bidirectional_and_refuses_cell_options():
    layer = build_sequence_layer("xlstm", 5, d, num_layers=2, bidirectional=True,
                                 slstm_every=2, num_heads=2)
    assert isinstance(layer, BidirectionalBlockStack)
    assert [type(lv.blocks[0]) for lv in layer.fwd] == [MLSTMBlock, SLSTMBlock]
    assert [type(lv.blocks[0]) for lv in layer.bwd] == [MLSTMBlock, SLSTMBlock]
    torch.testing.assert_close(layer.fwd[1].blocks[0].gate_bias[2 * d:3 * d].detach(),  # last
                               SLSTMBlock(d, num_heads=2, position=1.0).gate_bias[2 * d:3 * d])
    y, _ = layer(torch.randn(7, 3, 5), lengths=torch.tensor([7, 3, 5]))
    assert y.shape == (7, 3, 2 * d) and (y[3:, 1] == 0).all()
    one = build_sequence_layer("deep_lru", 5, d, num_layers=2, state_size=4)
    assert isinstance(one, BlockStack) and all(type(b) is LRUBlock for b in one.blocks)
    with pytest.raises(ValueError, match=r"model.extras.zoneout: not an option of the xlstm "
                                         r"block .*slstm_every"):
        build_sequence_layer("xlstm", 5, d, zoneout=0.1)
    with pytest.raises(ValueError, match=r"model.extras.position: not an option"):
        build_sequence_layer("xlstm", 5, d, position=0.5)


@pytest.mark.parametrize("cell, extras", [("xlstm", {"slstm_every": 2, "num_heads": 2}),
                                          ("deep_lru", {"state_size": 4})])
def test_language_model_on_them_carries_its_state_between_batches(cell, extras):
    lm = LanguageModel(LMConfig(cell=cell, embedding_size=d, hidden_size=d, num_layers=2,
                                tie_weights=True, extras=extras), vocab_size=11).double()
    tokens = torch.randint(0, 11, (10, 3))
    whole, _ = lm(tokens)
    a, state = lm(tokens[:6])
    b, _ = lm(tokens[6:], state)
    torch.testing.assert_close(torch.cat([a, b]), whole, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("module", [xlstm_blocks, lru_block])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
