"""Gradients of every order on every backend: gradcheck and gradgradcheck in float64 for
every cell family x backend that runs it, with lengths and the regularisers; second-order
gradients equal to the loop's and never None or zero where the loop's are not.

Tiny shapes (T=3, B=2, I=2, H=2) keep the grid fast. The Triton kernels are checked under
the interpreter in ``test_triton_isolated.py``.
"""
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.func import functional_call

import rnnkit
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
from rnnkit.kernels.dispatch import choose_backend
from rnnkit.kernels.fused import _csteps, _gemm, _op
from rnnkit.kernels.fused._steps import Steps

T, B, I, H = 3, 2, 2, 2
FAMILIES = {
    "rnn_tanh": (RNNCell, {}),
    "rnn_relu": (RNNCell, {"nonlinearity": "relu"}),
    "lstm": (LSTMCell, {}),
    "lstm_proj": (LSTMCell, {"proj_size": 1}),
    "gru": (GRUCell, {}),
    "gru_cho": (GRUCell, {"reset_after": False}),
    "ln_lstm": (LayerNormLSTMCell, {}),
    "ln_gru": (LayerNormGRUCell, {}),
    "indrnn": (IndRNNCell, {}),
    "qrnn": (QRNNCell, {"window": 2, "pooling": "fo"}),
    "qrnn_ifo": (QRNNCell, {"pooling": "ifo"}),
    "sru": (SRUCell, {}),
    "min_gru": (MinGRUCell, {}),
    "min_lstm": (MinLSTMCell, {"mode": "sequential"}),
}
TORCH_KERNEL = {"rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru"}
RECURRENT_DROPOUT = {"rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru", "gru_cho", "ln_lstm",
                     "ln_gru", "indrnn"}  # cells with a recurrent weight matrix or vector
CONFIGS = {"lengths": {}, "regularised": "regs"}


def _regs(family):
    regs = {"zoneout": 0.3}
    if family in RECURRENT_DROPOUT:  # and DropConnect and max-norm on the recurrent weights
        regs.update(recurrent_dropout=0.4, weight_drop=0.2, max_norm=2.0)
    return regs


def _grid():
    for family in FAMILIES:
        for backend in ("loop", "fused") + (("torch",) if family in TORCH_KERNEL else ()):
            for config in CONFIGS:
                if backend == "torch" and config == "regularised":
                    continue  # torch's kernel cannot run zoneout (the layer refuses it)
                yield family, backend, config


def _layer(family, backend, config, dtype=torch.float64, **extra):
    cell, kwargs = FAMILIES[family]
    regs = _regs(family) if config == "regularised" else {}
    torch.manual_seed(0)
    layer = rnnkit.Recurrent(cell, I, H, backend=backend, **regs, **kwargs, **extra).to(dtype)
    with torch.no_grad():  # away from relu's kink and the saturated gates
        for p in layer.parameters():
            p.mul_(1.5)
    return layer


def _inputs(dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, I, generator=g, dtype=dtype)
    return x, torch.tensor([1, 3])  # unsorted lengths: the fused scans permute the batch


def _fn(layer, names, lengths):
    """(x, *weights) -> (output, *final states), the same random masks at every call."""
    def f(x, *ws):
        torch.manual_seed(7)
        out, h = functional_call(layer, dict(zip(names, ws)), (x,), {"lengths": lengths})
        return (out, *(h if isinstance(h, tuple) else (h,)))

    return f


def _second_order(layer, x, lengths):
    """Gradients of a gradient penalty w.r.t. the input and every weight (None if unused)."""
    names = [n for n, _ in layer.named_parameters()]
    ws = [p.detach().clone().requires_grad_() for _, p in layer.named_parameters()]
    x = x.clone().requires_grad_()
    outs = _fn(layer, names, lengths)(x, *ws)
    loss = sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum()
               for o in outs)
    first = torch.autograd.grad(loss.pow(2), [x, *ws], create_graph=True)
    penalty = sum(g.pow(2).sum() for g in first)
    second = torch.autograd.grad(penalty, [x, *ws], allow_unused=True)
    return [g.detach() for g in first], list(second), names


@pytest.mark.parametrize("family,backend,config", list(_grid()))
def test_gradcheck_and_gradgradcheck(family, backend, config):
    layer = _layer(family, backend, config)
    layer.train()
    x, lengths = _inputs()
    names = [n for n, _ in layer.named_parameters()]
    ws = [p.detach().clone().requires_grad_() for _, p in layer.named_parameters()]
    args = (x.requires_grad_(), *ws)
    f = _fn(layer, names, lengths)
    assert gradcheck(f, args, atol=1e-6)
    assert gradgradcheck(f, args, atol=1e-5)


@pytest.mark.parametrize("family,backend,config",
                         [c for c in _grid() if c[1] != "loop"])
def test_second_order_equals_the_loops(family, backend, config):
    x, lengths = _inputs()
    first_ref, second_ref, names = _second_order(_layer(family, "loop", config), x, lengths)
    first, second, _ = _second_order(_layer(family, backend, config), x, lengths)
    for n, a, b in zip(["input", *names], first, first_ref):
        torch.testing.assert_close(a, b, msg=f"first-order gradient of {n}")
    for n, a, b in zip(["input", *names], second, second_ref):
        if b is None:
            continue
        assert a is not None, f"{backend}: no second-order gradient for {n}"
        if b.abs().max() > 0:
            assert a.abs().max() > 0, f"{backend}: zero second-order gradient for {n}"
        torch.testing.assert_close(a, b, msg=f"second-order gradient of {n}")


@pytest.mark.parametrize("family", ["lstm", "gru", "ln_lstm", "ln_gru"])
def test_second_order_with_the_compiled_steps(family):
    """float32 runs the compiled C steps forward and backward; create_graph still works."""
    if _csteps.lib() is None:
        pytest.skip("no C compiler: the compiled steps are not built here")
    x, lengths = _inputs(torch.float32)
    ref = _second_order(_layer(family, "loop", "regularised", torch.float32), x, lengths)
    got = _second_order(_layer(family, "fused", "regularised", torch.float32), x, lengths)
    for a, b in zip(got[0] + got[1], ref[0] + ref[1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("family", ["lstm", "gru", "rnn_tanh"])
def test_second_order_through_torchs_kernel_with_dropconnect(family):
    """DropConnect alone runs on torch's kernel with the dropped weights (CPU), as auto
    picks it without lengths."""
    x, lengths = _inputs()
    ref = _second_order(_layer(family, "loop", "lengths", weight_drop=0.3), x, lengths)
    if family != "gru":  # auto trains a GRU on the fused scan
        assert choose_backend(_layer(family, "auto", "lengths", weight_drop=0.3), x) == "torch"
    got = _second_order(_layer(family, "torch", "lengths", weight_drop=0.3), x, lengths)
    for n, a, b in zip(["input", *ref[2]], got[0] + got[1], ref[0] + ref[1]):
        torch.testing.assert_close(a, b, msg=f"gradient of {n}")


@pytest.mark.parametrize("backend", ["loop", "fused", "torch"])
def test_bidirectional_stacked_second_order(backend):
    """Two layers, both directions, lengths: every weight gets the loop's second-order gradient."""
    x, lengths = _inputs()
    kw = dict(num_layers=2, bidirectional=True)
    ref = _second_order(_layer("gru", "loop", "lengths", **kw), x, lengths)
    got = _second_order(_layer("gru", backend, "lengths", **kw), x, lengths)
    for n, a, b in zip(["input", *ref[2]], got[1], ref[1]):
        torch.testing.assert_close(a, b, msg=f"second-order gradient of {n}")


def test_input_projection_differentiates_twice():
    """The fused input GEMM (oneDNN forward and backward) under gradgradcheck."""
    g = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(s, generator=g, dtype=torch.float64, requires_grad=True)
               for s in ((3, 2, 4), (5, 4), (5,)))
    assert gradgradcheck(_gemm.Linear.apply, (x, w, b))


def test_op_without_reference_refuses_create_graph():
    """Called directly with no reference, a create_graph backward raises; it never returns
    None or zeros."""
    g = torch.Generator().manual_seed(0)
    xp = torch.randn(T, B, H, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.rand(H, generator=g, dtype=torch.float64, requires_grad=True)
    h0 = torch.zeros(B, H, dtype=torch.float64)
    ys, _ = _op.run("indrnn", [xp, w, h0, None], Steps(), [0.0])
    (gw,) = torch.autograd.grad(ys.sum(), [w])  # first order: the op's own backward
    assert gw.abs().sum() > 0
    ys, _ = _op.run("indrnn", [xp, w, h0, None], Steps(), [0.0])
    with pytest.raises(RuntimeError, match="create_graph=True backward needs"):
        torch.autograd.grad(ys.sum(), [w], create_graph=True)


# ------------------------------------------------------------------ torch.func
PRESETS = {"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU}


def _per_sample(layer, x):
    """Per-sample gradients of every weight: ``vmap(grad)`` and a loop over the samples."""
    from torch.func import grad, vmap

    params = {k: v.detach() for k, v in layer.named_parameters()}

    def loss(p, xi):
        out, _ = functional_call(layer, p, (xi.unsqueeze(1),))  # (T, 1, D*H)
        return (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).pow(2).sum()

    got = vmap(grad(loss), in_dims=(None, 1))(params, x)
    return got, [grad(loss)(params, x[:, b]) for b in range(x.shape[1])]


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("backend", ["auto", "torch", "fused", "loop"])
def test_vmap_grad_per_sample_gradients_equal_a_loop_over_samples(preset, backend):
    torch.manual_seed(0)
    layer = PRESETS[preset](I, H, num_layers=2, bidirectional=True, backend=backend).double()
    x = torch.randn(T, 4, I, dtype=torch.float64)
    got, want = _per_sample(layer, x)
    for b, w in enumerate(want):
        for k in w:
            torch.testing.assert_close(got[k][b], w[k], msg=f"{k}, sample {b}")
    # and against plain autograd on one sample
    y = layer(x[:, :1])[0]
    loss = (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).pow(2).sum()
    g = torch.autograd.grad(loss, list(layer.parameters()))
    for (k, _), gk in zip(layer.named_parameters(), g):
        torch.testing.assert_close(got[k][0], gk)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_vmap_grad_over_every_fused_cell_with_lengths(family):
    """The zoo cells on the fused backend: vmap(grad) over a stack of batches that share
    their lengths (vmap cannot map the lengths themselves: they choose the control flow),
    with the regularisers in evaluation (zoneout's expectation), equal to a loop over the
    stack and to the loop backend."""
    from torch.func import grad, vmap

    lengths = torch.tensor([3, 1])
    xs = torch.randn(3, T, B, I, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def run(backend):
        layer = _layer(family, backend, "regularised").eval()
        params = {k: v.detach() for k, v in layer.named_parameters()}

        def loss(p, x):
            out, _ = functional_call(layer, p, (x,), {"lengths": lengths})
            return (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
                    ).pow(2).sum()

        return vmap(grad(loss), in_dims=(None, 0))(params, xs), [grad(loss)(params, x) for x in xs]

    got, want = run("fused")
    ref, _ = run("loop")
    for n, w in enumerate(want):
        for k in w:
            torch.testing.assert_close(got[k][n], w[k], msg=f"{k}, batch {n}")
            torch.testing.assert_close(got[k][n], ref[k][n], msg=f"{k} vs the loop")


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("backend", ["auto", "fused"])
def test_jacrev_and_hessian_through_torch_func(preset, backend):
    from torch.func import hessian, jacrev

    torch.manual_seed(0)
    layer = PRESETS[preset](I, H, backend=backend).double()
    params = {k: v.detach() for k, v in layer.named_parameters()}
    x = torch.randn(T, 2, I, dtype=torch.float64)
    f = lambda xi: functional_call(layer, params, (xi,))[0]  # noqa: E731
    torch.testing.assert_close(jacrev(f)(x), torch.autograd.functional.jacobian(f, x))
    s = lambda xi: f(xi).pow(2).sum()  # noqa: E731
    torch.testing.assert_close(hessian(s)(x), torch.autograd.functional.hessian(s, x))
