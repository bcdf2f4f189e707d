"""The fused CPU scans against the reference loop (and thus torch.nn), forward and gradients."""
import itertools
import os

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from rnnkit.cells import GRUCell, LayerNormGRUCell, LayerNormLSTMCell, LSTMCell, RNNCell
from rnnkit.kernels.fused import _gemm, fused_project, fused_scan, fused_unsupported
from rnnkit.kernels.loop import length_mask, scan
from rnnkit.layers.regularizers import Regularizers

I, H = 3, 4
CELLS = {
    "lstm": lambda: LSTMCell(I, H),
    "lstm_proj": lambda: LSTMCell(I, H, proj_size=2),
    "lstm_nobias": lambda: LSTMCell(I, H, bias=False),
    "gru": lambda: GRUCell(I, H),
    "gru_cho": lambda: GRUCell(I, H, reset_after=False),
    "gru_nobias": lambda: GRUCell(I, H, bias=False),
    "rnn_tanh": lambda: RNNCell(I, H),
    "rnn_relu": lambda: RNNCell(I, H, nonlinearity="relu"),
}
LENGTHS = {"full": None, "unsorted": [5, 2, 5, 1], "sorted": [5, 4, 4, 2]}


def _setup(cell, T, B, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = {k: torch.randn(s, generator=g, dtype=dtype).mul_(0.7).requires_grad_()
         for k, s in cell.param_shapes().items()}
    x = torch.randn(T, B, cell.input_size, generator=g, dtype=dtype)
    state = tuple(torch.randn(B, s, generator=g, dtype=dtype).requires_grad_()
                  for s in cell.state_sizes)
    return p, x, state


def _run(kind, cell, p, x, state, mask, reg=None, training=True, seed=7):
    """Outputs, final state and the gradients of a fixed random loss w.r.t. everything."""
    torch.manual_seed(seed)
    x = x.detach().requires_grad_()
    if kind == "loop":
        step = None if reg is None else reg.step(cell, state, training)
        ys, s = scan(cell, p, cell.project(x, p), state, mask, step)
    else:  # (QRNN and LayerNorm-LSTM: the scan finishes the projection)
        kw = {} if reg is None else reg.step_inputs(state, x.shape[0], training)
        ys, s = fused_scan(cell, p, fused_project(cell, x, p), state, mask, **kw)
    g = torch.Generator().manual_seed(99)
    loss = (ys * torch.randn(ys.shape, generator=g, dtype=ys.dtype)).sum()
    loss = loss + sum((si * torch.randn(si.shape, generator=g, dtype=si.dtype)).sum() for si in s)
    grads = torch.autograd.grad(loss, [x, *state, *p.values()])
    return ys, s, grads


def _assert_same(a, b, atol, what):
    (ya, sa, ga), (yb, sb, gb) = a, b
    torch.testing.assert_close(ya, yb, atol=atol, rtol=0, msg=lambda m: f"{what} output: {m}")
    for i, (u, v) in enumerate(zip(sa, sb)):
        torch.testing.assert_close(u, v, atol=atol, rtol=0, msg=lambda m: f"{what} h_n[{i}]: {m}")
    for i, (u, v) in enumerate(zip(ga, gb)):
        torch.testing.assert_close(u, v, atol=atol, rtol=0, msg=lambda m: f"{what} grad {i}: {m}")


@pytest.mark.parametrize("name,lengths", list(itertools.product(CELLS, LENGTHS)))
def test_matches_loop_float64(name, lengths):
    cell = CELLS[name]()
    p, x, state = _setup(cell, 5, 4, torch.float64)
    mask = None if LENGTHS[lengths] is None else length_mask(torch.tensor(LENGTHS[lengths]), 5)
    ref = _run("loop", cell, p, x, state, mask)
    out = _run("fused", cell, p, x, state, mask)
    _assert_same(out, ref, 1e-12, f"{name} {lengths}")
    if mask is not None:  # padded steps output exactly zero
        assert out[0].masked_select(~mask).abs().max() == 0


REGS = {
    "recurrent_dropout": dict(recurrent_dropout=0.4),
    "zoneout": dict(zoneout=0.3),
    "both": dict(recurrent_dropout=0.3, zoneout=0.25),
    "zoneout_hc": dict(zoneout=(0.2, 0.5)),
    "zoneout_c_only": dict(recurrent_dropout=0.2, zoneout=(0.0, 0.5)),
}


@pytest.mark.parametrize("name,reg", [
    (n, r) for n, r in itertools.product(["lstm", "lstm_proj", "gru", "gru_cho", "rnn_relu"], REGS)
    if n.startswith("lstm") or not r.startswith("zoneout_")])
def test_regularised_matches_loop_same_seed(name, reg):
    """Same seed, same random masks (drawn in the loop's order), same numbers."""
    cell = CELLS[name]()
    r = Regularizers.build(cell, **REGS[reg])
    p, x, state = _setup(cell, 6, 4, torch.float64, seed=1)
    mask = length_mask(torch.tensor([6, 2, 4, 1]), 6)
    no_reg = _run("fused", cell, p, x, state, mask)
    for training in (True, False):
        ref = _run("loop", cell, p, x, state, mask, r, training)
        out = _run("fused", cell, p, x, state, mask, r, training)
        _assert_same(out, ref, 1e-12, f"{name} {reg} training={training}")
        if training or "zoneout" in REGS[reg]:
            assert (out[0] - no_reg[0]).abs().max() > 1e-3, "the regulariser changed nothing"


@pytest.mark.parametrize("name", CELLS)
def test_gradcheck(name):
    """gradcheck in float64 w.r.t. xp, the state and every weight, with lengths and regularisers."""
    cell = CELLS[name]()
    T, B = 4, 3
    p, x, state = _setup(cell, T, B, torch.float64, seed=2)
    xp = cell.project(x, p).detach().requires_grad_()
    mask = length_mask(torch.tensor([3, 4, 1]), T)
    g = torch.Generator().manual_seed(3)
    rec = torch.rand(state[0].shape, generator=g, dtype=torch.float64) * 2
    zones = tuple(torch.randint(0, 2, (T, *s.shape), generator=g).double() for s in state)
    names = list(p)

    for kw in ({}, dict(rec_mask=rec, zoneout=zones), dict(zoneout=(0.3,) * len(state))):
        def f(xp, *rest):
            st, w = rest[:len(state)], dict(zip(names, rest[len(state):]))
            ys, s = fused_scan(cell, w, xp, st, mask, **kw)
            return (ys, *s)
        assert torch.autograd.gradcheck(f, (xp, *state, *p.values()), atol=1e-7)


@pytest.mark.parametrize("name", ["lstm", "lstm_proj", "gru", "gru_cho", "rnn_tanh"])
def test_float32_onednn_path(name, monkeypatch):
    """float32 takes oneDNN's GEMM where torch has it (forced here at tiny sizes); equals the loop."""
    monkeypatch.setattr(_gemm, "ONEDNN_MIN_WORK", 0)
    cell = CELLS[name]()
    p, x, state = _setup(cell, 7, 5, torch.float32, seed=4)
    mask = length_mask(torch.tensor([7, 3, 7, 1, 5]), 7)
    r = Regularizers.build(cell, recurrent_dropout=0.3, zoneout=0.2)
    for reg in (None, r):
        _assert_same(_run("fused", cell, p, x, state, mask, reg),
                     _run("loop", cell, p, x, state, mask, reg), 2e-5, name)


@pytest.mark.parametrize("cls", [LayerNormLSTMCell, LayerNormGRUCell])
def test_float32_onednn_path_layernorm(cls, monkeypatch):
    """The LayerNorm cells' recurrent GEMMs on oneDNN with prepacked weights: equal the loop."""
    monkeypatch.setattr(_gemm, "ONEDNN_MIN_WORK", 0)
    cell = cls(I, H)
    p, x, state = _setup(cell, 7, 5, torch.float32, seed=4)
    mask = length_mask(torch.tensor([7, 3, 7, 1, 5]), 7)
    r = Regularizers.build(cell, recurrent_dropout=0.3, zoneout=0.2)
    for reg in (None, r):
        _assert_same(_run("fused", cell, p, x, state, mask, reg),
                     _run("loop", cell, p, x, state, mask, reg), 2e-5, cls.__name__)


def test_gemm_paths_agree(monkeypatch):
    """oneDNN's inner product (if present) and addmm give the same linear and gradient."""
    monkeypatch.setattr(_gemm, "ONEDNN_MIN_WORK", 0)
    g = torch.Generator().manual_seed(5)
    x, w, b = (torch.randn(s, generator=g) for s in ((6, 4, 5), (7, 5), (7,)))
    for onednn in (True, False):
        saved = _gemm._onednn_ok
        _gemm._onednn_ok = onednn and _gemm.onednn_available()
        try:
            xx, ww, bb = (t.clone().requires_grad_() for t in (x, w, b))
            y = _gemm.Linear.apply(xx, ww, bb)
            torch.testing.assert_close(y, F.linear(x, w, b), atol=1e-5, rtol=0)
            y.pow(2).sum().backward()
            xr, wr, br = (t.clone().requires_grad_() for t in (x, w, b))
            F.linear(xr, wr, br).pow(2).sum().backward()
            for a, c in ((xx, xr), (ww, wr), (bb, br)):
                torch.testing.assert_close(a.grad, c.grad, atol=1e-4, rtol=0)
            o = torch.randn(4, 7, generator=g)
            torch.testing.assert_close(_gemm.linear(x[0], w, b, o), x[0] @ w.t() + b + o,
                                       atol=1e-5, rtol=0)
        finally:
            _gemm._onednn_ok = saved


def test_fused_project_equals_cell_project():
    cell = LSTMCell(I, H)
    p, x, _ = _setup(cell, 3, 2, torch.float32)
    torch.testing.assert_close(fused_project(cell, x, p), cell.project(x, p), atol=1e-6, rtol=0)


@pytest.mark.parametrize("zoned", [False, True], ids=["plain", "zoneout"])
@pytest.mark.parametrize("name", ["lstm_proj", "gru", "ln_lstm", "ln_gru"])
def test_no_grad_same_result(name, zoned):
    """Without gradients the scans keep no activations (one scratch row): same numbers."""
    cell = {"ln_lstm": lambda: LayerNormLSTMCell(I, H),
            "ln_gru": lambda: LayerNormGRUCell(I, H)}.get(name, CELLS.get(name))()
    p, x, state = _setup(cell, 5, 4, torch.float64)
    mask = length_mask(torch.tensor([2, 5, 3, 1]), 5)
    kw = dict(zoneout=(0.3,) * len(state)) if zoned else {}
    ys, s = fused_scan(cell, p, fused_project(cell, x, p), state, mask, **kw)
    with torch.no_grad():
        ys0, s0 = fused_scan(cell, p, fused_project(cell, x, p), state, mask, **kw)
    assert not ys0.requires_grad
    torch.testing.assert_close(ys0, ys.detach(), atol=0, rtol=0)
    for a, b in zip(s0, s):  # the last states of sequences of different lengths
        torch.testing.assert_close(a, b.detach(), atol=0, rtol=0)


def test_traced_by_compile_refused_by_jit_trace(monkeypatch):
    """The scans are registered ops: torch.compile/export trace them (tests/layers/test_compile.py);
    jit.trace would bake one call's shapes in, so there the fused scan says why it cannot run."""
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert fused_unsupported(LSTMCell(I, H)) is None
    monkeypatch.setattr(torch.jit, "is_tracing", lambda: True)
    assert "torch.jit.trace cannot trace the fused scan" in fused_unsupported(LSTMCell(I, H))


class _Elman(LSTMCell):
    """A cell the fused backend does not know (a subclass: its step may differ)."""


def test_errors():
    q = _Elman(I, H)
    assert "_Elman" in fused_unsupported(q)
    assert fused_unsupported(LSTMCell(I, H)) is None
    cell = LSTMCell(I, H)
    p, x, state = _setup(cell, 4, 2, torch.float64)
    xp = cell.project(x, p)
    with pytest.raises(ValueError, match="fused_scan: the fused backend has scans for"):
        fused_scan(q, p, xp, state)
    bad = torch.tensor([[True, False], [False, False], [True, False], [False, False]])
    with pytest.raises(ValueError, match="mask: the fused scans need a length mask"):
        fused_scan(cell, p, xp, state, bad.unsqueeze(-1))
    with pytest.raises(ValueError, match=r"zoneout\[1\]: expected a \(T, B, S\)"):
        fused_scan(cell, p, xp, state, zoneout=(None, torch.zeros(3, 2, H)))
    with pytest.raises(ValueError, match="zoneout: expected one entry per state tensor"):
        fused_scan(cell, p, xp, state, zoneout=(0.1,))
    with pytest.raises(ValueError, match="rec_mask: expected shape"):
        fused_scan(cell, p, xp, state, rec_mask=torch.ones(2, H + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="state: LSTMCell"):
        fused_scan(cell, p, xp, state[:1])


# ------------------------------------------------ through a layer, vs torch.nn
def _fused_layer(cls, *args, **kw):
    """``cls(*args, backend="fused")``: a layer whose scans are the fused ones."""
    return cls(*args, backend="fused", **kw)


@pytest.mark.parametrize("mode", ["lstm", "lstm_proj", "gru", "rnn_relu"])
def test_layer_matches_torch_nn(mode):
    """A 2-layer bidirectional layer on the fused scan == torch.nn on packed input, with grads."""
    ours_cls, ref_cls, kw = {
        "lstm": (rnnkit.LSTM, torch.nn.LSTM, {}),
        "lstm_proj": (rnnkit.LSTM, torch.nn.LSTM, dict(proj_size=3)),
        "gru": (rnnkit.GRU, torch.nn.GRU, {}),
        "rnn_relu": (rnnkit.RNN, torch.nn.RNN, dict(nonlinearity="relu")),
    }[mode]
    torch.manual_seed(0)
    T, B, In, Hd = 6, 3, 5, 6
    ref = ref_cls(In, Hd, 2, bidirectional=True, **kw)
    ours = _fused_layer(ours_cls, In, Hd, 2, bidirectional=True, **kw)
    ours.load_state_dict(ref.state_dict())
    lengths = torch.tensor([4, 6, 2])
    x = torch.randn(T, B, In)
    xs = [x.clone().requires_grad_() for _ in range(2)]
    o_ref, h_ref = ref(pack_padded_sequence(xs[0], lengths, enforce_sorted=False))
    o_ref = pad_packed_sequence(o_ref, total_length=T)[0]
    o_our, h_our = ours(xs[1], lengths=lengths)
    h_ref, h_our = [h if isinstance(h, tuple) else (h,) for h in (h_ref, h_our)]
    torch.testing.assert_close(o_our, o_ref, atol=1e-5, rtol=0)
    for a, b in zip(h_our, h_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    g = torch.randn_like(o_ref)
    for o, hs in ((o_ref, h_ref), (o_our, h_our)):
        ((o * g).sum() + sum(h.pow(2).sum() for h in hs)).backward()
    for (name, a), b in zip(ref.named_parameters(), ours.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-4, rtol=0, msg=lambda m: f"{name}: {m}")
    torch.testing.assert_close(xs[1].grad, xs[0].grad, atol=1e-4, rtol=0)


def test_auto_picks_the_fused_scan_for_regularised_layers_with_the_loops_numbers():
    """Layer level: auto -> fused where torch's kernel can't run; same seed, same outputs and grads."""
    from rnnkit.kernels.dispatch import choose_backend

    x = torch.randn(6, 3, 4, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 5])
    kw = dict(num_layers=2, bidirectional=True, zoneout=0.2, recurrent_dropout=0.3, dtype=torch.float64)
    auto, loop = rnnkit.LSTM(4, 5, **kw), rnnkit.LSTM(4, 5, backend="loop", **kw)
    loop.load_state_dict(auto.state_dict())
    assert choose_backend(auto, x) == "fused" and choose_backend(auto.eval(), x) == "fused"
    auto.train()
    results = []
    for layer in (auto, loop):
        torch.manual_seed(7)
        out, (h, c) = layer(x, lengths=lengths)
        (out.sum() + h.sum() + c.sum()).backward()
        results.append([out, h, c] + [p.grad for p in layer.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_auto_runs_the_fused_scan_for_lstm_and_rnn_with_lengths_on_cpu():
    """torch runs packed sequences step by step on CPU (2-4x slower to train): with varying
    lengths auto takes the fused scan for LSTM and RNN, with torch's numbers; with equal
    lengths it keeps torch's kernel."""
    from rnnkit.kernels.dispatch import choose_backend

    x = torch.randn(7, 4, 3, dtype=torch.float64)
    lengths = torch.tensor([7, 2, 5, 7])
    for cls in (rnnkit.LSTM, rnnkit.RNN):
        kw = dict(num_layers=2, bidirectional=True, dtype=torch.float64)
        auto, torch_k = cls(3, 5, **kw), cls(3, 5, backend="torch", **kw)
        torch_k.load_state_dict(auto.state_dict())
        assert choose_backend(auto, x, lengths) == "fused"
        assert choose_backend(auto, x) == "torch" and choose_backend(auto, x, None) == "torch"
        with torch.no_grad():  # inference: torch's packed kernel is faster
            assert choose_backend(auto, x, lengths) == "torch"
        assert choose_backend(auto, x[:, :1], lengths[:1]) == "torch"  # one sequence
        results = []
        for layer in (auto, torch_k):
            out, h = layer(x, lengths=lengths)
            hs = h if isinstance(h, tuple) else (h,)
            (out.square().sum() + sum(v.sum() for v in hs)).backward()
            results.append([out, *hs] + [q.grad for q in layer.parameters()])
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_auto_lstm_takes_the_compiled_loop_for_projections_and_small_batch_inference():
    """kernels/dispatch.py's LSTM rules (benchmarks/results/lstm_auto_amd2_s17.json): float32
    with ``proj_size`` on the compiled loop, in training and inference, with and without
    lengths; float32 inference without lengths there too where the products are brgemm slices
    (not an Intel CPU) at B <= 2 on one thread and B <= 4 on two, torch's kernel beyond, above
    two threads (not measured), with gradients, on the packed rule and in float64. Either way
    the numbers are torch.nn.LSTM's."""
    import warnings

    from rnnkit.kernels import compiled
    from rnnkit.kernels.dispatch import choose_backend

    ext = compiled.ext()
    if ext is None:
        pytest.skip("the compiled loops did not build here (no compiler)")
    torch.manual_seed(0)
    x, lengths = torch.randn(9, 3, 4), torch.tensor([9, 4, 7])
    warnings.filterwarnings("ignore", message="LSTM with projections is not supported")
    for proj in (0, 3):
        ref = torch.nn.LSTM(4, 6, 2, proj_size=proj)
        auto = rnnkit.LSTM(4, 6, 2, proj_size=proj)
        auto.load_state_dict(ref.state_dict())
        for B, threads in ((1, 1), (2, 1), (3, 1), (3, 2), (5, 2), (1, 3)):
            xb = torch.randn(9, B, 4)
            kept_threads = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                assert choose_backend(auto, xb) == ("fused" if proj else "torch")  # gradients
                assert choose_backend(auto, xb.double()) == "torch"
                with torch.no_grad():
                    small = (threads <= 2 and B <= (4 if threads == 2 else 2)
                             and ext.prefer_slices())
                    assert choose_backend(auto, xb) == ("fused" if proj or small else "torch")
                    y, (h, c) = auto(xb)
                    y_ref, (h_ref, c_ref) = ref(xb)
            finally:
                torch.set_num_threads(kept_threads)
            for a, b in ((y, y_ref), (h, h_ref), (c, c_ref)):
                torch.testing.assert_close(a, b, atol=2e-6, rtol=0)
            with torch.no_grad():
                lens = torch.full((B,), 9)
                lens[-1] = 5
                assert choose_backend(auto, xb, lens) == ("fused" if proj else "torch")
        with compiled.disabled():  # no compiled loop: the older lengths rule still holds
            assert choose_backend(auto, x, lengths) == "fused"
            assert choose_backend(auto, x) == "torch"
        kept = ext.prefer_slices()
        try:
            ext.set_prefer_slices(False)  # the packed rule (Intel's): torch's kernel
            with torch.no_grad():
                assert choose_backend(auto, x[:, :1]) == ("fused" if proj else "torch")
        finally:
            ext.set_prefer_slices(kept)
        # training with lengths: the same outputs and gradients as torch.nn.LSTM's
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, (h, c) = auto(x, lengths=lengths)
        out_ref, (h_ref, c_ref) = ref(packed)
        out_ref = pad_packed_sequence(out_ref, total_length=9)[0]
        ((out * x[..., :1]).sum() + h.sum() + c.sum()).backward()
        ((out_ref * x[..., :1]).sum() + h_ref.sum() + c_ref.sum()).backward()
        for a, b in ((out, out_ref), (h, h_ref), (c, c_ref)):
            torch.testing.assert_close(a, b, atol=2e-6, rtol=0)
        for (name, p_ref), p in zip(ref.named_parameters(), auto.parameters()):
            torch.testing.assert_close(p.grad, p_ref.grad, atol=1e-5, rtol=0, msg=name)


@pytest.mark.parametrize("make", [
    lambda b: rnnkit.LSTM(4, 8, 2, proj_size=3, backend=b),
    lambda b: rnnkit.GRU(4, 8, 2, backend=b),
    lambda b: rnnkit.LayerNormLSTM(4, 8, 2, zoneout=0.2, backend=b),
    lambda b: rnnkit.LSTM(4, 8, 2, backend=b)], ids=["lstm_proj", "gru", "ln_lstm", "lstm"])
@pytest.mark.parametrize("grad", [True, False], ids=["grad", "no_grad"])
def test_forward_mode_ad_through_auto_matches_the_loop(make, grad):
    """Forward-mode AD (dual tensors) through whatever ``auto`` picks: the fused op and the
    input projection's autograd Function have no jvp, so their references run there, with the
    loop backend's tangents (before, a proj LSTM raised in training and silently returned no
    tangent under no_grad). Where auto picks torch's kernel (the plain LSTM in training), torch
    raises as torch.nn.LSTM does."""
    import torch.autograd.forward_ad as fwAD

    from rnnkit.kernels.dispatch import choose_backend

    torch.manual_seed(0)
    auto, loop = make("auto").eval(), make("loop").eval()
    loop.load_state_dict(auto.state_dict())
    x, t = torch.randn(5, 1, 4), torch.randn(5, 1, 4)

    def tangent(m):
        with torch.set_grad_enabled(grad), fwAD.dual_level():
            out, _ = m(fwAD.make_dual(x, t))
            return fwAD.unpack_dual(out).tangent

    with torch.set_grad_enabled(grad):
        picked = choose_backend(auto, x)
    if picked == "torch":
        with pytest.raises(NotImplementedError, match="forward AD"):
            tangent(auto)
        return
    got, want = tangent(auto), tangent(loop)
    assert got is not None and want is not None
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_small_batch_lstm_inference_never_waits_for_a_build(tmp_path):
    """With the compiled loops not built (an empty cache), LSTM inference at B=1 keeps torch's
    kernel and builds nothing (``compiled.built()``); an LSTM with ``proj_size`` does build
    them, as a GRU does, since there it wins several times over."""
    import subprocess
    import sys

    code = (
        "import torch, rnnkit\n"
        "from rnnkit.kernels import compiled\n"
        "from rnnkit.kernels.dispatch import choose_backend\n"
        "m = rnnkit.LSTM(4, 6).eval()\n"
        "with torch.no_grad():\n"
        "    print(choose_backend(m, torch.randn(3, 1, 4)), compiled.built(),\n"
        "          compiled.ext.cache_info().currsize)\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "RNNKIT_PREFER_SLICES": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["torch", "False", "0"]
    assert not list(tmp_path.rglob("*.so"))


def test_auto_gru_on_cpu_is_fused_in_training_and_for_large_batches_in_inference(monkeypatch):
    from rnnkit.kernels.dispatch import choose_backend
    from rnnkit.kernels.fused import _csteps

    monkeypatch.setattr(_csteps, "lib", lambda: None)  # the pure-torch steps (test_csteps: compiled)
    small, large = rnnkit.GRU(3, 16), rnnkit.GRU(3, 256)
    x1, x32 = torch.randn(5, 1, 3), torch.randn(5, 32, 3)
    assert choose_backend(small, x1) == "fused"  # training: grads needed
    with torch.no_grad():
        assert choose_backend(small, x1) == "torch"  # B*H = 16: torch's loop is cheaper
        assert choose_backend(large, x32) == "fused"  # B*H = 8192


def test_onednn_operands_are_plain_layouts():
    """A column slice of a wider gradient goes to oneDNN as a contiguous copy (its strided path is
    ~1000x slower); row-major matrices and their transposes go as they are."""
    a = torch.randn(6, 8)
    assert _gemm._plain(a) is a
    t = a.t()
    assert _gemm._plain(t) is t
    sl = a[:, :5]  # rows of stride 8, 5 wide
    p = _gemm._plain(sl)
    assert p is not sl and p.is_contiguous() and torch.equal(p, sl)
    x = torch.randn(6, 4)
    torch.testing.assert_close(_gemm.weight_grad(sl, x), sl.t() @ x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls", [rnnkit.GRU, rnnkit.LayerNormLSTM, rnnkit.IndRNN])
def test_inference_skips_the_custom_op_only_when_nothing_traces(cls, monkeypatch):
    """A call without gradients on plain tensors runs the kernel directly (the op's dispatch
    cost ~3.5 us a step at B=1); a call that records gradients, or runs under a dispatch mode
    (what make_fx and FlopCounterMode use), goes through rnnkit::fused_scan. Same numbers."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from rnnkit.kernels.fused import _op

    seen: list[str] = []
    real = _op._scan_op

    def spy(kind, *args):
        seen.append(kind)
        return real(kind, *args)

    monkeypatch.setattr(_op, "_scan_op", spy)

    class Passthrough(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    m = cls(5, 8, num_layers=2, backend="fused").eval()
    x = torch.randn(6, 2, 5)
    with torch.no_grad():
        direct = m(x)[0]
        assert seen == []
        with Passthrough():
            traced = m(x)[0]
        assert len(seen) == 2  # one op call per layer
    with_grad = m(x)[0]
    assert len(seen) == 4
    with torch.no_grad(), torch.autograd.forward_ad.dual_level():
        assert not _op._plain_eager([x])  # a forward-AD level: tangents need the op's rules
    torch.testing.assert_close(direct, traced, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(direct, with_grad.detach(), rtol=1e-6, atol=1e-6)
