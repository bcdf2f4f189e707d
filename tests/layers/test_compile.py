"""torch.compile, torch.export and TorchScript over rnnkit.RNN/LSTM/GRU: what works, pinned.

Each test asserts the behaviour found on torch 2.13 (CPU), so that the statement in
docs/howto/backends.md stays true: where something works, the compiled/traced/exported layer must equal eager
(outputs, final states and gradients); where it fails, the test asserts the failure, and
starts failing, as a reminder to update that page, the day it is fixed.

Known failures (``KNOWN``):

- LSTM with ``backend="auto"`` trained under an AOTAutograd backend (aot_eager,
  inductor) on CPU, when the input itself needs no gradient (data fed straight in): torch
  bug pytorch/pytorch#158007 (oneDNN's ``mkldnn_rnn_layer`` saves a None workspace).
  ``torch.nn.LSTM`` dodges it only because Dynamo refuses to trace torch.nn RNN modules
  (``allow_rnn=False``) and runs them eagerly. Inference (no grad) compiles; so does
  training when the input requires grad (e.g. it comes from an embedding), or with
  ``torch.backends.mkldnn.flags(enabled=False)``.

Inductor compiles take 10-50 s each on 2 cores: those tests are marked slow and run only
with ``-m slow`` or ``RNNKIT_SLOW=1``.
"""
import os
import warnings

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

import rnnkit
from rnnkit.testing import as_tuple

T, B, I, H = 6, 3, 4, 5
LENGTHS = torch.tensor([6, 2, 4])
CELLS = {"LSTM": rnnkit.LSTM, "GRU": rnnkit.GRU}
#: (compile backend, cell, rnnkit backend, with lengths) -> (exception, reason)
KNOWN: dict = {}


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Fresh caches: a new module per test would otherwise hit Dynamo's recompile limit
    and silently fall back to eager, which would make every comparison vacuous."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _slow_opt_in(request):
    if "slow" not in (request.config.getoption("-m") or "") and not os.environ.get("RNNKIT_SLOW"):
        pytest.skip("inductor compiles take 10-50 s each on 2 cores; run with -m slow")


def _layer(cell, backend, **kw):
    torch.manual_seed(0)
    return CELLS[cell](I, H, backend=backend, **kw)


def _step(module, x, lengths):
    """Outputs, final states and the gradients of a loss over both, for every parameter
    (and x, when it requires grad)."""
    out, h_n = module(x, lengths=lengths)
    loss = out.square().sum() + sum(h.square().sum() for h in as_tuple(h_n))
    grads = torch.autograd.grad(loss, [x] * x.requires_grad + [*module.parameters()])
    return [out, *as_tuple(h_n), *grads]


def _assert_all_close(got, want, atol=1e-6):
    """float32: eager and compiled GEMMs sum in different orders (eager takes oneDNN's
    transposed weight gradient), so gradients of magnitude ~10 differ by a few ulps."""
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        torch.testing.assert_close(a, b, atol=atol, rtol=1e-6,
                                   msg=lambda m, i=i: f"tensor {i}: {m}")


def _inputs(seed=1, requires_grad=True):
    torch.manual_seed(seed)
    return torch.randn(T, B, I, requires_grad=requires_grad)


# ------------------------------------------------------------------ torch.compile
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("backend", ["auto", "loop"])
@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("compiler", ["eager", "aot_eager"])
def test_compile_matches_eager(compiler, cell, backend, with_lengths):
    m, x = _layer(cell, backend), _inputs()
    lengths = LENGTHS if with_lengths else None
    counter = CompileCounterWithBackend(compiler)
    compiled = torch.compile(m, backend=counter)
    known = KNOWN.get((compiler, cell, backend, with_lengths))
    if known:
        with pytest.raises(known[0]):
            _step(compiled, x, lengths)
        return
    got = _step(compiled, x, lengths)
    assert counter.frame_count >= 1 and counter.op_count > 0  # really compiled, not skipped
    _assert_all_close(got, _step(m, x, lengths))


@pytest.mark.parametrize("backend", ["auto", "loop"])
def test_compile_stacked_bidirectional(backend):
    m, x = _layer("GRU", backend, num_layers=2, bidirectional=True), _inputs()
    compiled = torch.compile(m, backend="aot_eager", fullgraph=True)
    _assert_all_close(_step(compiled, x, None), _step(m, x, None))


@pytest.mark.parametrize("backend", ["auto", "loop"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_fullgraph_without_lengths(cell, backend):
    """One graph, no break: rnnkit calls torch's kernel directly (torch.nn's modules are
    not traced at all: Dynamo runs them eagerly)."""
    m, x = _layer(cell, backend), _inputs()
    explained = torch._dynamo.explain(m)(x)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)
    torch._dynamo.reset()
    compiled = torch.compile(m, backend="eager", fullgraph=True)
    _assert_all_close(_step(compiled, x, None), _step(m, x, None))


@pytest.mark.parametrize("cell", list(CELLS))
def test_lengths_break_the_graph(cell):
    """Checking ``lengths`` (all in [1, T]? all equal to T?) needs their values: graph breaks,
    so ``fullgraph=True`` refuses them; without fullgraph the loop backend still compiles."""
    m, x = _layer(cell, "loop"), _inputs()
    explained = torch._dynamo.explain(m)(x, lengths=LENGTHS)
    assert explained.graph_break_count >= 1
    torch._dynamo.reset()
    with pytest.raises(torch._dynamo.exc.TorchDynamoException, match="data-dependent"):
        torch.compile(m, backend="eager", fullgraph=True)(x, lengths=LENGTHS)


def test_torch_nn_lstm_is_not_traced():
    """The contrast behind the LSTM/aot_eager failure: Dynamo skips torch.nn.LSTM entirely."""
    explained = torch._dynamo.explain(torch.nn.LSTM(I, H))(_inputs())
    assert explained.graph_count == 0


def test_native_lstm_data_input_aot():
    """pytorch/pytorch#158007: training fails when the input needs no grad; inference and
    oneDNN switched off both work."""
    m, x = _layer("LSTM", "auto"), _inputs(requires_grad=False)
    with pytest.raises(AssertionError, match="tensors_saved_with_vc_check"):
        _step(torch.compile(m, backend="aot_eager"), x, None)
    torch._dynamo.reset()
    with torch.no_grad():
        want = m(x)[0]
        got = torch.compile(m, backend="aot_eager", fullgraph=True)(x)[0]
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    torch._dynamo.reset()
    with torch.backends.mkldnn.flags(enabled=False):  # the documented workaround
        compiled = torch.compile(m, backend="aot_eager", fullgraph=True)
        _assert_all_close(_step(compiled, x, None), _step(m, x, None))


@pytest.mark.slow
@pytest.mark.parametrize("cell,backend", [("LSTM", "loop"), ("GRU", "auto"), ("LSTM", "auto")])
def test_inductor(request, cell, backend):
    _slow_opt_in(request)
    m, x = _layer(cell, backend), _inputs()
    compiled = torch.compile(m, backend="inductor")
    _assert_all_close(_step(compiled, x, None), _step(m, x, None), atol=1e-5)
    if (cell, backend) == ("LSTM", "auto"):  # pytorch/pytorch#158007 again, with data input
        torch._dynamo.reset()
        with pytest.raises(TypeError, match="mkldnn_rnn_layer"):
            _step(torch.compile(m, backend="inductor"), x.detach(), None)


# ------------------------------------------------------------------ torch.export
@pytest.mark.parametrize("backend", ["auto", "loop"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_export(cell, backend):
    m = _layer(cell, backend)
    x = torch.randn(T, B, I)
    program = torch.export.export(m, (x,))
    for got, want in zip(as_tuple(program.module()(x)), as_tuple(m(x))):
        for a, b in zip(as_tuple(got), as_tuple(want)):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


# ------------------------------------------------------------------ TorchScript
PRESETS = {"RNN": rnnkit.RNN, **CELLS}


def _trace(module, *args):
    with warnings.catch_warnings():  # TracerWarnings on the input checks; deprecation in 2.13
        warnings.simplefilter("ignore")
        return torch.jit.trace(module, args)


class _WithLengths(torch.nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x, lengths):
        return self.layer(x, lengths=lengths)[0]


@pytest.mark.parametrize("backend", ["auto", "loop"])
@pytest.mark.parametrize("preset", list(PRESETS))
def test_jit_trace(preset, backend):
    torch.manual_seed(0)
    m = PRESETS[preset](I, H, backend=backend)
    x = torch.randn(T, B, I)
    traced = _trace(m, x)
    for a, b in zip(as_tuple(traced(x)), as_tuple(m(x))):
        for p, q in zip(as_tuple(a), as_tuple(b)):
            torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
    longer, shorter = torch.randn(T + 3, B + 2, I), torch.randn(T - 2, B, I)
    if backend == "auto":  # torch's kernel is one traced op: any T and B
        for other in (longer, shorter):
            torch.testing.assert_close(traced(other)[0], m(other)[0], atol=1e-6, rtol=0)
    else:  # the Python time loop is unrolled T times: other batch sizes work, other T not
        wider = torch.randn(T, B + 2, I)
        torch.testing.assert_close(traced(wider)[0], m(wider)[0], atol=1e-6, rtol=0)
        for other in (longer, shorter):  # the loop unbinds T steps: another T is an error
            with pytest.raises(RuntimeError, match=f"Expected {T} elements"):  # (indexing
                traced(other)  # xp[t] used to truncate a longer input silently)


@pytest.mark.parametrize("backend", ["auto", "loop"])
def test_jit_trace_with_lengths(backend):
    """Lengths are traced as data, but only if the example lengths are not all T:
    with all-full example lengths the trace takes the no-lengths path and ignores them."""
    torch.manual_seed(0)
    w = _WithLengths(rnnkit.LSTM(I, H, backend=backend))
    x, short = torch.randn(T, B, I), torch.tensor([3, 6, 1])
    traced = _trace(w, x, LENGTHS)
    torch.testing.assert_close(traced(x, short), w(x, short), atol=1e-6, rtol=0)
    traced_full = _trace(w, x, torch.tensor([T, T, T]))
    assert not torch.allclose(traced_full(x, short), w(x, short), atol=1e-3)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_jit_script_fails(preset):
    """The generic Python layer (cells as objects, dicts of weights, comprehensions) is
    outside TorchScript's subset."""
    with pytest.raises(torch.jit.frontend.NotSupportedError):
        torch.jit.script(PRESETS[preset](I, H))


# ------------------------------------------------------- the fused scans as custom ops
ZOO = {"IndRNN": rnnkit.IndRNN, "QRNN": rnnkit.QRNN, "SRU": rnnkit.SRU, "MinGRU": rnnkit.MinGRU,
       "MinLSTM": rnnkit.MinLSTM, "LayerNormLSTM": rnnkit.LayerNormLSTM,
       "LayerNormGRU": rnnkit.LayerNormGRU, "LSTM": rnnkit.LSTM, "GRU": rnnkit.GRU,
       "RNN": rnnkit.RNN}


class _OpCounter:
    """A torch.compile backend that runs the graph eagerly (or through aot_eager) and counts
    the rnnkit::fused_scan nodes Dynamo put in it."""

    def __init__(self, inner="eager"):
        self.inner, self.graphs, self.scans = inner, 0, 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        self.scans += sum(1 for n in gm.graph.nodes
                          if n.op == "call_function" and "fused_scan" in str(n.target))
        if self.inner == "eager":
            return gm.forward
        from torch._dynamo.backends.registry import lookup_backend

        return lookup_backend(self.inner)(gm, example_inputs)


def _zoo_step(m, x, seed=3):
    torch.manual_seed(seed)  # same zoneout masks in both runs
    return _step(m, x, None)


@pytest.mark.parametrize("name", list(ZOO))
def test_fullgraph_fused_scan_is_one_op(name):
    """Every cell on the fused backend, with zoneout in training: one graph, no break, the scan
    a single rnnkit::fused_scan node; equal to eager, outputs and gradients."""
    torch.manual_seed(0)
    m = ZOO[name](I, H, backend="fused", zoneout=0.1)
    x = _inputs()
    counter = _OpCounter()
    compiled = torch.compile(m, backend=counter, fullgraph=True)
    _assert_all_close(_zoo_step(compiled, x), _zoo_step(m, x))
    assert counter.graphs == 1 and counter.scans == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["SRU", "LayerNormLSTM", "LSTM"])
def test_fullgraph_fused_backward_through_aot(request, name):
    """Under AOTAutograd the backward is traced too: the registered backward op with its fake
    kernel; 2 layers, bidirectional, recurrent dropout where the cell has weight_hh
    (15-20 s each on 2 cores: slow)."""
    _slow_opt_in(request)
    torch.manual_seed(0)
    kw = {} if name == "SRU" else dict(recurrent_dropout=0.2)
    m = ZOO[name](I, H, num_layers=2, bidirectional=True, backend="auto", zoneout=0.1, **kw)
    x = _inputs()
    counter = _OpCounter("aot_eager")
    compiled = torch.compile(m, backend=counter, fullgraph=True)
    _assert_all_close(_zoo_step(compiled, x), _zoo_step(m, x))
    assert counter.graphs == 1 and counter.scans == 4


@pytest.mark.parametrize("name", ["MinGRU", "LayerNormGRU"])
def test_export_fused(name):
    torch.manual_seed(0)
    m = ZOO[name](I, H).eval()
    x = torch.randn(T, B, I)
    program = torch.export.export(m, (x,))
    assert any("fused_scan" in str(n.target) for n in program.graph.nodes)
    for a, b in zip(as_tuple(program.module()(x)), as_tuple(m(x))):
        for p, q in zip(as_tuple(a), as_tuple(b)):
            torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
