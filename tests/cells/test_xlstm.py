"""sLSTM and mLSTM: conformance, steps by hand (the stabiliser against the unstabilised
formula in high precision), the mLSTM's chunkwise form against stepping, float32 over long
sequences, options, regularisers."""
import math
from decimal import Decimal, getcontext

import pytest
import torch

from rnnkit import MLSTM, Recurrent
from rnnkit.cells.xlstm import MLSTMCell, SLSTMCell
from rnnkit.kernels.loop import length_mask
from rnnkit.kernels.loop import scan as loop_scan
from rnnkit.testing import check_gradients, check_layer

D64 = dict(dtype=torch.float64)
getcontext().prec = 60


def _sig(v: float) -> float:
    return 1 / (1 + math.exp(-v))


@pytest.mark.parametrize("cell, kw, states", [
    (SLSTMCell, dict(num_heads=1), (4, 4, 4, 4)), (SLSTMCell, dict(num_heads=2), (4, 4, 4, 4)),
    (MLSTMCell, dict(num_heads=2), (8, 4, 2)),
    (MLSTMCell, dict(num_heads=2, mode="sequential"), (8, 4, 2))],
    ids=["slstm", "slstm_2heads", "mlstm_2heads", "mlstm_2heads_sequential"])
def test_conformance(cell, kw, states):
    check_layer(lambda **k: Recurrent(cell, 3, 4, **kw, **k), 3, 4, states)


@pytest.mark.parametrize("cell, kw", [(SLSTMCell, {}), (MLSTMCell, {}),
                                      (MLSTMCell, dict(mode="sequential"))],
                         ids=["slstm", "mlstm", "mlstm_sequential"])
def test_gradients(cell, kw):
    check_gradients(lambda **k: Recurrent(cell, 2, 4, num_heads=2, **kw, **k), 2)


# ------------------------------------------------------------------ by hand, unstabilised
def _linear(W, b, x):
    return [sum(w * v for w, v in zip(row, x)) + (b[r] if b else 0.0) for r, row in enumerate(W)]


def _slstm_by_hand(W, R, b, xs, state, nh, forget):
    """Plain Python: the paper's unstabilised sLSTM in Decimal, ``c~ = exp(m) c``; returns the
    outputs and the final (h, c~, n~, m) (m by its own max formula)."""
    h, c, n, m = (list(s) for s in state)
    H, d = len(h), len(h) // nh
    c = [Decimal(v) * Decimal(mu).exp() for v, mu in zip(c, m)]  # c~_0
    n = [Decimal(v) * Decimal(mu).exp() for v, mu in zip(n, m)]
    ys = []
    for x in xs:
        g = _linear(W, b, x)
        for k in range(4):
            for u in range(H):  # unit u is unit e of head j; R acts within the head
                j, e = divmod(u, d)
                g[k * H + u] += sum(R[k][j][e][a] * h[j * d + a] for a in range(d))
        for u in range(H):
            z, i_, f_, o = math.tanh(g[u]), g[H + u], g[2 * H + u], _sig(g[3 * H + u])
            log_f = math.log(_sig(f_)) if forget == "sigmoid" else f_
            m[u] = max(log_f + m[u], i_)
            c[u] = Decimal(log_f).exp() * c[u] + Decimal(i_).exp() * Decimal(z)
            n[u] = Decimal(log_f).exp() * n[u] + Decimal(i_).exp()
            h[u] = float(Decimal(o) * c[u] / n[u])
        ys.append(list(h))
    return ys, (h, c, n, m)


def _mlstm_by_hand(W, b, xs, state, nh):
    """Plain Python: the paper's unstabilised mLSTM in Decimal (``C~ = exp(m) C``)."""
    C, n, m = (list(s) for s in state)
    H = len(n)
    d = H // nh
    C = [Decimal(v) * Decimal(m[r // (d * d)]).exp() for r, v in enumerate(C)]  # C~_0
    n = [Decimal(v) * Decimal(m[r // d]).exp() for r, v in enumerate(n)]
    ys = []
    for x in xs:
        g = _linear(W, b, x)
        y = []
        for j in range(nh):
            q = [Decimal(g[j * d + e]) for e in range(d)]
            k = [Decimal(g[H + j * d + e] / math.sqrt(d)) for e in range(d)]
            v = [Decimal(g[2 * H + j * d + e]) for e in range(d)]
            i_, f_ = g[3 * H + j], g[3 * H + nh + j]
            f, i = Decimal(_sig(f_)), Decimal(i_).exp()
            m[j] = max(math.log(_sig(f_)) + m[j], i_)
            at = lambda e, a: j * d * d + e * d + a  # noqa: E731  C~[j][e][a], e: v, a: k
            for e in range(d):
                for a in range(d):
                    C[at(e, a)] = f * C[at(e, a)] + i * v[e] * k[a]
                n[j * d + e] = f * n[j * d + e] + i * k[e]
            den = max(abs(sum(n[j * d + a] * q[a] for a in range(d))), Decimal(1))
            for e in range(d):
                num = sum(C[at(e, a)] * q[a] for a in range(d))
                y.append(float(Decimal(_sig(g[3 * H + 2 * nh + j * d + e])) * num / den))
        ys.append(y)
    return ys, (C, n, m)


def _set(layer, values):
    with torch.no_grad():
        for name, v in values.items():
            p = getattr(layer, name)
            p.copy_(torch.as_tensor(v, dtype=torch.float64).view(p.shape))


def _run(layer, xs, state, dtype):
    layer = layer.to(dtype)
    x = torch.tensor(xs, dtype=dtype).unsqueeze(1)  # (T, 1, I)
    hx = tuple(torch.tensor(s, dtype=dtype).view(1, 1, -1) for s in state)
    out, h_n = layer(x, hx)
    return out[:, 0].double().tolist(), [h[0, 0].double().tolist() for h in h_n]


def _close(got, want, rel):
    for a, b in zip(got, want):
        assert a == pytest.approx(b, rel=rel, abs=rel * 1e-3), (got, want)


@pytest.mark.parametrize("forget", ["sigmoid", "exp"])
@pytest.mark.parametrize("big, dtype, rel", [
    (0.0, torch.float64, 1e-12), (200.0, torch.float32, 1e-5), (1000.0, torch.float64, 1e-12)],
    ids=["plain", "i=200_float32", "i=1000_float64"])
def test_slstm_steps_by_hand(big, dtype, rel, forget):
    """Two steps, I = 2, H = 4, two heads. ``big`` is added to the input gate's bias: exp(200)
    overflows float32 and exp(1000) float64, yet the stabilised cell gives the unstabilised
    result (computed in Decimal); its state is that result scaled by exp(-m)."""
    torch.manual_seed(1)
    H, nh = 4, 2
    layer = Recurrent(SLSTMCell, 2, H, num_heads=nh, forget=forget).double()
    W, R, b = 0.5 * torch.randn(4 * H, 2), 0.5 * torch.randn(4, nh, 2, 2), torch.randn(4 * H)
    b[H:2 * H] += big
    _set(layer, dict(weight_ih_l0=W, weight_hh_l0=R, bias_l0=b))
    xs = [[1.0, -0.5], [0.3, 2.0]]
    state = ([0.2, -0.1, 0.4, 0.3], [0.5, -1.0, 0.2, 0.0], [1.5, 0.7, 1.0, 2.0], [0.1, -0.3, 0.0, 1.0])
    ys, (h, c, n, m) = _slstm_by_hand(W.tolist(), R.tolist(), b.tolist(), xs, state, nh, forget)
    out, (h_t, c_t, n_t, m_t) = _run(layer, xs, state, dtype)
    for got, want in zip(out, ys):
        _close(got, want, rel)
    assert all(math.isfinite(v) for v in c_t + n_t + h_t)
    _close(m_t, m, rel)
    for s, tilde in ((c_t, c), (n_t, n)):  # c~ = exp(m) c, compared in Decimal
        _close([float(Decimal(v) * Decimal(mu).exp() / t) for v, mu, t in zip(s, m_t, tilde)],
               [1.0] * H, rel * 10)


@pytest.mark.parametrize("mode", ["parallel", "sequential"])
@pytest.mark.parametrize("big, dtype, rel", [
    (0.0, torch.float64, 1e-12), (200.0, torch.float32, 1e-4), (1000.0, torch.float64, 1e-12)],
    ids=["plain", "i=200_float32", "i=1000_float64"])
def test_mlstm_steps_by_hand(big, dtype, rel, mode):
    """Two steps, I = 2, H = 4, two heads of d = 2: the stabilised cell (with
    ``max(|n.q|, exp(-m))``) against the paper's ``C~ q / max(|n~.q|, 1)`` in Decimal.

    In float32 the projection rounds i~ = 200.7 by up to 7.6e-6, and step 2's ``n~.q`` of
    head 0 cancels 50-fold (terms 1.97 and -2.01): 3e-4 from the input alone (the parallel
    form is within 1e-6 of float64 math on those rounded inputs; stepping lands nearer the
    Decimal result by its own rounding)."""
    if mode == "parallel" and dtype == torch.float32:
        rel = 5e-4
    torch.manual_seed(2)
    H, nh = 4, 2
    layer = Recurrent(MLSTMCell, 2, H, num_heads=nh, mode=mode).double()
    W, b = 0.5 * torch.randn(4 * H + 2 * nh, 2), torch.randn(4 * H + 2 * nh)
    b[3 * H:3 * H + nh] += big
    _set(layer, dict(weight_ih_l0=W, bias_l0=b))
    xs = [[1.0, -0.5], [0.3, 2.0]]
    state = ([0.1 * (r - 3) for r in range(8)], [0.5, -1.0, 0.2, 0.3], [0.4, -0.2])
    ys, (C, n, m) = _mlstm_by_hand(W.tolist(), b.tolist(), xs, state, nh)
    out, (C_t, n_t, m_t) = _run(layer, xs, state, dtype)
    for got, want in zip(out, ys):
        _close(got, want, rel)
    _close(m_t, m, rel)
    assert all(math.isfinite(v) for v in C_t + n_t)
    for st, tilde, per_head in ((C_t, C, 4), (n_t, n, 2)):  # C~ = exp(m) C, in Decimal
        _close([float(Decimal(v) * Decimal(m_t[r // per_head]).exp() / t)
                for r, (v, t) in enumerate(zip(st, tilde))], [1.0] * len(st), rel * 100)


def test_zero_state_first_step_is_finite():
    """All-zero state: n_1 = i' > 0, so h_1 = o z exactly (sLSTM), even for a large forget
    pre-activation with ``forget="exp"`` (m_1 = log f, i' = exp(i~ - log f) small)."""
    layer = Recurrent(SLSTMCell, 1, 2, forget="exp")
    _set(layer, dict(weight_ih_l0=[0.0] * 8, weight_hh_l0=[0.0] * 16,
                     bias_l0=[0.5, -1.0, 0.0, 0.0, 50.0, 10.0, 0.3, 0.3]))
    out, (h, c, n, m) = layer(torch.zeros(1, 1, 1))
    want = [_sig(0.3) * math.tanh(0.5), _sig(0.3) * math.tanh(-1.0)]
    assert out.flatten().tolist() == pytest.approx(want, rel=1e-6)
    assert m.flatten().tolist() == [50.0, 10.0] and (n > 0).all()
    with torch.no_grad():  # the documented limit: i' = exp(-120) underflows float32, 0 / 0
        layer.bias_l0[4] = 120.0
    assert torch.isnan(layer(torch.zeros(1, 1, 1))[0][0, 0, 0])


# ------------------------------------------------------- mLSTM: the chunkwise parallel form
def _modes(T, lengths, forget="sigmoid", chunk=4, big=0.0, dtype=torch.float64, seed=0):
    """The cell's chunkwise ``scan`` and the step loop on the same data, nonzero initial state
    (m included): ``[(ys, final state, grads), ...]`` for (parallel, sequential); the grads
    (of a random linear loss on ys and the final state) w.r.t. weight, bias, x, C0, n0, m0."""
    torch.manual_seed(seed)
    B, I, H, nh = len(lengths), 3, 8, 2
    cell = MLSTMCell(I, H, num_heads=nh, forget=forget)
    cell.chunk_size = chunk
    G = 4 * H + 2 * nh
    w, b = 0.7 * torch.randn(G, I, **D64), torch.randn(G, **D64)
    b[3 * H:3 * H + nh] += big
    if forget == "exp":
        b[3 * H + nh:3 * H + 2 * nh] -= 1.0  # f = exp(f~) mostly below 1
    x = torch.randn(T, B, I, **D64)
    state = [torch.randn(B, n, **D64) for n in cell.state_sizes]
    mask = length_mask(torch.tensor(lengths), T)
    weights = [torch.randn(T, B, H, **D64)] + [torch.randn_like(s) for s in state]
    w, b, x, state, weights = (
        [t.to(dtype) for t in ts] if isinstance(ts, list) else ts.to(dtype)
        for ts in (w, b, x, state, weights))
    leaves = [t.requires_grad_() for t in (w, b, x, *state)]
    runs = []
    for run in (cell.scan, lambda xp, st, p, m: loop_scan(cell, p, xp, st, m)):
        p = dict(weight_ih=w, bias=b)
        ys, final = run(cell.project(x, p), tuple(state), p, mask)
        loss = sum((t * u).sum() for t, u in zip((ys, *final), weights))
        runs.append((ys, final, torch.autograd.grad(loss, leaves)))
    return runs


def _rel(a, b) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


@pytest.mark.parametrize("T, lengths, forget, chunk, big", [
    (11, [11, 5, 1], "sigmoid", 4, 0.0),      # 3 chunks, the last padded; lengths
    (12, [12, 12], "exp", 4, 0.0),            # whole chunks
    (3, [3, 1, 2], "sigmoid", 64, 0.0),       # T < chunk
    (1, [1, 1], "exp", 64, 0.0),              # T = 1
    (150, [150, 64, 100], "sigmoid", 64, 0.0),  # the default chunk, 3 chunks
    (13, [13, 4, 9], "exp", 4, 200.0),        # a large input gate: exp(200) in the sums
    (13, [13, 13, 6], "sigmoid", 4, 200.0),
    (10, [10, 7, 0], "sigmoid", 4, 0.0),      # a sequence with no valid step
], ids=["T11_lengths", "T12_exp", "T<chunk", "T1", "T150_chunk64", "i200_exp", "i200_sigmoid",
        "length0"])
def test_parallel_equals_sequential(T, lengths, forget, chunk, big):
    """Outputs, the final (C, n, m) and the gradients of every weight, the input and the
    initial state: the chunkwise form against stepping, float64."""
    (ys, final, grads), (ys_s, final_s, grads_s) = _modes(T, lengths, forget, chunk, big)
    assert _rel(ys, ys_s) < 1e-10
    for a, b in zip(final, final_s):
        assert _rel(a, b) < 1e-10
    for name, a, b in zip(("weight", "bias", "x", "C0", "n0", "m0"), grads, grads_s):
        assert torch.isfinite(a).all() and _rel(a, b) < 1e-9, name
    mask = length_mask(torch.tensor(lengths), T)
    assert (ys.masked_fill(mask, 0.0) == 0).all()  # skipped steps: zero output,
    assert (grads[2].masked_fill(mask, 0.0) == 0).all()  # no gradient into their input


def test_parallel_large_input_gate_float32_stays_finite():
    """i~ near 200 (exp overflows float32), 3 chunks with lengths: every value and gradient
    finite and near float64's. (The outputs divide by |n . q|, which comes near zero: both
    modes lose digits there in float32, 9e-5 here, stepping 1.2e-4.)"""
    (ys, final, grads), _ = _modes(40, [40, 17, 33], chunk=16, big=200.0, dtype=torch.float32)
    (ys64, final64, _), _ = _modes(40, [40, 17, 33], chunk=16, big=200.0)
    assert all(torch.isfinite(t).all() for t in (ys, *final, *grads))
    assert _rel(ys.double(), ys64) < 1e-3
    for a, b in zip(final, final64):
        assert _rel(a.double(), b) < 1e-5


def test_parallel_half_precision_computes_in_float32():
    torch.manual_seed(0)
    cell = MLSTMCell(3, 8, num_heads=2)
    xp = torch.randn(70, 2, 4 * 8 + 4).to(torch.bfloat16)
    state = tuple(torch.randn(2, n).to(torch.bfloat16) for n in cell.state_sizes)
    mask = length_mask(torch.tensor([70, 30]), 70)
    ys, final = cell.scan(xp, state, {}, mask)
    ys32, final32 = cell.scan(xp.float(), tuple(s.float() for s in state), {}, mask)
    assert ys.dtype == torch.bfloat16 and all(s.dtype == torch.bfloat16 for s in final)
    assert torch.equal(ys, ys32.to(torch.bfloat16))
    for a, b in zip(final, final32):
        assert torch.equal(a, b.to(torch.bfloat16))


def test_mode_option_through_the_layer():
    """``rnnkit.MLSTM(..., mode=)`` reaches the cell; both modes agree, bidirectional with
    lengths, forward and backward; sequential mode has no ``scan``."""
    torch.manual_seed(0)
    par = MLSTM(3, 8, num_layers=2, num_heads=2, bidirectional=True).double()
    seq = MLSTM(3, 8, num_layers=2, num_heads=2, bidirectional=True, mode="sequential").double()
    seq.load_state_dict(par.state_dict())
    assert [c.mode for c in par.cells + seq.cells] == ["parallel"] * 2 + ["sequential"] * 2
    assert seq.cells[0].scan is None and par.cells[0].scan is not None
    assert repr(seq.cells[0]) == "MLSTMCell(3, 8, num_heads=2, mode='sequential')"
    assert repr(par.cells[0]) == "MLSTMCell(3, 8, num_heads=2)"
    for c in par.cells:
        c.chunk_size = 4  # several chunks at T = 10
    x, lengths = torch.randn(10, 3, 3, **D64), torch.tensor([10, 3, 7])
    results = []
    for layer in (par, seq):
        xg = x.clone().requires_grad_()
        out, h_n = layer(xg, lengths=lengths)
        (out.sum() + sum((h * h).sum() for h in h_n)).backward()
        results.append((out, h_n, xg.grad, [p.grad for p in layer.parameters()]))
    (out, h_n, gx, gp), (out_s, h_s, gx_s, gp_s) = results
    assert _rel(out, out_s) < 1e-10 and _rel(gx, gx_s) < 1e-9
    assert all(_rel(a, b) < 1e-10 for a, b in zip(h_n, h_s))
    assert all(_rel(a, b) < 1e-9 for a, b in zip(gp, gp_s))
    with pytest.raises(ValueError, match="mode: expected 'parallel' or 'sequential', got 'fast'"):
        MLSTM(3, 8, mode="fast")


# ---------------------------------------------------------------- precision and streaming
@pytest.mark.parametrize("cell, kw", [(SLSTMCell, dict(forget_bias=3.0)), (MLSTMCell, {}),
                                      (MLSTMCell, dict(mode="sequential"))],
                         ids=["slstm", "mlstm", "mlstm_sequential"])
def test_float32_agrees_with_float64_over_500_steps(cell, kw):
    """float32 (the parallel mLSTM: 8 chunks of 64) against float64 stepped."""
    torch.manual_seed(0)
    layer = Recurrent(cell, 4, 8, num_heads=2, **kw)
    ref = Recurrent(cell, 4, 8, num_heads=2, mode="sequential").double() if cell is MLSTMCell \
        else Recurrent(cell, 4, 8, num_heads=2).double()
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(500, 2, 4)
    got, h = layer(x)
    want, h64 = ref(x.double())
    err = ((got.double() - want).abs().max() / want.abs().max()).item()
    assert err < 1e-5, err
    for a, b in zip(h, h64):  # every final state tensor (c, n, m included)
        assert ((a.double() - b).abs().max() / b.abs().max()).item() < 1e-5


@pytest.mark.parametrize("cell", [SLSTMCell, MLSTMCell])
def test_streaming_step_equals_forward(cell):
    torch.manual_seed(0)
    layer = Recurrent(cell, 3, 4, num_layers=2, num_heads=2).double().eval()
    x = torch.randn(5, 2, 3, **D64)
    out, h_n = layer(x)
    state, ys = None, []
    for t in range(5):
        y, state = layer.step(x[t], state)
        ys.append(y)
    torch.testing.assert_close(torch.stack(ys), out, rtol=1e-12, atol=1e-12)
    for a, b in zip(state, h_n):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ options and regularisers
@pytest.mark.parametrize("make, error, pattern", [
    (lambda c: c(3, 4, num_heads=3), ValueError, r"num_heads: expected a positive divisor of "
                                                 r"hidden_size=4, got 3"),
    (lambda c: c(3, 4, num_heads=0), ValueError, r"num_heads: expected a positive divisor"),
    (lambda c: c(3, 4, num_heads=2.0), TypeError, r"num_heads should be of type int"),
    (lambda c: c(3, 4, forget="tanh"), ValueError, r"forget: expected one of \('sigmoid', 'exp'\)"),
])
@pytest.mark.parametrize("cell", [SLSTMCell, MLSTMCell])
def test_bad_options_are_one_line_errors(cell, make, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        make(lambda *a, **k: Recurrent(cell, *a, **k))
    assert "\n" not in str(info.value)


def test_slstm_takes_the_recurrent_regularisers():
    torch.manual_seed(0)
    kw = dict(num_heads=2, recurrent_dropout=0.3, weight_drop=0.3, zoneout=0.2, max_norm=2.0)
    layer = Recurrent(SLSTMCell, 3, 4, **kw).double()
    plain = Recurrent(SLSTMCell, 3, 4, num_heads=2, zoneout=0.2, max_norm=2.0).double()
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(6, 2, 3, **D64)
    train, _ = layer(x)
    assert torch.isfinite(train).all()
    layer.eval()
    torch.testing.assert_close(layer(x)[0], plain.eval()(x)[0])  # dropout only in training
    assert (train - layer(x)[0]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="init_hh"):  # weight_hh is (4, nh, d, d), not a matrix
        Recurrent(SLSTMCell, 3, 4, init_hh="orthogonal")


@pytest.mark.parametrize("name, value", [("recurrent_dropout", 0.2), ("weight_drop", 0.2),
                                         ("max_norm", 1.0)])
def test_mlstm_refuses_recurrent_weight_regularisers(name, value):
    with pytest.raises(ValueError, match=f"{name}: MLSTMCell has no recurrent weights"):
        Recurrent(MLSTMCell, 3, 4, **{name: value})


@pytest.mark.parametrize("cell", [SLSTMCell, MLSTMCell])
def test_zoneout_is_accepted(cell):
    """Zoneout in evaluation is its expectation: one step from a state s0 gives
    ``p s0 + (1 - p) s~`` for every state tensor."""
    torch.manual_seed(0)
    layer = Recurrent(cell, 3, 4, num_heads=2, zoneout=0.25).double().eval()
    plain = Recurrent(cell, 3, 4, num_heads=2).double().eval()
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(1, 2, 3, **D64)
    s0 = tuple(torch.rand_like(h) + 0.5 for h in plain(x)[1])
    for z, s, p in zip(layer(x, s0)[1], plain(x, s0)[1], s0):
        torch.testing.assert_close(z, 0.25 * p + 0.75 * s)
    layer.train()
    assert torch.isfinite(layer(torch.randn(8, 2, 3, **D64))[0]).all()


def test_forget_bias_sets_the_slstm_f_block():
    layer = Recurrent(SLSTMCell, 3, 4, forget_bias=2.5)
    assert (layer.bias_l0[8:12] == 2.5).all() and (layer.bias_l0[:8] != 2.5).all()
    with pytest.raises(ValueError, match="forget_bias: MLSTMCell has no forget gate"):
        Recurrent(MLSTMCell, 3, 4, forget_bias=1.0)


def test_initialisation_and_shapes():
    torch.manual_seed(0)
    s = Recurrent(SLSTMCell, 50, 64, num_heads=4)
    assert s.weight_hh_l0.shape == (4, 4, 16, 16)
    assert s.weight_hh_l0.abs().max() <= 1 / 4 and s.weight_hh_l0.abs().max() > 0.2
    assert s.weight_ih_l0.abs().max() <= 1 / math.sqrt(50) and s.bias_l0.abs().max() > 0.1
    m = Recurrent(MLSTMCell, 50, 64, num_heads=4, bias=False)
    assert [n for n, _ in m.named_parameters()] == ["weight_ih_l0"]
    assert m.weight_ih_l0.shape == (4 * 64 + 8, 50)
    assert m.cells[0].state_sizes == (4 * 16 * 16, 64, 4) and m.cells[0].output_size == 64


def test_slstm_max_norm_constrains_each_row():
    layer = Recurrent(SLSTMCell, 3, 4, num_heads=2, max_norm=1.0).double()
    with torch.no_grad():
        layer.weight_hh_l0.fill_(0.1)
        layer.weight_hh_l0[0, 0, 0] = 5.0  # one row over the bound
    w = layer.regularizers.weights(layer.cells[0], layer._params(0, 0), False)["weight_hh"]
    norms = w.detach().norm(dim=-1).flatten()  # (4 nh d,): the rows of the block-diagonal R
    assert norms[0] == pytest.approx(1.0)  # the long row is cut to the bound, the rest kept
    assert torch.allclose(norms[1:], torch.full_like(norms[1:], 0.1 * math.sqrt(2)))
