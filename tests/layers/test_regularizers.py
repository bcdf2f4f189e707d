"""Regularisers: variational dropout, zoneout, weight drop, max-norm, embedding dropout."""
import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit.cells import Cell, GRUCell, LayerNormGRUCell
from rnnkit.kernels.dispatch import choose_backend
from rnnkit.layers import build_layer
from rnnkit.layers.regularizers import embedding_dropout, max_norm_
from rnnkit.testing import as_tuple, check_layer

T, B, I, H = 6, 3, 4, 5
ALL = dict(input_dropout=0.2, recurrent_dropout=0.3, zoneout=0.2, weight_drop=0.3, max_norm=1.5)


# ------------------------------------------------------------ probe cells
class _Probe(Cell):
    """Shows what the recurrence sees: ``y_t = W_hh h_{t-1}``; the new state is ``x_t`` (I == H)."""

    def param_shapes(self):
        return {"weight_hh": (self.hidden_size, self.hidden_size)}

    def step(self, x_t, state, p):
        (h,) = state
        return F.linear(h, p["weight_hh"]), (x_t,)


class _Pass(Cell):
    """The new state and the output are the input: ``h_t = y_t = x_t`` (I == H)."""

    def param_shapes(self):
        return {"weight_ih": (self.hidden_size, self.input_size)}

    def step(self, x_t, state, p):
        return x_t, (x_t,)


def _probe(n, **kw):
    layer = rnnkit.Recurrent(_Probe, n, n, **kw).double()
    with torch.no_grad():
        for w in layer.parameters():
            w.copy_(torch.eye(n))
    return layer


def _is_mask(m, p):
    return bool(((m == 0) | torch.isclose(m, torch.tensor(1 / (1 - p), dtype=m.dtype))).all())


# ------------------------------------------- rate 0 is the plain layer
LAYER_CASES = {
    "rnn_tanh": ALL, "lstm": ALL, "gru": ALL, "indrnn": ALL, "layernorm_lstm": ALL,
    "layernorm_gru": ALL, "mingru": dict(input_dropout=0.2, zoneout=0.2),
    "sru": dict(input_dropout=0.2, zoneout=0.2), "qrnn": dict(input_dropout=0.2, zoneout=0.2),
    "lru": dict(input_dropout=0.2), "rglru": dict(input_dropout=0.2, zoneout=0.2),
    "slstm": ALL, "mlstm": dict(input_dropout=0.2, zoneout=0.2),
    "s6": dict(input_dropout=0.2, zoneout=0.2),
}


@pytest.mark.parametrize("cell", LAYER_CASES)
def test_every_regularizer_at_rate_zero_equals_the_plain_layer(cell):
    torch.manual_seed(0)
    plain = build_layer(cell, I, H, num_layers=2, bidirectional=True, backend="loop").double()
    x, lengths = torch.randn(T, B, I, dtype=torch.float64), torch.tensor([6, 2, 4])
    want, h_want = plain(x, lengths=lengths)
    for name in LAYER_CASES[cell]:
        zero = dict(max_norm=1e9) if name == "max_norm" else {name: 0.0}
        if name == "zoneout":
            zero = dict(zoneout=(0.0, 0.0))
        layer = build_layer(cell, I, H, num_layers=2, bidirectional=True, backend="loop",
                            **zero).double()
        layer.load_state_dict(plain.state_dict())
        layer.train()
        got, h_got = layer(x, lengths=lengths)
        assert torch.equal(got, want), (cell, name)
        for a, b in zip(as_tuple(h_got), as_tuple(h_want)):
            assert torch.equal(a, b), (cell, name)


def test_rate_zero_keeps_the_torch_kernel():
    lstm = rnnkit.LSTM(I, H, input_dropout=0.0, recurrent_dropout=0.0, zoneout=0.0,
                       weight_drop=0.0)
    assert choose_backend(lstm, torch.randn(T, B, I)) == "torch"


# ------------------------------------------- variational dropout masks
def test_input_dropout_is_one_mask_per_sequence_constant_over_time():
    torch.manual_seed(0)
    n, p = 8, 0.5
    layer = _probe(n, input_dropout=p).train()
    x = torch.ones(10, 64, n, dtype=torch.float64)
    out, h_n = layer(x, torch.ones(1, 64, n, dtype=torch.float64))
    m = out[1]  # y_t = m_x * x_{t-1}
    assert _is_mask(m, p) and 0.3 < (m > 0).double().mean() < 0.7
    assert torch.equal(out[1:], m.expand(9, 64, n)), "the input mask must not change over time"
    assert len({tuple(r.tolist()) for r in m}) > 32, "each sequence must get its own mask"
    assert torch.equal(h_n[0], m)
    layer.eval()
    assert torch.equal(layer(x)[0][1:], x[1:]), "evaluation must not drop"


def test_recurrent_dropout_masks_the_recurrence_not_the_carried_state():
    torch.manual_seed(0)
    n, p = 8, 0.4
    layer = _probe(n, recurrent_dropout=p, bidirectional=True).train()
    x = torch.ones(10, 64, n, dtype=torch.float64)
    out, h_n = layer(x, torch.ones(2, 64, n, dtype=torch.float64))  # y_t = W (m_h * h_{t-1})
    fwd, rev = out[..., :n], out[..., n:]
    assert _is_mask(fwd[0], p)
    assert torch.equal(fwd, fwd[0].expand(10, 64, n)), "the mask must be constant over time"
    assert torch.equal(rev, rev[0].expand(10, 64, n))
    assert len({tuple(r.tolist()) for r in fwd[0]}) > 32, "each sequence must get its own mask"
    assert not torch.equal(fwd[0], rev[0]), "each direction draws its own mask"
    assert torch.equal(h_n, torch.ones_like(h_n)), "the carried state must not be dropped"


def test_recurrent_dropout_lstm_matches_gal_equations_by_hand():
    """LSTM: h_{t-1} is masked in W_hh h_{t-1} only; c and the carried h are not."""
    torch.manual_seed(1)
    p = 0.5
    layer = rnnkit.LSTM(I, H, recurrent_dropout=p).double().train()
    ref = torch.nn.LSTMCell(I, H).double()
    ref.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x = torch.randn(T, B, I, dtype=torch.float64)
    torch.manual_seed(7)
    out, (h_n, c_n) = layer(x)
    torch.manual_seed(7)
    m = torch.empty(B, H, dtype=torch.float64).bernoulli_(1 - p) / (1 - p)
    h, c = torch.zeros(B, H, dtype=torch.float64), torch.zeros(B, H, dtype=torch.float64)
    for t in range(T):
        h, c = ref(x[t], (h * m, c))  # gates from the masked h; c carried unmasked
        torch.testing.assert_close(out[t], h, atol=1e-12, rtol=0)
    torch.testing.assert_close(c_n[0], c, atol=1e-12, rtol=0)


def test_recurrent_dropout_gru_interpolates_the_undropped_state():
    """GRU: r, z, n see m * h_{t-1}; h_t = (1 - z) n + z h_{t-1} with the undropped h (Keras)."""
    torch.manual_seed(2)
    p = 0.5
    layer = rnnkit.GRU(I, H, recurrent_dropout=p).double().train()
    W_ih, W_hh, b_ih, b_hh = (getattr(layer, f"{k}_l0") for k in
                              ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    x = torch.randn(T, B, I, dtype=torch.float64)
    torch.manual_seed(3)
    out, h_n = layer(x)
    torch.manual_seed(3)
    m = torch.empty(B, H, dtype=torch.float64).bernoulli_(1 - p) / (1 - p)
    h = torch.zeros(B, H, dtype=torch.float64)
    for t in range(T):
        gi, gh = F.linear(x[t], W_ih, b_ih), F.linear(h * m, W_hh, b_hh)
        r = torch.sigmoid(gi[:, :H] + gh[:, :H])
        z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        h = (1 - z) * n + z * h
        torch.testing.assert_close(out[t], h, atol=1e-12, rtol=0)
    torch.testing.assert_close(h_n[0], h, atol=1e-12, rtol=0)


@pytest.mark.parametrize("make", [lambda: GRUCell(I, H), lambda: GRUCell(I, H, reset_after=False),
                                  lambda: LayerNormGRUCell(I, H)])
def test_gru_recurrent_dropout_steps_carry_h_and_drop_only_the_recurrence(make):
    """``step_recurrent_dropout``: ``h_rec`` in the recurrent products, ``h`` carried, by hand."""
    torch.manual_seed(4)
    cell = make()
    p = {k: torch.randn(s, dtype=torch.float64) for k, s in cell.param_shapes().items()}
    x_t = cell.project(torch.randn(1, B, I, dtype=torch.float64), p)[0]
    h, h_rec = torch.randn(2, B, H, dtype=torch.float64)
    x_r, x_z, x_n = x_t.split(H, dim=-1)
    W, b = p["weight_hh"], p["bias_hh"]
    if isinstance(cell, LayerNormGRUCell):
        gh = F.layer_norm(h_rec @ W.t(), (3 * H,), p["ln_hh_weight"], b, cell.eps)
    else:
        gh = h_rec @ W.t() + b
    r = torch.sigmoid(x_r + gh[:, :H])
    z = torch.sigmoid(x_z + gh[:, H:2 * H])
    if getattr(cell, "reset_after", True):
        n = torch.tanh(x_n + r * gh[:, 2 * H:])
    else:
        n = torch.tanh(x_n + (r * h_rec) @ W[2 * H:].t() + b[2 * H:])
    want = (1 - z) * n + z * h
    y, (h1,) = cell.step_recurrent_dropout(x_t, (h,), h_rec, p)
    torch.testing.assert_close(h1, want, atol=1e-12, rtol=0)
    assert y is h1
    torch.testing.assert_close(cell.step(x_t, (h,), p)[1][0],
                               cell.step_recurrent_dropout(x_t, (h,), h, p)[1][0])


# --------------------------------------------------------------- zoneout
def test_zoneout_keeps_units_with_a_fresh_mask_every_step():
    torch.manual_seed(0)
    n, p = 16, 0.5
    layer = rnnkit.Recurrent(_Pass, n, n, zoneout=p).double().train()
    t = torch.arange(1, 41, dtype=torch.float64)
    x = t.view(40, 1, 1).expand(40, 8, n).contiguous()  # x_t = t + 1 everywhere
    out, _ = layer(x)
    prev = torch.cat([torch.zeros(1, 8, n, dtype=torch.float64), out[:-1]])
    fresh, kept = out == x, out == prev
    assert bool((fresh | kept).all()), "each unit is either updated or keeps its previous value"
    rate = kept.double().mean().item()
    assert 0.4 < rate < 0.6, rate
    pattern = kept[1:, 0]  # (39, n) for sequence 0
    assert not bool((pattern == pattern[0]).all()), "the zoneout mask must change over time"
    assert not torch.equal(kept[:, 0], kept[:, 1]), "each sequence gets its own mask"
    layer.eval()
    out, _ = layer(x)  # s_t = p s_{t-1} + (1 - p) x_t
    s, want = torch.zeros(8, n, dtype=torch.float64), []
    for k in range(40):
        s = p * s + (1 - p) * x[k]
        want.append(s)
    torch.testing.assert_close(out, torch.stack(want), atol=1e-12, rtol=0)


def test_zoneout_lstm_one_step_by_hand():
    torch.manual_seed(5)
    p_h, p_c = 0.3, 0.6
    layer = rnnkit.LSTM(I, H, zoneout=(p_h, p_c)).double()
    ref = torch.nn.LSTMCell(I, H).double()
    ref.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x = torch.randn(1, B, I, dtype=torch.float64)
    h0, c0 = torch.randn(1, B, H, dtype=torch.float64), torch.randn(1, B, H, dtype=torch.float64)
    h_new, c_new = ref(x[0], (h0[0], c0[0]))  # candidates: h~ uses the un-zoned c~
    layer.eval()
    out, (h1, c1) = layer(x, (h0, c0))
    torch.testing.assert_close(c1[0], p_c * c0[0] + (1 - p_c) * c_new, atol=1e-12, rtol=0)
    torch.testing.assert_close(h1[0], p_h * h0[0] + (1 - p_h) * h_new, atol=1e-12, rtol=0)
    torch.testing.assert_close(out[0], h1[0], atol=0, rtol=0)
    layer.train()
    torch.manual_seed(0)
    out, (h1, c1) = layer(x[:, :1].expand(1, 200, I),  # sequence 0, 200 times
                          (h0[:, :1].expand(1, 200, H), c0[:, :1].expand(1, 200, H)))
    for got, old, new, rate in ((h1[0], h0[0, 0], h_new[0], p_h), (c1[0], c0[0, 0], c_new[0], p_c)):
        kept = torch.isclose(got, old, atol=1e-12, rtol=0)
        fresh = torch.isclose(got, new, atol=1e-12, rtol=0)
        assert bool((kept | fresh).all())
        assert abs(kept.double().mean().item() - rate) < 0.05
    assert torch.equal(out[0], h1[0])


# ----------------------------------------------------------- weight drop
def test_weight_drop_mask_is_shared_by_every_step_and_sequence():
    """One unit: with w_hh dropped or kept for the whole call, h follows one of two sequences."""
    torch.manual_seed(0)
    p = 0.5
    layer = rnnkit.RNN(1, 1, bias=False, weight_drop=p).double().train()
    with torch.no_grad():
        layer.weight_ih_l0.fill_(0.7)
        layer.weight_hh_l0.fill_(0.45)
    x = torch.linspace(-1, 1, 12, dtype=torch.float64).view(12, 1, 1).expand(12, 4, 1)

    def by_hand(w_hh):
        h, hs = torch.zeros(()), []
        for t in range(12):
            h = torch.tanh(0.7 * x[t, 0, 0] + w_hh * h)
            hs.append(h)
        return torch.stack(hs)

    dropped, kept = by_hand(0.0), by_hand(0.45 / (1 - p))
    seen = set()
    for _ in range(30):
        out = layer(x)[0][..., 0]  # (12, 4)
        for b in range(4):
            if torch.allclose(out[:, b], dropped, atol=1e-12):
                seen.add("dropped")
            else:
                torch.testing.assert_close(out[:, b], kept, atol=1e-12, rtol=0)
                seen.add("kept")
            assert torch.equal(out[:, b], out[:, 0]), "one mask for every sequence of a call"
    assert seen == {"dropped", "kept"}
    layer.eval()
    torch.testing.assert_close(layer(x)[0][:, 0, 0], by_hand(0.45), atol=1e-12, rtol=0)


def test_weight_drop_gradient_reaches_the_raw_weight_through_the_mask():
    torch.manual_seed(3)
    p = 0.5
    layer = rnnkit.LSTM(I, H, weight_drop=p).double().train()
    x = torch.randn(T, B, I, dtype=torch.float64)
    torch.manual_seed(11)
    layer(x)[0].square().sum().backward()
    g = layer.weight_hh_l0.grad.clone()
    torch.manual_seed(11)
    keep = F.dropout(torch.ones(4 * H, H, dtype=torch.float64), p, training=True) > 0
    plain = rnnkit.LSTM(I, H, backend="loop").double()
    plain.load_state_dict(layer.state_dict())
    with torch.no_grad():
        plain.weight_hh_l0.mul_(keep / (1 - p))
    plain(x)[0].square().sum().backward()
    torch.testing.assert_close(g, plain.weight_hh_l0.grad * keep / (1 - p), atol=1e-12, rtol=0)
    assert bool((g[~keep] == 0).all()) and bool((g[keep] != 0).any())


# --------------------------------------------------------------- max-norm
def test_max_norm_bounds_the_rows_the_layer_uses():
    torch.manual_seed(0)
    c = 0.8
    layer = rnnkit.GRU(I, H, 2, max_norm=c).double()
    with torch.no_grad():
        layer.weight_hh_l0.mul_(5)  # every row norm above c; layer 1 rows stay below
        layer.weight_hh_l1.mul_(0.2)
    assert (layer.weight_hh_l0.norm(dim=1) > c).all() and (layer.weight_hh_l1.norm(dim=1) < c).all()
    x = torch.randn(T, B, I, dtype=torch.float64)
    out = layer(x)[0]
    plain = rnnkit.GRU(I, H, 2).double()
    plain.load_state_dict(layer.state_dict())
    with torch.no_grad():
        w = plain.weight_hh_l0
        w.mul_(c / w.norm(dim=1, keepdim=True))
    torch.testing.assert_close(out, plain(x)[0], atol=1e-6, rtol=0)
    before = layer.weight_hh_l1.clone()
    max_norm_(layer)  # project the stored weights (Keras' after-update constraint)
    assert (layer.weight_hh_l0.norm(dim=1) <= c * (1 + 1e-6)).all()
    assert torch.equal(layer.weight_hh_l1, before), "rows within the bound stay as they are"
    torch.testing.assert_close(layer(x)[0], out, atol=1e-6, rtol=0)


def test_max_norm_on_indrnn_bounds_each_recurrent_weight():
    layer = build_layer("indrnn", I, H, max_norm=0.5).double()
    with torch.no_grad():
        layer.weight_hh_l0.copy_(torch.tensor([2.0, -3.0, 0.1, 0.5, -0.2], dtype=torch.float64))
    plain = build_layer("indrnn", I, H).double()
    plain.load_state_dict(layer.state_dict())
    with torch.no_grad():
        plain.weight_hh_l0.clamp_(-0.5, 0.5)
    x = torch.randn(T, B, I, dtype=torch.float64)
    torch.testing.assert_close(layer(x)[0], plain(x)[0], atol=1e-12, rtol=0)
    max_norm_(layer)
    assert layer.weight_hh_l0.tolist() == [0.5, -0.5, 0.1, 0.5, -0.2]


# ------------------------------------------- evaluation, seeds, gradients
@pytest.mark.parametrize("cell", ["lstm", "gru", "indrnn", "layernorm_gru"])
def test_eval_is_deterministic_and_training_follows_the_seed(cell):
    layer = build_layer(cell, I, H, num_layers=2, bidirectional=True, **ALL).double()
    x = torch.randn(T, B, I, dtype=torch.float64)
    outs = []
    for seed in (0, 1, 0):
        torch.manual_seed(seed)
        outs.append(layer.train()(x)[0])
    assert torch.equal(outs[0], outs[2]) and not torch.allclose(outs[0], outs[1])
    layer.eval()
    torch.manual_seed(0)
    a = layer(x)[0]
    torch.manual_seed(1)
    assert torch.equal(a, layer(x)[0])


def test_dropout_regularizers_are_the_identity_in_eval():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(I, H, 2, input_dropout=0.5, recurrent_dropout=0.5, weight_drop=0.5).eval()
    plain = rnnkit.LSTM(I, H, 2).eval()
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(T, B, I)
    assert choose_backend(layer, x) == "torch"  # nothing to drop: torch's kernel runs
    torch.testing.assert_close(layer(x)[0], plain(x)[0], atol=0, rtol=0)
    loop = rnnkit.LSTM(I, H, 2, input_dropout=0.5, backend="loop").eval()
    loop.load_state_dict(layer.state_dict())
    torch.testing.assert_close(loop(x)[0], plain(x)[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru", "indrnn", "layernorm_lstm"])
def test_gradients_flow_with_every_regularizer(cell):
    torch.manual_seed(0)
    # 16 units, so that no relu layer of IndRNN is dead for every sequence by chance
    layer = build_layer(cell, I, 16, num_layers=2, bidirectional=True, **ALL).double().train()
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    out, _ = layer(x, lengths=torch.tensor([6, 3, 5]))
    out.square().sum().backward()
    assert x.grad.abs().sum() > 0
    for name, w in layer.named_parameters():
        assert w.grad is not None and torch.isfinite(w.grad).all(), name
        assert w.grad.abs().sum() > 0, name


def test_gradcheck_through_zoneout_expectation_and_max_norm():
    torch.manual_seed(0)
    layer = rnnkit.LSTM(2, 3, zoneout=(0.3, 0.5), max_norm=0.5).double().eval()
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: torch.func.functional_call(
        layer, {"weight_hh_l0": w}, (x,))[0], (x, layer.weight_hh_l0.detach().clone()
                                               .requires_grad_()))


# ------------------------------------------------------------ composition
@pytest.mark.parametrize("cell,kw", [
    ("lstm", ALL), ("gru", ALL), ("rnn_relu", dict(ALL, zoneout=0.3)),
    ("lstm", dict(ALL, zoneout=(0.1, 0.4))), ("indrnn", ALL), ("layernorm_gru", ALL),
    ("mingru", dict(input_dropout=0.3, zoneout=0.25)), ("sru", dict(zoneout=0.25)),
    ("lru", dict(input_dropout=0.3)), ("rglru", dict(zoneout=0.25)),
])
def test_conformance_in_eval_with_regularizers(cell, kw):
    check_layer(lambda **k: build_layer(cell, I, H, **{**kw, **k}), I, H,
                (H, H) if "lstm" in cell or cell == "lru" else (H,))


def test_packed_equals_padded_in_training_under_one_seed():
    layer = rnnkit.LSTM(I, H, 2, bidirectional=True, **ALL).double().train()
    x, L = torch.randn(T, B, I, dtype=torch.float64), torch.tensor([6, 2, 4])
    torch.manual_seed(9)
    padded, (h, c) = layer(x, lengths=L)
    torch.manual_seed(9)
    packed, (h_p, c_p) = layer(pack_padded_sequence(x, L, enforce_sorted=False))
    packed = pad_packed_sequence(packed, total_length=T)[0]
    assert torch.equal(packed, padded) and torch.equal(h, h_p) and torch.equal(c, c_p)
    assert torch.equal(padded[2:, 1], torch.zeros_like(padded[2:, 1])), "padding outputs zeros"


# ------------------------------------------------------- backends, errors
@pytest.mark.parametrize("name,value,pattern", [
    ("input_dropout", 0.2, "input_dropout draws one input mask"),
    ("recurrent_dropout", 0.2, r"recurrent_dropout masks h_\{t-1\}"),
    ("zoneout", 0.2, "zoneout mixes"),
    ("max_norm", 1.0, "max_norm renormalises"),
])
def test_torch_backend_refuses_active_regularizers(name, value, pattern):
    x = torch.randn(T, B, I)
    auto = rnnkit.GRU(I, H, **{name: value}).train()
    assert choose_backend(auto, x) == "fused"  # rnnkit's fused scan runs every regulariser
    torch_k = rnnkit.GRU(I, H, backend="torch", **{name: value}).train()
    with pytest.raises(ValueError, match=f"backend='torch' cannot run this layer: {pattern}"):
        torch_k(x)


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU, rnnkit.RNN])
def test_weight_drop_runs_torchs_kernel_on_cpu_with_the_loops_masks(cls):
    """DropConnect draws one mask per weight for all steps and the whole batch, so on CPU
    torch's kernel runs it on the dropped weights: same outputs and gradients as the loop
    (float64, same seed), and auto picks it for the LSTM in training."""
    torch.manual_seed(0)
    x = torch.randn(T, B, I, dtype=torch.float64)
    runs = {}
    for backend in ("torch", "loop"):
        torch.manual_seed(1)
        m = cls(I, H, num_layers=2, bidirectional=True, weight_drop=0.4, backend=backend).double()
        xb = x.clone().requires_grad_()
        torch.manual_seed(2)
        out, _ = m(xb)
        out.pow(2).sum().backward()
        runs[backend] = (out, xb.grad, [p.grad for p in m.parameters()])
    (o1, gx1, gp1), (o2, gx2, gp2) = runs["torch"], runs["loop"]
    torch.testing.assert_close(o1, o2, atol=1e-10, rtol=0)
    torch.testing.assert_close(gx1, gx2, atol=1e-10, rtol=0)
    for a, b in zip(gp1, gp2):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    assert any((g == 0).any() for g in gp1[1::4]), "some recurrent weights were dropped"
    auto = rnnkit.LSTM(I, H, weight_drop=0.4).train()
    assert choose_backend(auto, x.float()) == "torch"
    with torch.no_grad():  # dropped weights differ from the layer's: not the plain kernel's output
        torch.manual_seed(3)
        y_drop = auto(x.float())[0]
    assert not torch.allclose(y_drop, auto.eval()(x.float())[0])


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(recurrent_dropout=1.0),
     r"recurrent_dropout: expected a probability in \[0, 1\), got 1.0"),
    (dict(input_dropout=-0.1), r"input_dropout: expected a probability in \[0, 1\), got -0.1"),
    (dict(weight_drop="0.5"), r"weight_drop: expected a probability in \[0, 1\), got '0.5'"),
    (dict(zoneout=(0.1, 0.2, 0.3)), r"zoneout: expected a rate or a pair \(p_h, p_c\)"),
    (dict(zoneout=(0.1, 1.2)), r"zoneout: expected a probability in \[0, 1\), got 1.2"),
    (dict(max_norm=0), "max_norm: expected a positive finite number or None, got 0"),
])
def test_bad_regularizer_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        rnnkit.LSTM(I, H, **kwargs)


def test_regularizers_the_cell_cannot_take_are_refused():
    with pytest.raises(ValueError, match=r"zoneout: GRUCell has one state tensor, so give one"):
        rnnkit.GRU(I, H, zoneout=(0.1, 0.2))
    for cell in ("mingru", "minlstm", "qrnn", "sru", "lru", "rglru", "mlstm", "s6"):
        for name in ("recurrent_dropout", "weight_drop", "max_norm"):
            with pytest.raises(ValueError, match=f"{name}: .*Cell has no recurrent weights"):
                build_layer(cell, I, H, **{name: 0.5})


# ------------------------------------------------------ embedding dropout
def test_embedding_dropout_drops_whole_words():
    torch.manual_seed(0)
    p = 0.5
    embed = torch.nn.Embedding(20, 6, padding_idx=0)
    x = torch.randint(1, 20, (30, 8))
    out = embedding_dropout(embed, x, p, training=True)
    dropped = (out == 0).all(-1)  # (30, 8)
    for v in x.unique():
        at = x == v
        if dropped[at].any():
            assert bool(dropped[at].all()), f"word {v} dropped at some places only"
        else:
            torch.testing.assert_close(out[at], embed.weight[v].expand_as(out[at]) / (1 - p))
    assert 0 < dropped.float().mean() < 1
    out.sum().backward()
    assert embed.weight.grad[x.unique()].abs().sum() > 0
    torch.testing.assert_close(embedding_dropout(embed, x, p, training=False), embed(x),
                               atol=0, rtol=0)
    with pytest.raises(ValueError, match="embed: expected a torch.nn.Embedding, got Linear"):
        embedding_dropout(torch.nn.Linear(2, 2), x, p, training=True)
    with pytest.raises(ValueError, match=r"p: expected a probability in \[0, 1\), got 1"):
        embedding_dropout(embed, x, 1, training=True)
