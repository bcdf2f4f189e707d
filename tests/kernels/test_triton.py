"""The Triton kernels against the reference loop, forward and gradients.

Without a GPU the kernels run under Triton's interpreter (``TRITON_INTERPRET=1``,
set by the fixture below before the kernels are first imported) on CPU tensors
at tiny shapes; with CUDA the same tests run the compiled kernels, and the tests
marked ``gpu`` add larger shapes. The reference is :func:`rnnkit.kernels.loop.scan`
in float64 on the same (rounded) inputs and the same regulariser masks. Every test
that needs Triton skips, with the reason, when it is not installed; the first test
checks that rnnkit imports and refuses clearly without it.
"""
import os
import subprocess
import sys

import pytest
import torch

from rnnkit.cells import (
    GRUCell,
    IndRNNCell,
    LayerNormGRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    MinGRUCell,
    MinLSTMCell,
    QRNNCell,
    SRUCell,
)
from rnnkit.kernels.loop import length_mask, scan
from rnnkit.kernels.triton import triton_available, triton_scan, triton_unsupported
from rnnkit.layers.regularizers import Regularizers

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
#: On CPU the interpreter tests run in a process of their own (test_triton_isolated.py starts
#: it with TRITON_INTERPRET=1 from the start): after other tests in the same process (torch
#: imports triton for inductor), triton's interpreter calls its own tl.* functions compiled.
pytestmark = pytest.mark.skipif(
    not CUDA and os.environ.get("RNNKIT_TRITON_ISOLATED") != "1",
    reason="CPU: run in their own process by tests/kernels/test_triton_isolated.py")
needs_triton = pytest.mark.skipif(not triton_available(),
                                  reason="triton is not installed (pip install 'rnnkit[gpu]')")
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")

I, H = 3, 5
#: relative tolerance (to the largest reference value) per kernel dtype
TOL = {torch.float32: 2e-5, torch.bfloat16: 3e-2, torch.float16: 1.5e-2}
ELEMENTWISE = {  # name -> (input size, hidden size) -> cell
    "indrnn": lambda i, h: IndRNNCell(i, h, recurrent_max=1.5),
    "qrnn_f": lambda i, h: QRNNCell(i, h, pooling="f"),
    "qrnn_fo_w2": lambda i, h: QRNNCell(i, h, pooling="fo", window=2),
    "qrnn_ifo": lambda i, h: QRNNCell(i, h, pooling="ifo"),
    "sru": lambda i, h: SRUCell(i, h),
    "sru_highway": lambda i, h: SRUCell(h, h, rescale=True),
    "mingru": lambda i, h: MinGRUCell(i, h),
    "minlstm": lambda i, h: MinLSTMCell(i, h, mode="sequential"),
}
MATRIX = {
    "lstm": lambda i, h: LSTMCell(i, h),
    "gru": lambda i, h: GRUCell(i, h),
    "ln_lstm": lambda i, h: LayerNormLSTMCell(i, h),
    "ln_gru": lambda i, h: LayerNormGRUCell(i, h),
}
_PROJECT = {"weight_ih", "bias_ih", "ln_ih_weight", "bias"}  # used by cell.project only
LENGTHS = {"full": None, "lengths": [4, 2, 0]}


@pytest.fixture(autouse=True, scope="module")
def _interpreter():
    """Triton's interpreter on a CPU-only machine, for this module's tests only."""
    if CUDA:
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRITON_INTERPRET", "1")
        yield


def _compare(cell, dtype=torch.float32, lengths=None, reg=None, training=True, T=4, B=3,
             device=DEVICE, seed=0):
    """Run the kernel and the float64 loop on the same inputs; assert outputs and gradients."""
    g = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    # std 0.7 at H=5, ~0.7 sqrt(5/H) above: larger recurrent weights make the dynamics chaotic
    # (at H=96, T=64 with std 0.7 even the float32 loop ends 0.04 (LSTM) / 2.0 (GRU) away
    # from float64), and the comparison would measure the chaos, not the kernel
    sd = 0.7 * min(1.0, (5 / cell.hidden_size) ** 0.5)
    p = {k: (sd * rnd(*s)).to(dtype).double() for k, s in cell.param_shapes().items()}
    x = rnd(T, B, cell.input_size)
    with torch.no_grad():
        xp = cell.project(x, p).to(dtype).double()  # the kernel's input, rounded
    state = tuple(rnd(B, s).to(dtype).double() for s in cell.state_sizes)
    gy = rnd(T, B, cell.output_size)
    gs = [rnd(B, s) for s in cell.state_sizes]
    mask = None if lengths is None else length_mask(torch.tensor(lengths), T)
    used = [k for k in p if k not in _PROJECT]

    def run(kernel):
        to = (lambda t: t.to(device, dtype)) if kernel else (lambda t: t.clone())
        pp = {k: to(v).requires_grad_(k in used) for k, v in p.items()}
        xpp = to(xp).requires_grad_()
        st = tuple(to(s).requires_grad_() for s in state)
        torch.manual_seed(seed + 1)  # the same regulariser masks, drawn on CPU in float64
        if kernel:

            kw = {} if reg is None else reg.step_inputs(state, T, training)
            kw = {k: v if not isinstance(v, tuple) else
                  tuple(z.to(device) if isinstance(z, torch.Tensor) else z for z in v)
                  for k, v in kw.items()}
            if kw.get("rec_mask") is not None:
                kw["rec_mask"] = kw["rec_mask"].to(device, dtype)
            m = None if mask is None else mask.to(device)
            y, s = triton_scan(cell, pp, xpp, st, m, **kw)
        else:
            step = None if reg is None else reg.step(cell, state, training)
            y, s = scan(cell, pp, xpp, st, mask, step)
        loss = (y.double().cpu() * gy).sum() + sum((si.double().cpu() * gi).sum()
                                                   for si, gi in zip(s, gs))
        grads = torch.autograd.grad(loss, [xpp, *st, *(pp[k] for k in used)])
        return [y, *s, *grads]

    names = ["output", *(f"h_n[{i}]" for i in range(len(state))), "d xp",
             *(f"d state[{i}]" for i in range(len(state))), *(f"d {k}" for k in used)]
    for name, a, b in zip(names, run(True), run(False)):
        scale = max(1.0, b.abs().max().item())
        err = (a.double().cpu() - b).abs().max().item()
        assert err <= TOL[dtype] * scale, f"{name}: max error {err:.3g} (scale {scale:.3g})"
        if lengths is not None and name == "output":  # padded steps output exact zeros
            assert torch.all(a.cpu()[~mask.expand_as(a.cpu())] == 0)


def test_package_imports_without_triton():
    """rnnkit and its Triton package import without triton, never import it, refuse clearly."""
    code = ("import importlib, sys, rnnkit, rnnkit.kernels.triton as kt\n"
            "from rnnkit.cells import LSTMCell\n"
            "assert 'triton' not in sys.modules, 'import rnnkit imported triton'\n"
            "sys.modules['triton'] = None  # as if not installed\n"
            "importlib.reload(kt)\n"
            "assert not kt.triton_available()\n"
            "print(kt.triton_unsupported(LSTMCell(2, 3)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Triton is not installed" in out.stdout


@needs_triton
def test_unsupported_reasons(monkeypatch):
    x = torch.zeros(2, 2, 3)
    assert "proj_size" in triton_unsupported(LSTMCell(3, 4, proj_size=2), x)
    assert "reset-after" in triton_unsupported(GRUCell(3, 4, reset_after=False), x)
    assert "not " in triton_unsupported(object(), x)
    assert "float64" in triton_unsupported(LSTMCell(3, 4), x.double())
    reg = Regularizers.build(SRUCell(3, 4), zoneout=0.1)
    assert "zoneout" in triton_unsupported(SRUCell(3, 4), x, reg)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert "CUDA" in triton_unsupported(LSTMCell(3, 4), x)
    with pytest.raises(ValueError, match="triton_scan: .*CUDA"):
        triton_scan(LSTMCell(3, 4), {}, torch.zeros(2, 2, 16), (x[0, :, :4], x[0, :, :4]))


@needs_triton
def test_bad_mask_is_refused():
    cell = MinGRUCell(I, H)
    xp = torch.zeros(3, 2, 2 * H, device=DEVICE)
    mask = torch.tensor([[True, False], [False, True], [False, False]]).unsqueeze(-1)
    with pytest.raises(ValueError, match="length mask"):
        triton_scan(cell, {}, xp, (torch.zeros(2, H, device=DEVICE),), mask.to(DEVICE))


@needs_triton
def test_indrnn_by_hand():
    """h_t = relu(xp_t + u h_{t-1}) for H = 1, T = 3, and the gradient of sum(h) by hand."""
    cell = IndRNNCell(1, 1)
    u = torch.tensor([0.5], device=DEVICE, requires_grad=True)
    xp = torch.tensor([[[1.0]], [[-2.0]], [[3.0]]], device=DEVICE, requires_grad=True)
    h0 = torch.tensor([[2.0]], device=DEVICE, requires_grad=True)
    y, (h_n,) = triton_scan(cell, {"weight_hh": u}, xp, (h0,))
    # h1 = relu(1 + 1) = 2, h2 = relu(-2 + 1) = 0, h3 = relu(3 + 0) = 3
    assert y.flatten().tolist() == [2.0, 0.0, 3.0] and h_n.item() == 3.0
    y.sum().backward()
    # dh3 = 1 -> dxp3 = 1; dh2 = 1 + u but relu is off at h2 = 0 -> dxp2 = 0;
    # dh1 = 1 -> dxp1 = 1, dh0 = u
    assert xp.grad.flatten().tolist() == [1.0, 0.0, 1.0]
    assert h0.grad.item() == 0.5 and u.grad.item() == 2.0  # du = h0 * 1 + h1 * 0 + h2 * 1


@needs_triton
@pytest.mark.parametrize("lengths", LENGTHS, ids=list(LENGTHS))
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise(name, lengths):
    _compare(ELEMENTWISE[name](I, H), lengths=LENGTHS[lengths])


@needs_triton
def test_indrnn_recurrent_dropout():
    cell = IndRNNCell(I, H)
    _compare(cell, lengths=[4, 1, 3], reg=Regularizers.build(cell, recurrent_dropout=0.4))


@needs_triton
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name", ["indrnn", "qrnn_ifo", "sru", "mingru", "minlstm"])
def test_elementwise_low_precision(name, dtype):
    _compare(ELEMENTWISE[name](I, H), dtype=dtype, lengths=[4, 3, 1])


@needs_triton
@pytest.mark.parametrize("lengths", LENGTHS, ids=list(LENGTHS))
@pytest.mark.parametrize("name", MATRIX)
def test_matrix(name, lengths):
    _compare(MATRIX[name](I, H), lengths=LENGTHS[lengths])


@needs_triton
@pytest.mark.parametrize("name", MATRIX)
def test_matrix_recurrent_dropout_and_zoneout(name):
    cell = MATRIX[name](I, H)
    z = (0.3, 0.5) if len(cell.state_sizes) == 2 else 0.3
    reg = Regularizers.build(cell, recurrent_dropout=0.3, zoneout=z)
    _compare(cell, lengths=[4, 2, 3], reg=reg, training=True)


@needs_triton
@pytest.mark.parametrize("name", ["lstm", "ln_gru"])
def test_matrix_zoneout_evaluation(name):
    cell = MATRIX[name](I, H)
    _compare(cell, reg=Regularizers.build(cell, zoneout=0.25), training=False)


@needs_triton
def test_layernorm_lstm_without_bias():
    _compare(LayerNormLSTMCell(I, H, bias=False), lengths=[4, 4, 2])


@needs_triton
@pytest.mark.parametrize("name,dtype", [("ln_lstm", torch.bfloat16), ("gru", torch.float16),
                                        ("lstm", torch.bfloat16)])
def test_matrix_low_precision(name, dtype):
    cell = MATRIX[name](I, H)
    reg = Regularizers.build(cell, recurrent_dropout=0.2) if name == "lstm" else None
    _compare(cell, dtype=dtype, lengths=[4, 3, 2], reg=reg)


@needs_triton
@pytest.mark.parametrize("name", ["mingru", "ln_lstm"])
def test_torch_compile_fullgraph(name):
    """The scans are torch.library ops: one graph under torch.compile, same numbers and grads."""
    cell = {**ELEMENTWISE, **MATRIX}[name](I, H)
    torch.manual_seed(0)
    p = {k: torch.randn(s, device=DEVICE).requires_grad_() for k, s in cell.param_shapes().items()}
    mask = length_mask(torch.tensor([4, 2]), 4).to(DEVICE)

    def f(x):
        xp = cell.project(x, p)
        state = tuple(x.new_zeros(2, s) for s in cell.state_sizes)
        y, s = triton_scan(cell, p, xp, state, mask)
        return y.square().sum() + s[0].sum()

    x = torch.randn(4, 2, I, device=DEVICE)
    res = []
    for fn in (f, torch.compile(f, fullgraph=True, backend="aot_eager")):
        xi = x.clone().requires_grad_()
        loss = fn(xi)
        loss.backward()
        res.append((loss.detach(), xi.grad, p["weight_ih"].grad.clone()))
        p["weight_ih"].grad = None
    for a, b in zip(*res):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


_COMPILE_FOR_H100 = """
import inspect, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from rnnkit.kernels.triton import _elementwise as E, _gru, _lstm

F32 = {"HS", "CS", "A", "XH", "RS", "CH", "M", "ZH", "ZC", "DHC", "DC", "DBH", "DGH", "DGC",
       "DBC", "DW"}

def build(fn, ints, floats, const):
    names = list(inspect.signature(fn.fn).parameters)
    sig = {n: "constexpr" if n in const else "i32" if n in ints else "fp32" if n in floats
           else "*i32" if n == "LEN" else "*fp32" if n in F32 else "*bf16" for n in names}
    src = ASTSource(fn=fn, signature=sig,
                    constexprs={(names.index(k),): v for k, v in const.items()})
    try:
        k = triton.compile(src, target=GPUTarget("cuda", 90, 32))
    except Exception as e:
        if "ptxas" in str(e).lower():
            print("SKIP", e)
            sys.exit(0)
        raise
    assert k.asm["cubin"], fn
    print("ok", fn.fn.__name__)

for kind in (0, 3, 4, 6):  # IndRNN (with a recurrent mask), QRNN ifo, SRU, minLSTM
    G, _, save_c = E.KINDS[kind]
    c = dict(KIND=kind, G=G, HAS_M=kind == 0, BLOCK=128)
    build(E._scan_fwd, ("B", "H"), (), dict(c, SAVE_C=save_c))
    build(E._scan_bwd, ("B", "H"), (), c)
c = dict(LN=True, HAS_B=True, HAS_M=True, ZH_MODE=2, BLOCK=256)
for fn in (_lstm.lstm_fwd, _lstm.lstm_bwd, _gru.gru_fwd, _gru.gru_bwd):
    lstm = fn in (_lstm.lstm_fwd, _lstm.lstm_bwd)
    ints = ("t", "ts", "B", "H") if fn in (_lstm.lstm_fwd, _gru.gru_fwd) else ("t", "B", "H")
    build(fn, ints, ("zh_rate", "zc_rate", "eps"), dict(c, ZC_MODE=1) if lstm else c)
"""


@pytest.mark.slow
@needs_triton
def test_kernels_compile_for_h100():
    """The kernels compile to cubins for sm_90 with Triton's bundled ptxas; no GPU needed.

    The interpreter runs the kernels' Python; this checks what only the compiler sees
    (types of loop-carried values, scalar stores, dynamic loop bounds, constexpr
    branches). A subprocess, because this module's kernels are the interpreter's.
    """
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", _COMPILE_FOR_H100], capture_output=True,
                         text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    if out.stdout.startswith("SKIP"):
        pytest.skip(f"Triton cannot compile for CUDA here: {out.stdout[5:200]}")
    assert out.stdout.count("ok ") == 12, out.stdout


@pytest.fixture
def _register():
    """backend="triton" is an entry of the dispatcher's static table (never a skip: a
    missing entry is a failure)."""
    from rnnkit.kernels.dispatch import BACKENDS, backend_names

    assert "triton" in backend_names() and "triton" in [b.name for b in BACKENDS]
    yield


@needs_triton
@pytest.mark.parametrize("name,kw", [
    ("LayerNormLSTM", dict(zoneout=0.2, recurrent_dropout=0.2, weight_drop=0.3)),
    ("GRU", dict(zoneout=0.1, recurrent_dropout=0.3)),
    ("SRU", {}),
])
def test_layer_backend_triton(name, kw, _register):
    """Through the layer (2 layers, bidirectional, lengths): same as the loop under one seed."""
    import rnnkit

    cls = getattr(rnnkit, name)
    layer = cls(I, H, num_layers=2, bidirectional=True, backend="triton", **kw).to(DEVICE)
    # the reference on the same device: the regulariser masks come from that device's generator
    ref = cls(I, H, num_layers=2, bidirectional=True, backend="loop", **kw).to(DEVICE)
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(4, 3, I)
    lengths = torch.tensor([4, 2, 3])
    outs = []
    for m in (layer, ref):
        dev = next(m.parameters()).device
        xi = x.to(dev).requires_grad_()
        torch.manual_seed(3)
        y, h = m(xi, lengths=lengths)
        h = h if isinstance(h, tuple) else (h,)
        (y.square().sum() + sum(s.sum() for s in h)).backward()
        outs.append([y, *h, xi.grad, *(p.grad for p in m.parameters())])
    for i, (a, b) in enumerate(zip(*outs)):
        err = (a - b).abs().max().item()
        assert err <= 2e-5 * max(1.0, b.abs().max().item()), f"tensor {i}: max error {err:.3g}"


@needs_triton
@pytest.mark.parametrize("name,kw", [
    ("LSTM", dict(zoneout=0.2, recurrent_dropout=0.3, weight_drop=0.2)),
    ("GRU", dict(zoneout=0.1, recurrent_dropout=0.3)),
    ("LayerNormLSTM", dict(zoneout=(0.1, 0.2), recurrent_dropout=0.2)),
    ("LayerNormGRU", dict(zoneout=0.1)),
    ("IndRNN", dict(recurrent_dropout=0.3)),
    ("QRNN", dict(window=2)),
    ("SRU", {}),
    ("MinGRU", {}),
    ("MinLSTM", {}),
])
def test_layer_backend_triton_second_order(name, kw, _register):
    """A gradient penalty through the Triton scans (create_graph=True): first- and
    second-order gradients equal the loop's, none missing or zero where the loop's is not."""
    import rnnkit

    cls = getattr(rnnkit, name)
    layer = cls(I, H, bidirectional=True, backend="triton", **kw).to(DEVICE)
    ref = cls(I, H, bidirectional=True, backend="loop", **kw).to(DEVICE)
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(4, 3, I)
    lengths = torch.tensor([4, 2, 3])
    outs = []
    for m in (layer, ref):
        params = list(m.parameters())
        xi = x.to(params[0].device).requires_grad_()
        torch.manual_seed(3)
        y, _ = m(xi, lengths=lengths)
        first = torch.autograd.grad(y.square().sum(), [xi, *params], create_graph=True)
        penalty = sum(g.square().sum() for g in first)
        second = torch.autograd.grad(penalty, [xi, *params], allow_unused=True)
        outs.append([*first, *second])
    for i, (a, b) in enumerate(zip(*outs)):
        if b is None:
            continue
        assert a is not None, f"tensor {i}: no gradient"
        scale = b.abs().max().item()
        if scale > 0:
            assert a.abs().max().item() > 0, f"tensor {i}: zero where the loop's is not"
        err = (a - b).abs().max().item()
        assert err <= 1e-4 * max(1.0, scale), f"tensor {i}: max error {err:.3g}"


@needs_triton
@pytest.mark.parametrize("name", ["GRU", "SRU"])
def test_layer_backend_triton_under_torch_func(name, _register):
    """vmap(grad) per-sample gradients through backend="triton" equal the loop's."""
    from torch.func import functional_call, grad, vmap

    import rnnkit

    cls = getattr(rnnkit, name)
    layer = cls(I, H, backend="triton").to(DEVICE)
    ref = cls(I, H, backend="loop").to(DEVICE)
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(4, 3, I, device=next(layer.parameters()).device)
    got = []
    for m in (layer, ref):
        params = {k: v.detach() for k, v in m.named_parameters()}
        loss = lambda p, xi: functional_call(m, p, (xi.unsqueeze(1),))[0].square().sum()  # noqa: E731
        got.append(vmap(grad(loss), in_dims=(None, 1))(params, x))
    for k in got[1]:
        torch.testing.assert_close(got[0][k], got[1][k], rtol=1e-4, atol=1e-5)


@needs_triton
def test_auto_never_picks_the_interpreter(_register):
    import rnnkit
    from rnnkit.kernels.dispatch import choose_backend

    layer = rnnkit.LayerNormLSTM(I, H)  # auto
    x = torch.zeros(2, 1, I)  # a CPU tensor
    assert choose_backend(layer, x) != "triton"
    explicit = rnnkit.LayerNormLSTM(I, H, backend="triton")
    if CUDA:  # no interpreter here: triton on a CPU tensor is refused, with the reason
        with pytest.raises(ValueError, match="CUDA tensors"):
            choose_backend(explicit, x)
    else:
        assert choose_backend(explicit, x) == "triton"


# ----------------------------------------------------------- GPU (compiled kernels)
@pytest.mark.gpu
@needs_cuda
@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("name", [*ELEMENTWISE, *MATRIX])
def test_gpu_larger_shapes(name, dtype):
    """Compiled kernels at a non-power-of-two H, several hidden blocks, ragged lengths."""
    cell = {**ELEMENTWISE, **MATRIX}[name](8, 96)
    lengths = [64, 17, 1, 0, 40, 64, 5, 33]
    _compare(cell, dtype=dtype, lengths=lengths, T=64, B=8, device="cuda")


@pytest.mark.gpu
@needs_cuda
@needs_triton
def test_gpu_long_elementwise_scan_is_stable():
    """T = 4096 minGRU in bfloat16: the float32 register state keeps the loop's accuracy."""
    cell = MinGRUCell(8, 64)
    _compare(cell, dtype=torch.bfloat16, T=4096, B=2, device="cuda")


@pytest.mark.gpu
@needs_cuda
@needs_triton
@pytest.mark.parametrize("name", ["ln_lstm", "gru"])
def test_gpu_cuda_graph_replay_matches_eager(name, monkeypatch):
    """The recorded step loops (kernels/triton/_graphs.py) give the eager results on new inputs."""
    from rnnkit.kernels.triton import _graphs

    cell = MATRIX[name](8, 64)
    g = torch.Generator().manual_seed(0)
    p = {k: (0.2 * torch.randn(*s, generator=g)).cuda() for k, s in cell.param_shapes().items()}
    T, B = 12, 5
    mask = length_mask(torch.tensor([12, 3, 0, 7, 12]), T).cuda()

    def run(seed):
        gen = torch.Generator().manual_seed(seed)
        G = {"ln_lstm": 4, "gru": 3}[name] * 64
        xp = torch.randn(T, B, G, generator=gen).cuda().requires_grad_()
        state = tuple(torch.randn(B, s, generator=gen).cuda().requires_grad_()
                      for s in cell.state_sizes)
        w = {k: v.clone().requires_grad_() for k, v in p.items()}
        rec = (torch.rand(B, 64, generator=gen) > 0.3).float().cuda() / 0.7
        y, s = triton_scan(cell, w, xp, state, mask, rec_mask=rec)
        (y.square().sum() + sum(si.sum() for si in s)).backward()
        return [y.detach(), *(si.detach() for si in s), xp.grad, *(si.grad for si in state),
                *(v.grad for v in w.values() if v.grad is not None)]

    monkeypatch.setenv("RNNKIT_CUDA_GRAPH_MB", "0")
    eager = [run(seed) for seed in range(3)]
    monkeypatch.setenv("RNNKIT_CUDA_GRAPH_MB", "1024")
    _graphs.clear()
    graphed = [run(seed) for seed in range(3)]  # eager, recorded, replayed
    assert len(_graphs._graphs) == 2  # the forward and the backward scan
    _graphs.clear()
    for a_run, b_run in zip(graphed, eager):
        for a, b in zip(a_run, b_run):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (a - b).abs().max().item()


@pytest.mark.gpu
@needs_cuda
def test_gpu_lstm_weights_flattened_for_cudnn():
    """On CUDA rnnkit.LSTM keeps its weights in one cuDNN buffer (no per-call copy), as torch.nn."""
    import warnings

    import rnnkit

    torch.manual_seed(0)
    built = rnnkit.LSTM(8, 4, proj_size=2, device="cuda")  # flattened at construction too
    assert len({p.untyped_storage().data_ptr() for p in built.parameters()}) == 1
    ours = rnnkit.LSTM(8, 16, num_layers=2, bidirectional=True).cuda()
    ref = torch.nn.LSTM(8, 16, num_layers=2, bidirectional=True).cuda()
    ref.load_state_dict(ours.state_dict())
    storages = {p.untyped_storage().data_ptr() for p in ours.parameters()}
    assert len(storages) == 1
    x = torch.randn(5, 3, 8, device="cuda")
    outs = []
    for m in (ours, ref):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "weights are not part of single contiguous chunk"
            y, (h, c) = m(x)
        (y.square().sum() + h.sum() + c.sum()).backward()
        outs.append([y, h, c, *(p.grad for p in m.parameters())])
    for a, b in zip(*outs):
        assert torch.allclose(a, b, atol=1e-6)
