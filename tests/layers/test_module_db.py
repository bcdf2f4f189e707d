"""rnnkit's presets through torch's own ``module_db`` entries for RNN, LSTM and GRU.

``torch.testing._internal.common_modules`` is what torch's ``test/test_modules.py``
runs every module through. For each sample input of the RNN/LSTM/GRU entries we build
torch.nn's module and rnnkit's preset with the same constructor arguments and weights,
and compare outputs, final states and the gradients of the inputs and of every
parameter, in training and evaluation, float32 and float64, on every backend. The
entries' error inputs must raise the class torch raises (or a subclass) with a message
that torch's own pattern matches. With a CUDA device the same comparisons run there
against cuDNN (tests marked ``gpu``; TF32 off so that float32 is float32), Triton among
the backends where it is installed.
"""
import os
import re

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence

import rnnkit


def _import_module_db():
    """Import torch's module_db without its global side effects on the rest of the session.

    ``common_utils`` freezes the ``torch.backends`` flags (any later plain assignment
    such as ``torch.backends.cudnn.benchmark = False``, which rnnkit's Trainer makes,
    would raise) and sets an environment variable; both are put back.
    """
    frozen, env = torch.backends.flags_frozen(), dict(os.environ)
    try:
        from torch.testing._internal import common_modules
    finally:
        if not frozen:  # the flag lives in the globals of torch.backends' own functions
            torch.backends.flags_frozen.__globals__["__allow_nonbracketed_mutation_flag"] = True
        for k in set(os.environ) - set(env):
            del os.environ[k]
    return common_modules


try:
    cm = _import_module_db()
except Exception as e:  # noqa: BLE001 - any import failure means: not available here
    pytest.skip(f"torch.testing._internal.common_modules cannot be imported ({type(e).__name__}: "
                f"{e}); install the test extra (it needs expecttest)", allow_module_level=True)

PRESETS = {torch.nn.RNN: rnnkit.RNN, torch.nn.LSTM: rnnkit.LSTM, torch.nn.GRU: rnnkit.GRU}
INFOS = {info.module_cls.__name__: info for info in cm.module_db if info.module_cls in PRESETS}
BACKENDS = ("auto", "torch", "fused", "loop")
CUDA_BACKENDS = BACKENDS + ("triton",)
TOL = {torch.float32: dict(atol=1e-5, rtol=1e-4), torch.float64: dict(atol=1e-10, rtol=1e-8)}
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, needs_cuda])]


def test_module_db_has_the_three_entries():
    assert sorted(INFOS) == ["GRU", "LSTM", "RNN"]


def test_import_left_the_backend_flags_settable():
    with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled):
        pass
    torch.backends.cudnn.benchmark = torch.backends.cudnn.benchmark  # raises if still frozen


def _leaf(x):
    """A fresh leaf copy of every tensor in ``x`` (tensors, tuples, PackedSequence)."""
    if isinstance(x, PackedSequence):
        return PackedSequence(_leaf(x.data), x.batch_sizes, x.sorted_indices, x.unsorted_indices)
    if isinstance(x, torch.Tensor):
        return x.detach().clone().requires_grad_(x.requires_grad)
    if isinstance(x, (tuple, list)):
        return type(x)(_leaf(v) for v in x)
    return x


def _tensors(x) -> list[torch.Tensor]:
    """Every tensor in ``x``, in order (a PackedSequence contributes its data)."""
    if isinstance(x, PackedSequence):
        return [x.data]
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for v in x for t in _tensors(v)]
    return []


def _run(module, args, kwargs, cotangents=None):
    """Forward and backward; returns (output tensors, input grads, parameter grads, cotangents)."""
    args, kwargs = _leaf(args), _leaf(kwargs)
    outs = _tensors(module(*args, **kwargs))
    if cotangents is None:
        cotangents = [torch.randn_like(o) for o in outs]
    leaves = [t for t in _tensors(args) + _tensors(list(kwargs.values())) if t.requires_grad]
    module.zero_grad(set_to_none=True)
    sum((o * g).sum() for o, g in zip(outs, cotangents)).backward()
    grads = {n: p.grad for n, p in module.named_parameters()}
    return outs, [t.grad for t in leaves], grads, cotangents


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("backend", CUDA_BACKENDS)
@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("device", DEVICES)
def test_samples_match_torch_nn(device, name, backend, training, dtype):
    if backend == "triton" and device == "cpu":
        pytest.skip("on CPU the Triton kernels run only under the interpreter "
                    "(tests/kernels/test_triton.py)")
    info = INFOS[name]
    samples = info.module_inputs_func(info, device=device, dtype=dtype, requires_grad=True,
                                      training=training)
    assert samples, "module_db gave no samples"
    ran = 0
    for i, sample in enumerate(samples):
        c, f = sample.constructor_input, sample.forward_input
        torch.manual_seed(i)
        ref = info.module_cls(*c.args, **c.kwargs).to(device, dtype).train(training)
        ours = PRESETS[info.module_cls](*c.args, **c.kwargs, backend=backend).to(device, dtype)
        ours.train(training).load_state_dict(ref.state_dict())
        case = f"sample {i}: {name}({c.kwargs}) on {[tuple(t.shape) for t in _tensors(f.args)]}"
        try:
            with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
                o_ours, gi_ours, gp_ours, cot = _run(ours, f.args, f.kwargs)
        except ValueError as e:
            if "cannot run this layer" in str(e):  # this backend refuses the configuration
                continue
            raise
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            o_ref, gi_ref, gp_ref, _ = _run(ref, f.args, f.kwargs, cot)
        ran += 1
        assert len(o_ours) == len(o_ref), case
        for k, (a, b) in enumerate(zip(o_ours, o_ref)):
            torch.testing.assert_close(a, b, **TOL[dtype], msg=lambda m: f"{case}: output {k}: {m}")
        for k, (a, b) in enumerate(zip(gi_ours, gi_ref)):
            torch.testing.assert_close(a, b, **TOL[dtype], msg=lambda m: f"{case}: input grad {k}: {m}")
        assert list(gp_ours) == list(gp_ref), case
        for n in gp_ref:
            torch.testing.assert_close(gp_ours[n], gp_ref[n], **TOL[dtype],
                                       msg=lambda m: f"{case}: grad of {n}: {m}")
    if not ran and backend == "triton":  # float64, or RNN: not a Triton configuration
        pytest.skip(f"the Triton backend runs no {name} sample in {dtype}")
    assert ran, f"backend={backend!r} refused every sample"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_error_inputs_raise_torch_class(name, backend):
    info = INFOS[name]
    errors = info.module_error_inputs_func(info, device="cpu", dtype=torch.float32,
                                           requires_grad=False, training=True)
    assert errors
    for e in errors:
        c, f = e.module_error_input.constructor_input, e.module_error_input.forward_input
        for cls, extra in ((info.module_cls, {}), (PRESETS[info.module_cls], {"backend": backend})):
            with pytest.raises(e.error_type) as caught:
                m = cls(*c.args, **c.kwargs, **extra)
                if e.error_on == cm.ModuleErrorEnum.FORWARD_ERROR:
                    m(*f.args, **f.kwargs)
            assert re.search(e.error_regex, str(caught.value)), \
                f"{cls.__module__}.{name}{c.args}{c.kwargs}: {caught.value!s} !~ {e.error_regex}"


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_cuda_weights_flattened_as_torch_nn(name):
    """On CUDA the presets keep their weights in one cuDNN buffer, as torch.nn's do: no
    "not part of single contiguous chunk" warning, after .cuda(), load_state_dict and
    flatten_parameters, and the outputs equal torch.nn's cuDNN ones."""
    import warnings

    cls = getattr(torch.nn, name)
    ref = cls(5, 7, num_layers=2, bidirectional=True).cuda()
    ours = PRESETS[cls](5, 7, num_layers=2, bidirectional=True).cuda()
    ours.load_state_dict(ref.state_dict())
    ours.flatten_parameters()
    x = torch.randn(6, 3, 5, device="cuda")
    with warnings.catch_warnings(record=True) as caught, \
            torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        warnings.simplefilter("always")
        a, b = ours(x)[0], ref(x)[0]
    assert not [w for w in caught if "contiguous chunk" in str(w.message)], \
        [str(w.message) for w in caught]
    torch.testing.assert_close(a, b, **TOL[torch.float32])
    assert len({p.untyped_storage().data_ptr() for p in ours.parameters()}) == 1
