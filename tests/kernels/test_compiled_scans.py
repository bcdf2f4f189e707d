"""The whole time loops in compiled code (``kernels/compiled``) against the loop backend.

Float64 forward and gradients of the compiled LSTM, GRU, LayerNorm-LSTM, LayerNorm-GRU,
Elman RNN (tanh, relu) and elementwise (IndRNN, QRNN f/fo/ifo, SRU, minGRU, minLSTM) loops
against :func:`rnnkit.kernels.loop.scan` (the tolerances of ``test_fused.py``), the
same numbers with the extension off, the same outputs under ``OMP_NUM_THREADS=1`` and
``=2``, and the fallback when the build fails.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import subprocess
import sys
import warnings

import pytest
import torch

import rnnkit
from rnnkit.bench.zoo import PACKED_LOOP_CELLS, make_layer
from rnnkit.cells import (
    GRUCell,
    IndRNNCell,
    LayerNormGRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    MinGRUCell,
    MinLSTMCell,
    QRNNCell,
    RNNCell,
    SRUCell,
)
from rnnkit.kernels import compiled
from rnnkit.kernels.fused import fused_project, fused_scan
from rnnkit.kernels.loop import length_mask, scan
from rnnkit.layers.regularizers import Regularizers


@pytest.fixture(scope="module")
def ext():
    if os.environ.get("RNNKIT_COMPILED_SCANS") == "0" or compiled.ext() is None:
        pytest.skip("the compiled time loops are off or could not be built")
    return compiled.ext()


@pytest.fixture
def intel_rule(ext):
    """The products chosen as on an Intel CPU (MKL's packed sgemm, kept for inference), whatever
    this CPU is; restored after the test."""
    kept = ext.prefer_slices()
    ext.set_prefer_slices(False)
    yield
    ext.set_prefer_slices(kept)


@pytest.fixture
def calls(ext, monkeypatch):
    """Use the extension wherever it can run, and count its calls by function name."""
    monkeypatch.setenv("RNNKIT_COMPILED_SCANS", "1")
    counts: dict[str, int] = {}

    class Spy:
        def __getattr__(self, name):
            f = getattr(ext, name)

            def call(*args):
                counts[name] = counts.get(name, 0) + 1
                return f(*args)
            return call

    monkeypatch.setattr(compiled, "ext", Spy)
    return counts


I, H = 3, 4
CELLS = {
    "lstm": lambda: LSTMCell(I, H),
    "lstm_nobias": lambda: LSTMCell(I, H, bias=False),
    "lstm_proj": lambda: LSTMCell(I, H, proj_size=3),
    "gru": lambda: GRUCell(I, H),
    "gru_nobias": lambda: GRUCell(I, H, bias=False),
    "ln_lstm": lambda: LayerNormLSTMCell(I, H),
    "ln_gru": lambda: LayerNormGRUCell(I, H),
    "rnn_tanh": lambda: RNNCell(I, H),
    "rnn_relu": lambda: RNNCell(I, H, nonlinearity="relu"),
    "rnn_nobias": lambda: RNNCell(I, H, bias=False),
    "indrnn": lambda: IndRNNCell(I, H),
}
#: the cells whose state is carried, not multiplied: no recurrent dropout
ELEMENTWISE = {
    "qrnn_f": lambda: QRNNCell(I, H, pooling="f"),
    "qrnn_fo": lambda: QRNNCell(I, H, pooling="fo"),
    "qrnn_ifo": lambda: QRNNCell(I, H, pooling="ifo"),
    "sru": lambda: SRUCell(I, H),
    "mingru": lambda: MinGRUCell(I, H),
    "minlstm": lambda: MinLSTMCell(I, H),
}
LENGTHS = {"full": None, "unsorted": [6, 2, 6, 1], "sorted": [6, 4, 4, 2]}
REGS = {"none": {}, "zoneout": dict(zoneout=0.3), "recurrent_dropout": dict(recurrent_dropout=0.4),
        "both": dict(recurrent_dropout=0.3, zoneout=0.25)}


def _setup(cell, T, B, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = {k: torch.randn(s, generator=g, dtype=dtype).mul_(0.7).requires_grad_()
         for k, s in cell.param_shapes().items()}
    x = torch.randn(T, B, cell.input_size, generator=g, dtype=dtype)
    state = tuple(torch.randn(B, s, generator=g, dtype=dtype).requires_grad_()
                  for s in cell.state_sizes)
    return p, x, state


def _run(kind, cell, p, x, state, mask, reg, training, seed=7):
    """Outputs, final state and the gradients of a fixed random loss w.r.t. everything."""
    torch.manual_seed(seed)
    x = x.detach().requires_grad_()
    if kind == "loop":
        xp = cell.project(x, p)
        ys, s = scan(cell, p, xp, state, mask, reg.step(cell, state, training))
    else:  # (QRNN: the fused projection leaves the gates' activations to the scan)
        xp = fused_project(cell, x, p)
        ys, s = fused_scan(cell, p, xp, state, mask,
                           **reg.step_inputs(state, x.shape[0], training))
    g = torch.Generator().manual_seed(99)
    loss = (ys * torch.randn(ys.shape, generator=g, dtype=ys.dtype)).sum()
    loss = loss + sum((si * torch.randn(si.shape, generator=g, dtype=si.dtype)).sum() for si in s)
    grads = torch.autograd.grad(loss, [x, *state, *p.values()], allow_unused=True)
    return [ys, *s, *grads]


def _assert_close(a, b, atol, what, rtol=0.0):
    for i, (u, v) in enumerate(zip(a, b, strict=True)):
        torch.testing.assert_close(u, v, atol=atol, rtol=rtol,
                                   msg=lambda m: f"{what} [{i}]: {m}")


_CASES = [*itertools.product(CELLS, LENGTHS, REGS),
          *itertools.product(ELEMENTWISE, LENGTHS, ("none", "zoneout"))]


@pytest.mark.parametrize("name,lengths,reg", _CASES)
def test_matches_loop_float64(calls, name, lengths, reg):
    cell = {**CELLS, **ELEMENTWISE}[name]()
    r = Regularizers.build(cell, **REGS[reg])
    p, x, state = _setup(cell, 6, 4, torch.float64)
    mask = None if LENGTHS[lengths] is None else length_mask(torch.tensor(LENGTHS[lengths]), 6)
    for training in (True, False):
        ref = _run("loop", cell, p, x, state, mask, r, training)
        n = dict(calls)
        out = _run("fused", cell, p, x, state, mask, r, training)
        assert sum(calls.values()) == sum(n.values()) + 2, "forward and backward compiled"
        _assert_close(out, ref, 1e-12, f"{name} {lengths} {reg} training={training}")
        if mask is not None:  # padded steps output exactly zero
            assert out[0].masked_select(~mask).abs().max() == 0


@pytest.mark.parametrize("T", [1, 2, 6])
@pytest.mark.parametrize("reg", ["none", "recurrent_dropout"])
def test_gru_backward_writes_dxp_in_place(calls, T, reg):
    """The GRU's compiled backward (gru_backward_dxp: dxp, dgh_n and db_hh from the loop,
    dW_hh from h0 and Y[:-1] without stacking) against the Python loop, float64, T = 1 (h0's
    product alone) and up, with and without the recurrent mask."""
    cell = CELLS["gru"]()
    r = Regularizers.build(cell, **REGS[reg])
    p, x, state = _setup(cell, T, 4, torch.float64)
    ref = _run("loop", cell, p, x, state, None, r, True)
    n = calls.get("gru_backward_dxp", 0)
    out = _run("fused", cell, p, x, state, None, r, True)
    assert calls.get("gru_backward_dxp", 0) == n + 1
    _assert_close(out, ref, 1e-12, f"gru T={T} {reg}")


LAYERS = {"lstm": rnnkit.LSTM, "lstm_proj": functools.partial(rnnkit.LSTM, proj_size=3),
          "gru": rnnkit.GRU, "ln_lstm": rnnkit.LayerNormLSTM,
          "ln_gru": rnnkit.LayerNormGRU, "rnn": rnnkit.RNN, "indrnn": rnnkit.IndRNN}
#: layers without recurrent weights (zoneout only)
CARRIED = {"qrnn": rnnkit.QRNN, "sru": rnnkit.SRU, "mingru": rnnkit.MinGRU,
           "minlstm": rnnkit.MinLSTM}


def _layer_run(cls, backend, dtype=torch.float64, training=True, hidden=5, batch=3,
               lengths=(6, 2, 5), **kw):
    torch.manual_seed(0)
    regs = dict(zoneout=0.2) if cls in CARRIED.values() else dict(zoneout=0.2,
                                                                    recurrent_dropout=0.3)
    layer = cls(4, hidden, num_layers=2, bidirectional=True, backend=backend, dtype=dtype,
                **regs, **kw).train(training)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, batch, 4, generator=g, dtype=dtype).requires_grad_()
    torch.manual_seed(7)
    out, h = layer(x, lengths=torch.tensor(lengths[:batch]))
    hs = h if isinstance(h, tuple) else (h,)
    (out.square().sum() + sum(v.sum() for v in hs)).backward()
    return [out, *hs, x.grad, *(q.grad for q in layer.parameters())]


ALL_LAYERS = {**LAYERS, **CARRIED}


@pytest.mark.parametrize("name,training", list(itertools.product(ALL_LAYERS, (True, False))))
def test_bidirectional_layers_match_the_loop(calls, name, training):
    """Two bidirectional layers with lengths, zoneout and recurrent dropout, same seed."""
    out = _layer_run(ALL_LAYERS[name], "fused", training=training)
    assert calls, "the compiled loops ran"
    ref = _layer_run(ALL_LAYERS[name], "loop", training=training)
    _assert_close(out, ref, 1e-10, f"{name} training={training}")


@pytest.mark.parametrize("name", ALL_LAYERS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_same_numbers_with_the_extension_off(calls, name, dtype):
    """On and off (the Python loop, with or without the C steps) agree to rounding."""
    kw = dict(dtype=dtype, hidden=137, batch=3)  # (137: blocks of 64 units and a remainder)
    on = _layer_run(ALL_LAYERS[name], "fused", **kw)
    assert calls
    with compiled.disabled():
        n = sum(calls.values())
        off = _layer_run(ALL_LAYERS[name], "fused", **kw)
        assert sum(calls.values()) == n
    if dtype == torch.float64:  # (sums over 137 units: 1e-10, as the layers' test above)
        _assert_close(on, off, 1e-10, name)
    else:  # float32: the tolerances test_fused.py uses for float32 paths, and 1e-5 relative
        _assert_close(on[:3], off[:3], 1e-5, name, rtol=1e-5)
        # gradients: sums over T*B rows and 137 units that reach 200 (LayerNorm-LSTM's
        # weight_ih), where each path is within 1.5e-6 of the largest value from the float64
        # result (measured): 1e-4, or 5e-6 of the tensor's largest value if that is more
        for i, (u, v) in enumerate(zip(on[3:], off[3:], strict=True)):
            atol = max(1e-4, 5e-6 * v.abs().max().item())
            _assert_close([u], [v], atol, f"{name} gradient {i}", rtol=1e-5)


_THREADS_SCRIPT = """
import json, sys, torch, rnnkit
from rnnkit.kernels import compiled
out = {"threads": torch.get_num_threads(), "used": compiled.ext().threads_used(16)}
for cls in (rnnkit.LSTM, rnnkit.GRU, rnnkit.LayerNormLSTM, rnnkit.LayerNormGRU, rnnkit.RNN,
            rnnkit.MinLSTM, rnnkit.SRU):
    torch.manual_seed(0)
    rd = {} if cls in (rnnkit.MinLSTM, rnnkit.SRU) else {"recurrent_dropout": 0.2}
    m = cls(32, 256, bidirectional=True, zoneout=0.1, backend="fused", **rd)
    x = torch.randn(12, 24, 32, requires_grad=True)
    torch.manual_seed(1)
    y, _ = m(x, lengths=torch.tensor([12] * 20 + [9, 5, 3, 1]))
    y.square().sum().backward()
    out[cls.__name__] = [y.flatten().tolist(), x.grad.flatten().tolist(),
                         getattr(m, "weight_hh_l0", m.weight_ih_l0).grad.flatten().tolist()]
json.dump(out, open(sys.argv[1], "w"))
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores")
def test_same_outputs_under_one_and_two_openmp_threads(ext, tmp_path):
    """Built with -fopenmp, the loops really fork under OMP_NUM_THREADS=2 (at::parallel_for
    over 2 threads), and give the 1-thread outputs to float32 rounding."""
    res = {}
    for n in (1, 2):
        env = {**os.environ, "OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n),
               "RNNKIT_COMPILED_SCANS": "1"}  # (tests/conftest.py sets both to 1)
        path = tmp_path / f"t{n}.json"
        subprocess.run([sys.executable, "-c", _THREADS_SCRIPT, str(path)], env=env, check=True,
                       timeout=600)
        res[n] = json.loads(path.read_text())
    assert (res[1]["threads"], res[1]["used"]) == (1, 1)
    assert (res[2]["threads"], res[2]["used"]) == (2, 2)
    # (the products may differ: at 2 threads an unpacked one is oneDNN brgemm blocks, at 1
    # thread MKL's sgemm, which round differently: gradients within 1e-4, or 5e-6
    # of the tensor's largest value, as in the float32 test above)
    for name in ("LSTM", "GRU", "LayerNormLSTM", "LayerNormGRU", "RNN", "MinLSTM", "SRU"):
        for a, b, tol in zip(res[1][name], res[2][name], (1e-5, 1e-4, 1e-4)):
            a, b = torch.tensor(a), torch.tensor(b)
            tol = max(tol, 5e-6 * a.abs().max().item()) if tol > 1e-5 else tol
            torch.testing.assert_close(a, b, atol=tol, rtol=0, msg=lambda m: f"{name}: {m}")


def test_a_failed_build_warns_once_and_falls_back(tmp_path, monkeypatch):
    """A broken compiler: one warning with its output, no library left, the Python loop's
    numbers."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("RNNKIT_COMPILED_SCANS", "1")
    compiled.ext.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = _layer_run(rnnkit.LSTM, "fused")
            second = _layer_run(rnnkit.LSTM, "fused")
        assert compiled.ext() is None
    finally:
        compiled.ext.cache_clear()
    assert compiled.FLAGS == ["-O3", "-march=native", "-fopenmp"]  # the flags it is tested with
    ours = [w for w in caught if "compiled time loops" in str(w.message)]
    assert len(ours) == 1 and issubclass(ours[0].category, RuntimeWarning)
    assert "no-such-compiler" in str(ours[0].message)
    root = tmp_path / "rnnkit" / "compiled-scans"
    # (the empty lock file the builders take turns on stays: compiled._one_builder)
    left = sorted(p.name for p in root.iterdir())
    assert left == [".build.lock"], f"nothing half-built left in the cache: {left}"
    with compiled.disabled():
        ref = _layer_run(rnnkit.LSTM, "fused")
    for a, b, c in zip(first, second, ref):
        assert torch.equal(a, c) and torch.equal(b, c)


def test_env_zero_turns_it_off(calls, monkeypatch):
    monkeypatch.setenv("RNNKIT_COMPILED_SCANS", "0")
    assert compiled.mode() == "off"
    _layer_run(rnnkit.LSTM, "fused")
    assert not calls


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", ["lstm", "lstm_proj", "gru", "ln_lstm", "ln_gru", "rnn"])
def test_packed_and_unpacked_products_give_the_same_numbers(calls, ext, name, threads):
    """float32, lengths, zoneout and recurrent dropout, 1 and 2 threads: MKL's packed products
    in every loop (``set_pack_by_size(False)``), none (``set_packed(False)``: at 2 threads
    oneDNN brgemm blocks, else BLAS's sgemm), and the default (packed where the
    packed weight has room), each against the Python loop; the slices really ran at 2
    threads."""
    kw = dict(dtype=torch.float32, hidden=37, batch=3)
    kept = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with compiled.disabled():
            ref = _layer_run(LAYERS[name], "fused", **kw)
        out = {}
        for mode in ("always", "none", "by size"):
            ext.set_pack_by_size(mode != "always")
            ext.set_packed(mode != "none")
            slices = ext.slice_count()
            try:
                out[mode] = _layer_run(LAYERS[name], "fused", **kw)
            finally:
                ext.set_pack_by_size(True)
                ext.set_packed(True)
            if mode == "none":
                assert (ext.slice_count() > slices) == (threads == 2 or ext.prefer_slices())
    finally:
        torch.set_num_threads(kept)
    for mode, got in out.items():
        _assert_close(got[:3], ref[:3], 1e-5, f"{name} {mode}", rtol=1e-5)
        for i, (u, v) in enumerate(zip(got[3:], ref[3:], strict=True)):
            atol = max(1e-4, 5e-6 * v.abs().max().item())
            _assert_close([u], [v], atol, f"{name} {mode} gradient {i}", rtol=1e-5)


@pytest.mark.parametrize("slices", [False, True], ids=["intel_rule", "slices"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name,hidden", [("lstm", 1), ("gru", 1), ("rnn", 1), ("proj1", 4),
                                         ("lstm", 64), ("gru", 64)])
def test_unpacked_products_of_one_unit_and_on_padded_rows(calls, ext, name, hidden, threads,
                                                          slices):
    """No packed weights (``set_packed(False)``), either vendor's rule, 1 and 2 threads: BLAS's
    sgemm and brgemm read W^T with a leading dimension of at least N, both for a W_hh of one
    column (H = 1, or an LSTM with ``proj_size=1``), whose transpose has row stride 1, and for a
    copy whose rows are padded past 4H = 256 (H = 64); the numbers are the Python loop's."""
    cls = functools.partial(rnnkit.LSTM, proj_size=1) if name == "proj1" else LAYERS[name]
    kw = dict(dtype=torch.float32, hidden=hidden, batch=3)
    kept, kept_pref = torch.get_num_threads(), ext.prefer_slices()
    torch.set_num_threads(threads)
    try:
        with compiled.disabled():
            ref = _layer_run(cls, "fused", **kw)
        ext.set_prefer_slices(slices)
        ext.set_packed(False)
        got = _layer_run(cls, "fused", **kw)
    finally:
        ext.set_packed(True)
        ext.set_prefer_slices(kept_pref)
        torch.set_num_threads(kept)
    assert calls
    outs = 3 if name in ("lstm", "proj1") else 2
    _assert_close(got[:outs], ref[:outs], 1e-5, name, rtol=1e-5)
    for i, (u, v) in enumerate(zip(got[outs:], ref[outs:], strict=True)):
        atol = max(1e-4, 1e-5 * v.abs().max().item())
        _assert_close([u], [v], atol, f"{name} gradient {i}", rtol=1e-5)


@pytest.mark.parametrize("batch", [40, 80])
@pytest.mark.parametrize("hidden", [37, 300])
@pytest.mark.parametrize("name", ["lstm", "gru", "ln_lstm"])
def test_unpacked_products_over_32_rows_at_two_threads(calls, ext, name, hidden, batch):
    """At 2 threads, 40 or 80 rows (blocks of brgemm rows), K <= 1024 (brgemm on W^T in place)
    or K = 4 x 300 > 1024 (the LSTMs' backward: brgemm on panels of W_hh at 40 rows, and at 80
    where slices are preferred, else BLAS's sgemm): the unpacked products give the Python
    loop's numbers."""
    lengths = (6,) * (batch - 2) + (4, 2)
    kw = dict(dtype=torch.float32, hidden=hidden, batch=batch, lengths=lengths)
    kept = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with compiled.disabled():
            ref = _layer_run(LAYERS[name], "fused", **kw)
        ext.set_packed(False)
        slices = ext.slice_count()
        try:
            got = _layer_run(LAYERS[name], "fused", **kw)
        finally:
            ext.set_packed(True)
        ran = ext.slice_count() > slices
    finally:
        torch.set_num_threads(kept)
    assert ran  # (K = 4H > 1024 backward: brgemm on panels of W_hh; forward: on W^T)
    _assert_close(got[:3], ref[:3], 2e-5, name, rtol=1e-5)
    for i, (u, v) in enumerate(zip(got[3:], ref[3:], strict=True)):
        # float32 sums over 480 rows in another order (the Python loop's weight gradients are
        # oneDNN's on a CPU that is not Intel's): the LayerNorm-LSTM's second layer's input
        # weight was 7e-6 of its largest entry apart on the 2-core AMD EPYC
        atol = max(1e-4, 1e-5 * v.abs().max().item())
        _assert_close([u], [v], atol, f"{name} gradient {i}", rtol=1e-5)


def test_training_packs_only_where_the_packed_weight_has_room(calls, ext):
    """At B=32, T=100, H=256 MKL's packed W_hh (7.6-10 MB) has room beside the LSTM's backward
    gate gradients (its forward packs) but not beside what its backward's caller stacks after
    the loop (its backward does not), while the GRU's backward has room (dxp and h_{t-1}
    stacked: 13 MB); ``set_pack_by_size(False)`` packs every loop. (The rule of an Intel CPU:
    on another, training loops at these shapes pack nothing, below.)"""
    if not (ext.packed() and ext.mkl_packed_api()):
        pytest.skip("no MKL packed products")
    if ext.pack_bytes(32, 256, 1024) <= 100 * 32 * 256 * 4 + 2 * 1024 * 256 * 4:
        pytest.skip("this MKL's packed weight is small enough to fit everywhere")
    x = torch.randn(100, 32, 128)

    def packs(layer, by_size=True, prefer_slices=False):
        ext.set_pack_by_size(by_size)
        kept = ext.prefer_slices()
        ext.set_prefer_slices(prefer_slices)
        n = ext.pack_count()
        try:
            layer(x)[0].sum().backward()
        finally:
            ext.set_pack_by_size(True)
            ext.set_prefer_slices(kept)
        return ext.pack_count() - n

    lstm = rnnkit.LSTM(128, 256, zoneout=0.1, backend="fused")
    gru = rnnkit.GRU(128, 256, backend="fused")
    assert packs(lstm) == 1  # the forward
    assert packs(lstm, by_size=False) == 2
    assert packs(gru) == 2
    # preferring oneDNN's brgemm slices (a CPU that is not Intel's): no loop packs, unless told to
    assert packs(lstm, prefer_slices=True) == packs(gru, prefer_slices=True) == 0
    assert packs(gru, by_size=False, prefer_slices=True) == 2


def test_slices_are_preferred_on_a_cpu_that_is_not_intels(ext):
    """The default follows the CPU's vendor (MKL's products were 1.15-1.84x oneDNN's time on an
    AMD EPYC: docs/kernels.md, "MKL on an AMD CPU"); RNNKIT_PREFER_SLICES overrides it, and a
    value other than 0 or 1 is a one-line error naming the variable."""
    if os.environ.get("RNNKIT_PREFER_SLICES"):
        pytest.skip("RNNKIT_PREFER_SLICES is set")
    try:
        with open("/proc/cpuinfo") as f:
            vendors = {ln.split(":", 1)[1].strip() for ln in f if ln.startswith("vendor_id")}
    except OSError:
        vendors = set()
    if not vendors:
        pytest.skip("no vendor_id in /proc/cpuinfo")
    assert ext.prefer_slices() == ("GenuineIntel" not in vendors)
    code = "from rnnkit.kernels import compiled; print(compiled.ext().prefer_slices())"
    for value, expected in (("0", "False"), ("1", "True")):
        env = {**os.environ, "RNNKIT_PREFER_SLICES": value, "RNNKIT_COMPILED_SCANS": "1"}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=300, check=True).stdout
        assert out.strip() == expected
    env = {**os.environ, "RNNKIT_PREFER_SLICES": "yes", "RNNKIT_COMPILED_SCANS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode != 0
    assert "RNNKIT_PREFER_SLICES='yes': expected 0 or 1" in out.stderr.splitlines()[-1]


@pytest.mark.parametrize("batch,hidden", [(40, 300), (80, 300), (40, 64)])
@pytest.mark.parametrize("name", ["lstm", "lstm_proj", "gru", "ln_lstm", "ln_gru", "rnn"])
def test_slices_at_one_thread_give_the_python_loops_numbers(calls, ext, name, batch, hidden):
    """With slices preferred, one thread, 40 or 80 rows and K = 4 x 300 > 1024 (the LSTMs'
    backward on panels of W_hh, up to 128 rows), or H = 64 (the LSTMs' forward reads W_hh^T from
    rows padded past 4H = 256): brgemm ran, nothing was packed, and the numbers are the Python
    loop's."""
    kw = dict(dtype=torch.float32, hidden=hidden, batch=batch,
              lengths=(6,) * (batch - 2) + (4, 2))
    kept, kept_pref = torch.get_num_threads(), ext.prefer_slices()
    torch.set_num_threads(1)
    try:
        with compiled.disabled():
            ref = _layer_run(LAYERS[name], "fused", **kw)
        ext.set_prefer_slices(True)
        slices, packs = ext.slice_count(), ext.pack_count()
        got = _layer_run(LAYERS[name], "fused", **kw)
        ran, packed = ext.slice_count() - slices, ext.pack_count() - packs
    finally:
        ext.set_prefer_slices(kept_pref)
        torch.set_num_threads(kept)
    assert ran >= 2 * 6 and packed == 0  # (every step of the forward and the backward)
    outs = 3 if "lstm" in name else 2  # the output and the final states; then the gradients
    _assert_close(got[:outs], ref[:outs], 2e-5, name, rtol=1e-5)
    for i, (u, v) in enumerate(zip(got[outs:], ref[outs:], strict=True)):
        atol = max(1e-4, 1e-5 * v.abs().max().item())
        _assert_close([u], [v], atol, f"{name} gradient {i}", rtol=1e-5)


@pytest.mark.parametrize("shape", [(32, 100, 128, 256), (8, 20, 16, 64)], ids=["b32", "small"])
@pytest.mark.parametrize("name", PACKED_LOOP_CELLS)
def test_peak_memory_no_higher_than_the_python_loop(calls, ext, name, shape):
    """Issue 21: one forward+backward's peak (torch's profiler) on the compiled loop is no
    higher than on the Python loop, where MKL's packed weights (7.3 MB and more) would have
    raised it by 4-6 MiB at B=32, H=256 (docs/kernels.md, "Memory")."""
    from rnnkit.bench.measure import Task, peak_bytes

    B, T, I, H = shape
    torch.manual_seed(0)
    x, g = torch.randn(T, B, I), torch.randn(T, B, H)
    layer = make_layer(name, I, H, backend="fused")

    def peak(ctx):
        def run():
            with ctx():
                layer(x)[0].backward(g)
        task = Task(run=run, setup=lambda: layer.zero_grad(set_to_none=True))
        task.setup()
        run()  # (first calls allocate once-only things)
        return peak_bytes(task)

    loop = peak(compiled.disabled)
    n = sum(calls.values())
    ours = peak(contextlib.nullcontext)
    assert sum(calls.values()) > n
    assert ours <= loop, f"{name}: {ours / 2**20:.2f} MiB compiled > {loop / 2**20:.2f} loop"


def test_unpacked_products_switch(calls, ext):
    """RNNKIT_PACKED_GEMM=0 reaches the extension."""
    env = {**os.environ, "RNNKIT_PACKED_GEMM": "0", "RNNKIT_COMPILED_SCANS": "1"}
    code = "from rnnkit.kernels import compiled; print(compiled.ext().packed())"
    for value, expected in (("0", "False"), ("", "True")):
        env["RNNKIT_PACKED_GEMM"] = value
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=300, check=True).stdout
        assert out.strip() == expected


@pytest.mark.parametrize("slices", [False, True], ids=["packed", "slices"])
@pytest.mark.parametrize("layer", [rnnkit.LSTM, rnnkit.GRU, rnnkit.LayerNormLSTM, rnnkit.RNN,
                                   functools.partial(rnnkit.LSTM, proj_size=5)],
                         ids=["lstm", "gru", "ln_lstm", "rnn", "lstm_proj"])
def test_inference_keeps_its_weights_and_notices_a_changed_weight(calls, ext, layer, slices):
    """Without gradients the forward loops keep their form of W_hh between calls: MKL's packed
    weight (the Intel rule), or where slices are preferred a copy of W_hh^T with padded rows
    (H = 64), packing nothing; a training step never adds to that cache; a weight changed in
    place is packed or transposed again (the outputs equal the Python loop's for the new
    weights, not the old ones')."""
    if not slices and not ext.packed():
        pytest.skip("RNNKIT_PACKED_GEMM=0: no packed products")
    torch.manual_seed(0)
    m = layer(7, 64, backend="fused")
    x = torch.randn(6, 3, 7)
    kept_pref = ext.prefer_slices()
    ext.set_prefer_slices(slices)
    try:
        ext.clear_pack_cache()
        packs = ext.pack_count()
        m(x)[0].sum().backward()
        assert ext.pack_cache_entries() == 0  # training: W_hh changes every step
        with torch.no_grad():
            before = m(x)[0]
            kept = ext.pack_cache_entries()
            assert kept >= 1
            assert torch.equal(m(x)[0], before)
            assert ext.pack_cache_entries() == kept  # the second call found them
            for p in m.parameters():
                p.mul_(1.5)
            after = m(x)[0]
            with compiled.disabled():
                plain = m(x)[0]
        assert (ext.pack_count() == packs) == slices
    finally:
        ext.set_prefer_slices(kept_pref)
        ext.clear_pack_cache()
    assert not torch.allclose(after, before, atol=1e-3)
    torch.testing.assert_close(after, plain, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layer,hidden", [(rnnkit.GRU, 11), (rnnkit.LayerNormGRU, 11),
                                          (rnnkit.LayerNormLSTM, 11), (rnnkit.LayerNormLSTM, 64),
                                          (rnnkit.LSTM, 11), (rnnkit.LSTM, 64)],
                         ids=["gru", "ln_gru", "ln_lstm", "ln_lstm_padded", "lstm",
                              "lstm_padded"])
def test_inference_on_slices_packs_nothing_and_gives_the_same_numbers(calls, ext, layer,
                                                                     hidden):
    """Where slices are preferred, the GRUs' and the LSTMs' inference loops (1 thread: no team;
    the LSTMs' products by raw pointers, at H = 64 from padded rows of W_hh^T)
    pack nothing, keep each layer's W_hh^T, run brgemm slices, and give the packed loop's
    numbers."""
    torch.manual_seed(0)
    m = layer(7, hidden, num_layers=2, backend="fused")
    x = torch.randn(6, 1, 7)
    kept, kept_pref = torch.get_num_threads(), ext.prefer_slices()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            ext.set_prefer_slices(False)
            packed = m(x)[0]
            ext.set_prefer_slices(True)
            ext.clear_pack_cache()
            slices, packs = ext.slice_count(), ext.pack_count()
            got = m(x)[0]
            assert ext.slice_count() > slices and ext.pack_count() == packs
            assert ext.pack_cache_entries() == 2  # (each layer's W_hh^T)
    finally:
        ext.set_prefer_slices(kept_pref)
        torch.set_num_threads(kept)
    torch.testing.assert_close(got, packed, atol=1e-6, rtol=1e-5)


def test_mkl_packed_products_are_found_where_torch_has_mkl(ext):
    """The per-step products call MKL's packed GEMM straight from libtorch_cpu; where torch
    was built with MKL that lookup must succeed (else every loop silently takes at::mm)."""
    if not torch.backends.mkl.is_available():
        pytest.skip("this torch has no MKL")
    assert ext.mkl_packed_api()


def test_pack_cache_size_setting(ext, intel_rule):
    """RNNKIT_PACK_CACHE_MB=0 keeps no packed weight between inference calls (same outputs);
    a value that is not a whole number of MB is a one-line error naming the variable."""
    if not ext.packed():
        pytest.skip("RNNKIT_PACKED_GEMM=0: no packed products")
    torch.manual_seed(0)
    m = rnnkit.GRU(7, 11, backend="fused")
    x = torch.randn(6, 3, 7)
    try:
        with torch.no_grad():
            ext.set_pack_cache_bytes(64 << 20)
            kept = m(x)[0]
            assert ext.pack_cache_entries() == 1
            ext.set_pack_cache_bytes(0)
            assert ext.pack_cache_entries() == 0
            assert torch.equal(m(x)[0], kept)
            assert ext.pack_cache_entries() == 0
    finally:
        ext.set_pack_cache_bytes(compiled._pack_cache_mb() << 20)
    env = {**os.environ, "RNNKIT_PACK_CACHE_MB": "lots", "RNNKIT_COMPILED_SCANS": "1"}
    out = subprocess.run([sys.executable, "-c", "from rnnkit.kernels import compiled; compiled.ext()"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "RNNKIT_PACK_CACHE_MB: expected a whole number of MB" in out.stderr.splitlines()[-1]


@pytest.mark.parametrize("layer", [rnnkit.GRU, rnnkit.LayerNormGRU, rnnkit.LayerNormLSTM,
                                   rnnkit.LSTM], ids=["gru", "ln_gru", "ln_lstm", "lstm"])
@pytest.mark.parametrize("zoneout", [0.0, 0.25])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("slices,hidden", [(False, 40), (True, 40), (True, 64)],
                         ids=["packed", "slices", "slices_padded"])
def test_team_inference_loop_matches_the_serial_loop(calls, ext, layer, zoneout, batch, slices,
                                                     hidden):
    """Inference at a few rows with 2 threads runs each layer's loop on a team of threads,
    each owning a slice of the hidden units (H=40: slices of 32 and 8 units; H=64: 32 and 32),
    the LayerNorm moments combined across the slices, each slice's product from MKL's packed
    slices or (slices preferred) a brgemm per gate block on one copy of W_hh^T (at H=64 the
    LayerNorm-LSTM's with padded rows); its outputs equal the one-loop path's (team off) within
    float32 rounding, and the team really ran (with slices: packing nothing)."""
    if not slices and (not ext.packed() or not ext.mkl_packed_api()):
        pytest.skip("the packed team loop needs MKL's packed products")
    torch.manual_seed(0)
    m = layer(7, hidden, num_layers=2, zoneout=zoneout, backend="fused").eval()
    x = torch.randn(9, batch, 7)
    threads, rows, kept = torch.get_num_threads(), ext.team_rows(), ext.prefer_slices()
    torch.set_num_threads(2)
    try:
        ext.set_prefer_slices(slices)
        with torch.no_grad():
            before, packs = ext.team_runs(), ext.pack_count()
            ext.clear_pack_cache()
            team = m(x)
            assert ext.team_runs() == before + 2  # one per layer
            assert (ext.pack_count() == packs) == slices
            ext.set_team_rows(0)
            serial = m(x)
            assert ext.team_runs() == before + 2
    finally:
        ext.set_team_rows(rows)
        ext.set_prefer_slices(kept)
        torch.set_num_threads(threads)
    torch.testing.assert_close(team[0], serial[0], atol=2e-5, rtol=1e-5)
    for a, b in zip(torch.utils._pytree.tree_leaves(team[1]),
                    torch.utils._pytree.tree_leaves(serial[1])):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train_nograd"])
@pytest.mark.parametrize("batch,lengths", [(1, None), (3, (9, 4, 7))], ids=["b1", "b3_lengths"])
def test_ln_lstm_inference_loop_matches_the_loop_backend(calls, ext, dtype, threads, training,
                                                         batch, lengths):
    """Without gradients the LayerNorm-LSTM's compiled forward runs its inference loop (no saved
    activations; float32: the packed product by raw pointers, and at 2 threads and B=1 the
    team of threads with its spin barriers); its outputs equal the loop backend's with the
    same seed: zoneout (rates in evaluation, masks in training), recurrent dropout, lengths."""
    torch.manual_seed(0)
    layer = functools.partial(rnnkit.LayerNormLSTM, 7, 40, num_layers=2, zoneout=0.25,
                              recurrent_dropout=0.3, dtype=dtype)
    fused, loop = layer(backend="fused").train(training), layer(backend="loop").train(training)
    loop.load_state_dict(fused.state_dict())
    x = torch.randn(9, batch, 7, dtype=dtype)
    kw = {} if lengths is None else {"lengths": torch.tensor(lengths)}
    kept = torch.get_num_threads()
    torch.set_num_threads(threads)
    teams = ext.team_runs()
    try:
        with torch.no_grad():
            torch.manual_seed(3)
            out = fused(x, **kw)
            torch.manual_seed(3)
            ref = loop(x, **kw)
    finally:
        torch.set_num_threads(kept)
    assert calls.get("ln_lstm_forward", 0) == 2  # one per layer
    team = dtype == torch.float32 and threads == 2 and lengths is None and not training
    if ext.packed() and ext.mkl_packed_api():  # (the team: no lengths, no recurrent mask)
        assert ext.team_runs() == teams + (2 if team else 0)
    tol = 1e-10 if dtype == torch.float64 else 2e-5
    for a, b in zip(torch.utils._pytree.tree_leaves(out), torch.utils._pytree.tree_leaves(ref)):
        torch.testing.assert_close(a, b, atol=tol, rtol=1e-5)


@pytest.mark.parametrize("layer", [rnnkit.GRU, rnnkit.LayerNormGRU, rnnkit.LayerNormLSTM,
                                   rnnkit.LSTM], ids=["gru", "ln_gru", "ln_lstm", "lstm"])
def test_team_with_more_threads_than_slices(calls, ext, layer):
    """At 3 threads and H=64 a team has two slices of 32 units: the third thread owns none
    and still meets every barrier (on a 2-core machine the team also has more threads than
    processors, where its barrier yields at once); the outputs equal the one-loop path's
    within float32 rounding."""
    if not ext.prefer_slices() and (not ext.packed() or not ext.mkl_packed_api()):
        pytest.skip("the team loop needs MKL's packed products or brgemm slices")
    torch.manual_seed(0)
    m = layer(7, 64, num_layers=2, zoneout=0.25, backend="fused").eval()
    x = torch.randn(9, 1, 7)
    threads, rows = torch.get_num_threads(), ext.team_rows()
    torch.set_num_threads(3)
    try:
        with torch.no_grad():
            before = ext.team_runs()
            team = m(x)
            assert ext.team_runs() == before + 2
            ext.set_team_rows(0)
            serial = m(x)
    finally:
        ext.set_team_rows(rows)
        torch.set_num_threads(threads)
    for a, b in zip(torch.utils._pytree.tree_leaves(team), torch.utils._pytree.tree_leaves(serial)):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-5)
