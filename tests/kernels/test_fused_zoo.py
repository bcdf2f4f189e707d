"""The fused scans of the zoo cells (IndRNN, QRNN, SRU, minGRU, minLSTM, LayerNorm-LSTM/GRU)
against the reference loop, forward and gradients, over lengths and regularisers."""
import itertools

import pytest
import torch

import rnnkit
from rnnkit.cells import (
    IndRNNCell,
    LayerNormGRUCell,
    LayerNormLSTMCell,
    MinGRUCell,
    MinLSTMCell,
    QRNNCell,
    SRUCell,
)
from rnnkit.kernels.dispatch import choose_backend
from rnnkit.kernels.fused import _gemm, fused_project, fused_scan
from rnnkit.kernels.loop import length_mask, scan
from rnnkit.layers.regularizers import Regularizers

I, H = 3, 4
CELLS = {
    "indrnn": lambda: IndRNNCell(I, H),
    "indrnn_bound": lambda: IndRNNCell(I, H, recurrent_max=0.6),
    "qrnn_f": lambda: QRNNCell(I, H, pooling="f"),
    "qrnn_fo_w2": lambda: QRNNCell(I, H, window=2, pooling="fo"),
    "qrnn_ifo": lambda: QRNNCell(I, H, pooling="ifo", bias=False),
    "sru": lambda: SRUCell(I, H),
    "sru_square": lambda: SRUCell(H, H, rescale=True),
    "min_gru": lambda: MinGRUCell(I, H),
    "min_lstm": lambda: MinLSTMCell(I, H, mode="sequential"),
    "ln_lstm": lambda: LayerNormLSTMCell(I, H),
    "ln_lstm_nobias": lambda: LayerNormLSTMCell(I, H, bias=False),
    "ln_gru": lambda: LayerNormGRUCell(I, H),
}
HAS_HH = {"indrnn", "indrnn_bound", "ln_lstm", "ln_lstm_nobias", "ln_gru"}
LENGTHS = {"full": None, "unsorted": [5, 2, 5, 1]}
REGS = {
    "none": {},
    "zoneout": dict(zoneout=0.3),
    "recurrent_dropout": dict(recurrent_dropout=0.4),
    "both": dict(recurrent_dropout=0.3, zoneout=0.25),
}


def _setup(cell, T, B, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = {k: torch.randn(s, generator=g, dtype=dtype).mul_(0.7).requires_grad_()
         for k, s in cell.param_shapes().items()}
    x = torch.randn(T, B, cell.input_size, generator=g, dtype=dtype, requires_grad=True)
    state = tuple(torch.randn(B, s, generator=g, dtype=dtype).requires_grad_()
                  for s in cell.state_sizes)
    return p, x, state


def _run(kind, cell, p, x, state, mask, reg=None, training=True, seed=7):
    """Outputs, final state and gradients w.r.t. x, the state and every weight."""
    torch.manual_seed(seed)
    if kind == "loop":
        xp = cell.project(x, p)
        step = None if reg is None else reg.step(cell, state, training)
        ys, s = scan(cell, p, xp, state, mask, step)
    else:
        xp = fused_project(cell, x, p)
        kw = {} if reg is None else reg.step_inputs(state, x.shape[0], training)
        ys, s = fused_scan(cell, p, xp, state, mask, **kw)
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


GRID = [(c, lg, r) for c, lg, r in itertools.product(CELLS, LENGTHS, REGS)
        if c in HAS_HH or "recurrent" not in r and r != "both"]


@pytest.mark.parametrize("name,lengths,reg", GRID)
def test_matches_loop_float64(name, lengths, reg):
    cell = CELLS[name]()
    p, x, state = _setup(cell, 5, 4, torch.float64)
    mask = None if LENGTHS[lengths] is None else length_mask(torch.tensor(LENGTHS[lengths]), 5)
    r = Regularizers.build(cell, **REGS[reg]) if REGS[reg] else None
    for training in ((True, False) if r is not None else (True,)):
        ref = _run("loop", cell, p, x, state, mask, r, training)
        out = _run("fused", cell, p, x, state, mask, r, training)
        _assert_same(out, ref, 1e-10, f"{name} {lengths} {reg} training={training}")
    if mask is not None:  # padded steps output exactly zero
        assert out[0].masked_select(~mask).abs().max() == 0


@pytest.mark.parametrize("name", ["indrnn", "qrnn_fo_w2", "sru", "min_lstm", "ln_lstm", "ln_gru"])
def test_gradcheck(name):
    """gradcheck in float64 with lengths and with the regularisers' inputs."""
    cell = CELLS[name]()
    T, B = 4, 3
    p, x, state = _setup(cell, T, B, torch.float64, seed=2)
    xp = cell.project(x, p).detach().requires_grad_()
    mask = length_mask(torch.tensor([3, 4, 1]), T)
    g = torch.Generator().manual_seed(3)
    zones = tuple(torch.randint(0, 2, (T, *s.shape), generator=g).double() for s in state)
    rec = torch.rand(state[0].shape, generator=g, dtype=torch.float64) * 2
    kws = [{}, dict(zoneout=zones), dict(zoneout=(0.3,) * len(state))]
    if name in HAS_HH:
        kws.append(dict(rec_mask=rec, zoneout=zones))
    names = list(p)
    for kw in kws:
        def f(xp, *rest):
            st, w = rest[:len(state)], dict(zip(names, rest[len(state):]))
            ys, s = fused_scan(cell, w, xp, st, mask, **kw)
            return (ys, *s)
        assert torch.autograd.gradcheck(f, (xp, *state, *p.values()), atol=1e-7)


@pytest.mark.parametrize("name", ["indrnn", "qrnn_ifo", "sru", "min_gru", "ln_lstm", "ln_gru"])
def test_float32_onednn_path(name, monkeypatch):
    """float32 with oneDNN's GEMMs (forced at tiny sizes) equals the loop."""
    monkeypatch.setattr(_gemm, "ONEDNN_MIN_WORK", 0)
    cell = CELLS[name]()
    p, x, state = _setup(cell, 7, 5, torch.float32, seed=4)
    mask = length_mask(torch.tensor([7, 3, 7, 1, 5]), 7)
    r = Regularizers.build(cell, zoneout=0.2)
    for reg in (None, r):
        _assert_same(_run("fused", cell, p, x, state, mask, reg),
                     _run("loop", cell, p, x, state, mask, reg), 5e-5, name)


LAYERS = {
    "IndRNN": (rnnkit.IndRNN, {}), "QRNN": (rnnkit.QRNN, dict(window=2)),
    "SRU": (rnnkit.SRU, {}), "MinGRU": (rnnkit.MinGRU, {}),
    "MinLSTM": (rnnkit.MinLSTM, {}), "LayerNormLSTM": (rnnkit.LayerNormLSTM, {}),
    "LayerNormGRU": (rnnkit.LayerNormGRU, {}),
}


@pytest.mark.parametrize("name", LAYERS)
def test_layer_auto_is_fused_and_equals_loop(name):
    """auto picks the fused scan; 2 layers, bidirectional, lengths, zoneout: same as the loop."""
    cls, kw = LAYERS[name]
    torch.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=True, zoneout=0.2, dtype=torch.float64, **kw)
    auto, loop = cls(3, 4, **kw), cls(3, 4, backend="loop", **kw)
    loop.load_state_dict(auto.state_dict())
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    assert choose_backend(auto, x) == "fused"
    results = []
    for layer in (auto, loop):
        torch.manual_seed(5)
        out, h = layer(x, lengths=torch.tensor([6, 2, 5]))
        hs = h if isinstance(h, tuple) else (h,)
        (out.square().sum() + sum(v.sum() for v in hs)).backward()
        results.append([out, *hs] + [q.grad for q in layer.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", ["qrnn_f", "qrnn_fo_w2", "qrnn_ifo", "min_gru", "min_lstm",
                                  "sru", "sru_square"])
@pytest.mark.parametrize("reg", ["none", "zoneout"])
def test_gated_scan_in_time_chunks_matches_loop(name, reg, monkeypatch):
    """The gated and SRU scans work on a few steps at a time; chunks of 2 steps over T=5 (a
    remainder chunk too), with unsorted lengths, equal the loop in float64."""
    from rnnkit.kernels.fused import gated

    cell = CELLS[name]()
    p, x, state = _setup(cell, 5, 4, torch.float64, seed=5)
    width = fused_project(cell, x, p).shape[-1]  # G*H
    monkeypatch.setattr(gated, "CHUNK_ELEMS", 2 * 4 * width)
    assert gated._chunk(5, 4, width) == 2
    mask = length_mask(torch.tensor([5, 2, 4, 1]), 5)
    r = Regularizers.build(cell, **REGS[reg]) if REGS[reg] else None
    for training in ((True, False) if r is not None else (True,)):
        _assert_same(_run("fused", cell, p, x, state, mask, r, training),
                     _run("loop", cell, p, x, state, mask, r, training), 1e-10,
                     f"{name} {reg} training={training}")


@pytest.mark.parametrize("name", ["ln_lstm", "ln_lstm_nobias"])
@pytest.mark.parametrize("reg", ["none", "both"])
def test_ln_lstm_weight_sums_in_blocks_of_steps_match_loop(name, reg, monkeypatch):
    """The LayerNorm-LSTM backward sums dW_hh and the c-norm's gain/bias a block of steps at a
    time (reusing its buffers); blocks of 2 steps over T=5 (a remainder block too), with
    unsorted lengths and both regularisers, equal the loop in float64."""
    from rnnkit.kernels.fused import layernorm

    cell = CELLS[name]()
    p, x, state = _setup(cell, 5, 4, torch.float64, seed=3)
    monkeypatch.setattr(layernorm, "WEIGHT_BLOCK", 2 * 4 * 4 * H)  # 2 steps of (B, 4H)
    mask = length_mask(torch.tensor([5, 2, 4, 1]), 5)
    r = Regularizers.build(cell, **REGS[reg]) if REGS[reg] else None
    _assert_same(_run("fused", cell, p, x, state, mask, r), _run("loop", cell, p, x, state, mask, r),
                 1e-10, f"{name} {reg}")
    _assert_same(_run("fused", cell, p, x, state, None, r), _run("loop", cell, p, x, state, None, r),
                 1e-10, f"{name} {reg} full")
