"""Griffin's local-attention block: written out by hand, the window and causality, RoPE's
relative positions, padded batches, streaming and pieces against the whole; the Griffin stack
(recurrent, recurrent, attention) in a language model."""
import doctest
import math

import pytest
import torch
import torch.nn.functional as F

from rnnkit.models import LanguageModel, LMConfig, local_attention
from rnnkit.models.blocks import BlockStack, GriffinBlock
from rnnkit.models.local_attention import LocalAttentionBlock, rope

D64 = dict(dtype=torch.float64)
d, H, W = 16, 2, 4  # d_model, heads (dh 8), window


def _block(**kw):
    """A float64 block with every parameter moved off its initial value."""
    torch.manual_seed(0)
    blk = LocalAttentionBlock(d, num_heads=H, window=W, **kw).double()
    with torch.no_grad():
        for p in blk.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return blk


def _rms(x, w, eps=1e-6):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _rot(u, p):
    """Griffin's RoPE by hand: pairs (i, i + dh/4) of the first half by p / 10000^(4i/dh)."""
    dh = u.shape[-1]
    r, out = dh // 4, u.clone()
    for i in range(r):
        a = p / 10000 ** (4 * i / dh)
        out[i] = u[i] * math.cos(a) - u[r + i] * math.sin(a)
        out[r + i] = u[r + i] * math.cos(a) + u[i] * math.sin(a)
    return out


def _by_hand(b, x):
    """One sequence ``x`` (T, d): every query over its keys t - W .. t, head by head."""
    T, dh = x.shape[0], b.head_dim
    n = _rms(x, b.temporal_norm.weight)
    q = (n @ b.proj_q.weight.T).view(T, H, dh)
    k, v = n @ b.proj_k.weight.T, n @ b.proj_v.weight.T
    rows = []
    for t in range(T):
        keys = range(max(0, t - W), t + 1)
        heads = []
        for h in range(H):
            qt = _rot(q[t, h], t)
            logits = torch.stack([qt @ _rot(k[s], s) for s in keys]) / math.sqrt(dh)
            p = torch.softmax(logits, 0)
            heads.append(sum(p[j] * v[s] for j, s in enumerate(keys)))
        rows.append(torch.cat(heads))
    x = x + torch.stack(rows) @ b.proj_final.weight.T + b.proj_final.bias
    n = _rms(x, b.mlp_norm.weight)
    g = F.gelu(n @ b.mlp_gate.weight.T + b.mlp_gate.bias, approximate="tanh")
    return x + (g * (n @ b.mlp_up.weight.T + b.mlp_up.bias)) @ b.mlp_down.weight.T \
        + b.mlp_down.bias


@pytest.mark.parametrize("chunk", [128, 3])  # one chunk of queries, or bands across chunks
def test_forward_is_the_block_written_out(monkeypatch, chunk):
    monkeypatch.setattr(local_attention, "_CHUNK", chunk)
    b, x = _block(), torch.randn(10, 2, d, **D64)
    y = b(x)
    for i in range(2):
        torch.testing.assert_close(y[:, i], _by_hand(b, x[:, i]), atol=1e-12, rtol=1e-10)


def test_a_query_sees_its_window_and_nothing_later():
    b, x = _block(), torch.randn(10, 1, d, **D64)
    y = b(x)
    for t0 in (0, 6):
        x2 = x.clone()
        x2[t0] += 1.0
        changed = (b(x2) - y).abs().amax(dim=(1, 2)) > 0  # (T,)
        want = [t0 <= t <= t0 + W for t in range(10)]
        assert changed.tolist() == want, (t0, changed.tolist())


def test_rope_depends_on_the_offset_only_and_leaves_the_second_half():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(8, generator=g, **D64), torch.randn(8, generator=g, **D64)
    dot = [rope(q, torch.tensor(p + c)) @ rope(k, torch.tensor(s + c))
           for p, s, c in ((5, 2, 0), (5, 2, 1000), (5, 2, 123456))]
    torch.testing.assert_close(torch.stack(dot[1:]), dot[0].expand(2), atol=1e-9, rtol=1e-9)
    r = rope(q, torch.tensor(3))
    assert torch.equal(r[4:], q[4:]) and torch.allclose(r, _rot(q, 3))


def test_padded_batch_equals_each_sequence_alone():
    b, lengths = _block(), [9, 5, 1]
    x = torch.randn(9, 3, d, **D64)
    x[5:, 1] = float("nan")
    x[1:, 2] = float("nan")
    x.requires_grad_(True)
    y, (k, v, n) = b.scan(x, lengths=torch.tensor(lengths))
    assert n.tolist() == lengths
    for i, L in enumerate(lengths):
        alone, (ka, va, na) = b.scan(x[:L, i:i + 1])
        torch.testing.assert_close(y[:L, i:i + 1], alone, atol=1e-12, rtol=1e-10)
        assert (y[L:, i] == 0).all()
        torch.testing.assert_close(k[i:i + 1], ka, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(v[i:i + 1], va, atol=1e-12, rtol=1e-10)
    y.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_pieces_and_steps_equal_the_whole():
    b, x = _block(), torch.randn(11, 2, d, **D64)
    whole, state = b.scan(x)
    s, parts = None, []
    for a, e in ((0, 2), (2, 3), (3, 9), (9, 11)):  # pieces shorter and longer than W
        y, s = b.scan(x[a:e], s)
        parts.append(y)
    torch.testing.assert_close(torch.cat(parts), whole, atol=1e-12, rtol=1e-10)
    for got, want in zip(s, state):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)
    with torch.no_grad():
        s, steps = None, []
        for t in range(11):
            y, s = b.step(x[t], s)
            steps.append(y)
    torch.testing.assert_close(torch.stack(steps), whole, atol=1e-12, rtol=1e-10)
    bf = _block(batch_first=True)
    torch.testing.assert_close(bf(x.transpose(0, 1)), whole.transpose(0, 1))


def test_griffin_stack_interleaves_attention_and_carries_every_state():
    stack = BlockStack("griffin", 5, d, 4, attention_every=3, attention_window=W,
                       attention_heads=H, rnn_width=12, expansion=2).double()
    kinds = [type(b) for b in stack.blocks]
    assert kinds == [GriffinBlock, GriffinBlock, LocalAttentionBlock, GriffinBlock]
    assert stack.blocks[2].mlp_up.out_features == 2 * d  # expansion reaches its MLP
    x = torch.randn(12, 2, 5, **D64)
    whole, _ = stack(x)
    a, s = stack(x[:7])
    b, _ = stack(x[7:], s)
    torch.testing.assert_close(torch.cat([a, b]), whole, atol=1e-12, rtol=1e-10)
    lm = LanguageModel(LMConfig(cell="griffin", embedding_size=d, hidden_size=d, num_layers=3,
                                extras={"attention_every": 3, "attention_window": W}),
                       vocab_size=11)
    assert isinstance(lm.rnn.blocks[2], LocalAttentionBlock) and lm.rnn.blocks[2].num_heads == 1


@pytest.mark.parametrize("make, pattern", [
    (lambda: LocalAttentionBlock(12, num_heads=2), r"heads of a size divisible by 4"),
    (lambda: LocalAttentionBlock(16, window=0), r"window: expected a positive int"),
    (lambda: BlockStack("mamba", 4, 16, 3, attention_every=3), r"go with block='griffin'"),
    (lambda: BlockStack("griffin", 4, 16, 3, attention_every=-1), r"attention_every: expected"),
])
def test_bad_options(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_docstring_examples():
    result = doctest.testmod(local_attention)
    assert result.attempted > 0 and result.failed == 0
