"""Griffin's residual block and Mamba's block: the equations written out by hand, causality,
padded batches against each sequence alone, streaming, parameter counts, gradients; the state
carried between pieces, the stack of blocks, and the language model on it."""
import doctest
import math

import pytest
import torch
import torch.nn.functional as F

from rnnkit.models import LanguageModel, LMConfig, blocks
from rnnkit.models.blocks import BlockStack, GriffinBlock, MambaBlock
from rnnkit.testing import check_block, off_initial_values

D64 = dict(dtype=torch.float64)
d, R, N, K = 8, 12, 4, 4  # d_model, Griffin's rnn_width, Mamba's state size, conv width

MAKERS = {
    "griffin": lambda **kw: GriffinBlock(d, rnn_width=R, conv_width=K, **kw),
    "mamba": lambda **kw: MambaBlock(d, state_size=N, conv_width=K, **kw),
}


def _block(name, **kw):
    """A float64 block with every parameter moved off its initial value (RMSNorm's 1, D's 1)."""
    torch.manual_seed(0)
    return off_initial_values(MAKERS[name](**kw).double())


def _rms(x, w, eps):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _gelu(v):  # GeLU, tanh approximation (Griffin's code)
    return 0.5 * v * (1 + torch.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))


def _causal_conv(v, conv):
    """``u_t = bias + sum_j w[:, j] v_{t - k + 1 + j}``, zero before the start: (T, B, C)."""
    w, k = conv.weight[:, 0], conv.weight.shape[-1]  # (C, k)
    return torch.stack([conv.bias + sum(w[:, j] * v[t - k + 1 + j] for j in range(k)
                                        if t - k + 1 + j >= 0) for t in range(v.shape[0])])


def _griffin_by_hand(g, x):
    n = _rms(x, g.temporal_norm.weight, 1e-6)
    gate = _gelu(n @ g.linear_y.weight.T + g.linear_y.bias)
    u = _causal_conv(n @ g.linear_x.weight.T + g.linear_x.bias, g.conv)
    W, b, lam = g.rg_lru.weight_ih_l0, g.rg_lru.bias_l0, g.rg_lru.a_param_l0
    h, hs = torch.zeros_like(u[0]), []
    for t in range(x.shape[0]):  # the RG-LRU, its value the convolved branch itself
        k_a, k_x = (u[t] @ W.T + b).chunk(2, dim=-1)
        a = torch.exp(-8.0 * torch.sigmoid(k_a) * F.softplus(lam))
        h = a * h + torch.sqrt(1 - a ** 2) * torch.sigmoid(k_x) * u[t]
        hs.append(h)
    x = x + (gate * torch.stack(hs)) @ g.linear_out.weight.T + g.linear_out.bias
    n = _rms(x, g.mlp_norm.weight, 1e-6)
    mlp = _gelu(n @ g.mlp_gate.weight.T + g.mlp_gate.bias) * (n @ g.mlp_up.weight.T + g.mlp_up.bias)
    return x + mlp @ g.mlp_down.weight.T + g.mlp_down.bias


def _mamba_by_hand(m, x):
    in_x, z = (_rms(x, m.norm.weight, 1e-5) @ m.in_proj.weight.T).chunk(2, dim=-1)
    u = F.silu(_causal_conv(in_x, m.conv))
    s = m.ssm
    dt, Bt, Ct = (u @ s.weight_ih_l0.T).split([m.d_inner, N, N], dim=-1)
    delta, A = F.softplus(dt + s.dt_bias_l0), -torch.exp(s.A_log_l0)  # (T, B, Din), (Din, N)
    h, ys = torch.zeros(x.shape[1], m.d_inner, N, **D64), []
    for t in range(x.shape[0]):  # Mamba's selective scan, one step at a time
        h = torch.exp(delta[t, :, :, None] * A) * h \
            + (delta[t] * u[t])[:, :, None] * Bt[t, :, None, :]
        ys.append((h * Ct[t, :, None, :]).sum(-1) + s.D_l0 * u[t])
    return x + (torch.stack(ys) * F.silu(z)) @ m.out_proj.weight.T


@pytest.mark.parametrize("name, by_hand", [("griffin", _griffin_by_hand),
                                           ("mamba", _mamba_by_hand)])
def test_forward_is_the_papers_block_written_out(name, by_hand):
    block, x = _block(name), torch.randn(9, 3, d, **D64)
    with torch.no_grad():
        torch.testing.assert_close(block(x), by_hand(block, x), atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("name", [*MAKERS, "attention"])
def test_the_block_contract(name):
    """Causality, padded batches (NaN padding) against each sequence alone, batch_first,
    streaming and pieces: :func:`rnnkit.testing.check_block`."""
    if name == "attention":
        from rnnkit.models.local_attention import LocalAttentionBlock

        check_block(lambda **kw: off_initial_values(
            LocalAttentionBlock(d, num_heads=2, window=4, **kw)), d)
    else:
        check_block(lambda **kw: _block(name, **kw), d)


@pytest.mark.parametrize("name", MAKERS)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(1)
    block = MAKERS[name]()  # float32, the initial values
    block(torch.randn(6, 3, d), lengths=torch.tensor([6, 2, 5])).pow(2).sum().backward()
    for n, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, n


def test_griffin_parameter_count():
    """De et al. 2024, Figure 2, with dense RG-LRU gates and biases as Griffin's code."""
    E = 3 * d
    norms = 2 * d
    branches = 2 * (d * R + R)  # linear_y (GeLU gate), linear_x (to the convolution)
    conv = K * R + R  # depthwise, with bias
    rglru = 2 * R * R + 2 * R + R  # gate_a and gate_x (dense), their biases, a_param
    out = R * d + d
    mlp = 2 * (d * E + E) + E * d + d  # W_g, W_u, W_down
    block = GriffinBlock(d, rnn_width=R, conv_width=K)
    assert sum(p.numel() for p in block.parameters()) == \
        norms + branches + conv + rglru + out + mlp == 1352
    assert dict(block.rg_lru.named_parameters())["weight_ih_l0"].shape == (2 * R, R)
    assert sum(p.numel() for p in GriffinBlock(d).parameters()) == 1056  # R = d


def test_mamba_parameter_count():
    """Gu & Dao 2023, Figure 3, with a full-rank delta projection (Mamba's has rank
    ceil(d / 16): x_proj (r + 2N, Din) and dt_proj (Din, r), where ours is (Din + 2N, Din))."""
    Din = 2 * d
    count = d + 2 * Din * d + (K * Din + Din) + (Din + 2 * N) * Din + Din + Din * N + Din \
        + Din * d  # norm, in_proj, conv, S6 weight_ih (delta, B, C), dt_bias, A_log, D, out_proj
    block = MambaBlock(d, state_size=N, conv_width=K)
    assert sum(p.numel() for p in block.parameters()) == count == 952
    r = math.ceil(d / 16)
    mambas = count - Din * Din + r * Din + r * Din  # its low-rank delta: x_proj rows + dt_proj
    assert mambas == 728
    assert [n for n, _ in block.named_parameters()] == [
        "norm.weight", "in_proj.weight", "conv.weight", "conv.bias", "ssm.weight_ih_l0",
        "ssm.dt_bias_l0", "ssm.A_log_l0", "ssm.D_l0", "out_proj.weight"]


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: GriffinBlock(0), ValueError, r"d_model: expected a positive int, got 0"),
    (lambda: GriffinBlock(8, expansion=1.5), ValueError, r"expansion: expected a positive int"),
    (lambda: GriffinBlock(8, conv_width=0), ValueError, r"conv_width: expected a positive int"),
    (lambda: MambaBlock(8, expand=True), ValueError, r"expand: expected a positive int"),
    (lambda: MambaBlock(8, batch_first=1), TypeError, r"batch_first should be of type bool"),
    (lambda: MambaBlock(8, state_size=0), ValueError, r"state_size: expected a positive int"),
])
def test_bad_options(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


@pytest.mark.parametrize("name", MAKERS)
def test_scan_in_pieces_equals_the_whole_and_returns_each_sequences_state(name):
    """Truncated BPTT: the state after a piece carries the next one; with lengths it is each
    sequence's state at its last valid step (its own run, alone)."""
    block, x = _block(name), torch.randn(9, 3, d, **D64)
    whole, (buf, h) = block.scan(x)
    a, state = block.scan(x[:4])
    b, (buf2, h2) = block.scan(x[4:], state)
    torch.testing.assert_close(torch.cat([a, b]), whole, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(buf2, buf, atol=0, rtol=0)
    torch.testing.assert_close(h2, h, atol=1e-12, rtol=1e-10)
    assert buf.shape == (3, block.conv.weight.shape[0], K - 1)
    lengths = [9, 2, 6]
    _, (buf, h) = block.scan(x, lengths=lengths)
    for i, L in enumerate(lengths):
        _, (b_alone, h_alone) = block.scan(x[:L, i:i + 1])
        torch.testing.assert_close(buf[i:i + 1], b_alone, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(h[:, i:i + 1], h_alone, atol=1e-12, rtol=1e-10)
    with torch.no_grad():  # the streamed state is the scanned one
        state = None
        for t in range(9):
            _, state = block.step(x[t], state)
    torch.testing.assert_close(state[0], block.scan(x)[1][0], atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(state[1], block.scan(x)[1][1], atol=1e-12, rtol=1e-10)


def _stack(name, I=5, L=2, **kw):
    torch.manual_seed(0)
    opts = {"rnn_width": R} if name == "griffin" else {"state_size": N}
    return off_initial_values(BlockStack(name, I, d, L, conv_width=K, **opts, **kw).double())


@pytest.mark.parametrize("name", MAKERS)
def test_block_stack_is_map_blocks_norm_and_carries_state(name):
    stack, x = _stack(name), torch.randn(8, 3, 5, **D64)
    y, state = stack(x)
    n = stack.proj(x)
    for b in stack.blocks:
        n = b(n)
    eps = stack.norm.eps
    torch.testing.assert_close(y, _rms(n, stack.norm.weight, eps), atol=1e-12, rtol=1e-10)
    a, s = stack(x[:3])
    b, s = stack(x[3:], s)
    torch.testing.assert_close(torch.cat([a, b]), y, atol=1e-12, rtol=1e-10)
    assert len(state) == 2 and all(len(st) == 2 for st in state)
    with torch.no_grad():
        s, got = None, []
        for t in range(8):
            out, s = stack.step(x[t], s)
            got.append(out)
    torch.testing.assert_close(torch.stack(got), y, atol=1e-12, rtol=1e-10)
    lengths = [8, 3, 5]
    yl, _ = stack(x, lengths=lengths)
    for i, L in enumerate(lengths):
        torch.testing.assert_close(yl[:L, i:i + 1], stack(x[:L, i:i + 1])[0], atol=1e-12,
                                   rtol=1e-10)
        assert (yl[L:, i] == 0).all()
    same = _stack(name, I=d)
    assert same.proj is None and same(torch.randn(4, 2, d, **D64))[0].shape == (4, 2, d)


def test_block_stack_parameters_and_errors():
    stack = BlockStack("mamba", 5, d, 3, state_size=N, conv_width=K)
    one = sum(p.numel() for p in MambaBlock(d, state_size=N, conv_width=K).parameters())
    assert sum(p.numel() for p in stack.parameters()) == (5 * d + d) + 3 * one + d
    for make, pattern in [
        (lambda: BlockStack("lstm", 5, d), r"block: expected one of \['deep_lru', 'griffin', 'mamba', 'xlstm'\]"),
        (lambda: BlockStack("mamba", 5, d, 0), r"num_layers: expected a positive int"),
        (lambda: BlockStack("mamba", 5, d, dropout=1.0), r"dropout: expected a probability"),
        (lambda: stack(torch.randn(4, 2, 6)), r"x: expected shape \(T, B, input_size\) with "
                                              r"input_size=5"),
        (lambda: MambaBlock(d, dropout=-0.1), r"dropout: expected a probability"),
        (lambda: stack.step(torch.randn(2, d)), r"x_t: expected shape \(B, input_size=5\)"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            make()


@pytest.mark.parametrize("name", MAKERS)
def test_residual_dropout_drops_each_branch_never_the_stream(name):
    """In training, ``x + drop(branch)``: where the mix is dropped the output is the stream
    itself (Mamba), and a kept mix is scaled by 1/(1-p); the stack's blocks get it."""
    block = _block(name, dropout=0.5)
    x = torch.randn(6, 2, d, **D64)
    with torch.no_grad():
        full = block.eval()(x)
        torch.manual_seed(0)
        y = block.train()(x)
    assert not torch.equal(y, full)
    if name == "mamba":
        mix = full - x
        dropped, kept = torch.isclose(y, x, atol=1e-14), torch.isclose(y - x, 2 * mix)
        assert (dropped | kept).all() and dropped.any() and kept.any()
    stack = BlockStack(name, 5, d, 2, dropout=0.3, conv_width=K)
    assert all(b.drop.p == 0.3 for b in stack.blocks)
    assert not any(isinstance(m, torch.nn.Dropout) for m in stack.children())


def test_language_model_refuses_init_range_on_blocks():
    with pytest.raises(ValueError, match=r"model.init_range=0.1 with model.cell='mamba'.*"
                                         r"unset init_range"):
        LanguageModel(LMConfig(cell="mamba", embedding_size=d, hidden_size=d, init_range=0.1),
                      vocab_size=11)


@pytest.mark.parametrize("name", MAKERS)
def test_language_model_on_blocks_carries_its_state_between_batches(name):
    extras = {"state_size": N} if name == "mamba" else {}
    lm = LanguageModel(LMConfig(cell=name, embedding_size=d, hidden_size=d, num_layers=2,
                                tie_weights=True, extras=extras), vocab_size=11).double()
    assert isinstance(lm.rnn, BlockStack) and lm.decoder.weight is lm.embedding.weight
    tokens = torch.randint(0, 11, (10, 3))
    whole, _ = lm(tokens)
    a, state = lm(tokens[:6])
    b, _ = lm(tokens[6:], state)
    torch.testing.assert_close(torch.cat([a, b]), whole, atol=1e-12, rtol=1e-10)
    from rnnkit.tasks.export_steps import _check_exportable
    with pytest.raises(ValueError, match="is a BlockStack, not one recurrent layer"):
        _check_exportable(lm.rnn, "the language model's recurrent layer")


def test_docstring_examples():
    result = doctest.testmod(blocks)
    assert result.attempted > 0 and result.failed == 0
