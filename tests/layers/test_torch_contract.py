"""The torch.nn contract of rnnkit.RNN/LSTM/GRU, checked against torch.nn itself.

What torch's own RNN tests check, on every backend: argument validation (classes and
words), input errors, unbatched input, an empty batch, dropout between layers and
changed at runtime, weight norm and pruning on recurrent weights, the flat-weight
attributes, saving, copying and pickling, factory arguments (meta included),
non-contiguous inputs and repeated backward. Every check compares with torch.nn.
"""
import copy
import io
import pickle
import warnings

import numpy as np
import pytest
import torch
import torch.nn.utils.prune as prune
from torch import nn

import rnnkit
from rnnkit.testing import as_tuple

BACKENDS = ("auto", "torch", "fused", "loop")
CONFIGS = {  # name -> (preset, constructor kwargs)
    "rnn_tanh": ("RNN", {}),
    "rnn_relu": ("RNN", dict(nonlinearity="relu")),
    "lstm": ("LSTM", {}),
    "lstm_proj": ("LSTM", dict(proj_size=2)),
    "gru": ("GRU", {}),
}
I, H = 3, 4


def _pair(name, backend="auto", num_layers=2, seed=0, **kw):
    """torch.nn's module and rnnkit's with the same arguments and weights."""
    torch.manual_seed(seed)
    ref = getattr(nn, name)(I, H, num_layers, **kw)
    ours = getattr(rnnkit, name)(I, H, num_layers, backend=backend, **kw)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _state_sizes(name, kw):
    return [kw.get("proj_size") or H] + ([H] if name == "LSTM" else [])


def _pack(hx):
    return None if hx is None else (tuple(hx) if len(hx) == 2 else hx[0])


def _assert_same_run(ref, ours, x, hx=None, tol=None, **fwd):
    """Same outputs, final states and gradients (input, hx, every parameter)."""
    tol = tol or {}
    res = []
    for m in (ref, ours):
        xs = x.detach().clone().requires_grad_()
        hs = None if hx is None else [h.detach().clone().requires_grad_() for h in hx]
        m.zero_grad(set_to_none=True)
        out, h_n = m(xs, _pack(hs), **fwd)
        res.append((out, as_tuple(h_n), xs, hs, m))
    (o1, h1, x1, hs1, _), (o2, h2, x2, hs2, _) = res
    torch.testing.assert_close(o2, o1, **tol)
    assert len(h1) == len(h2)
    for a, b in zip(h2, h1):
        torch.testing.assert_close(a, b, **tol)
    g = [torch.randn_like(o1)] + [torch.randn_like(h) for h in h1]
    for out, h_n, *_ in res:
        ((out * g[0]).sum() + sum((h * gh).sum() for h, gh in zip(h_n, g[1:]))).backward()
    torch.testing.assert_close(x2.grad, x1.grad, **tol)
    for a, b in zip(hs2 or [], hs1 or []):
        torch.testing.assert_close(a.grad, b.grad, **tol)
    grads_ref = {n: p.grad for n, p in ref.named_parameters()}
    grads_ours = {n: p.grad for n, p in ours.named_parameters()}
    assert list(grads_ours) == list(grads_ref)
    for n in grads_ref:
        torch.testing.assert_close(grads_ours[n], grads_ref[n], **tol, msg=lambda m: f"{n}: {m}")


# ------------------------------------------------------------ constructor arguments

CTOR_CASES = [  # (preset, args, kwargs, phrase rnnkit's message must hold besides torch's class)
    ("LSTM", (3, 5), dict(batch_first="False"), "batch_first should be of type bool, got: str"),
    ("LSTM", (3, 5), dict(batch_first=1), "batch_first should be of type bool, got: int"),
    ("GRU", (3, 5), dict(bias=0), "bias should be of type bool, got: int"),
    ("RNN", (3, 5), dict(bias="True"), "bias should be of type bool, got: str"),
    ("GRU", (3.0, 5), {}, "input_size should be of type int, got: float"),
    ("GRU", ("3", 5), {}, "input_size should be of type int, got: str"),
    ("LSTM", (3, 5.0), {}, "hidden_size should be of type int, got: float"),
    ("GRU", (3, 5, 2.0), {}, "num_layers should be of type int, got: float"),
    ("GRU", (3, 5, "2"), {}, "num_layers should be of type int, got: str"),
    ("GRU", (0, 5), {}, "input_size must be greater than zero"),
    ("RNN", (3, 0), {}, "hidden_size must be greater than zero"),
    ("LSTM", (3, -2), {}, "hidden_size must be greater than zero"),
    ("GRU", (3, 5, 0), {}, "num_layers must be greater than zero"),
    ("GRU", (3, 5, 2), dict(dropout=1.5), "dropout should be a number in range [0, 1]"),
    ("GRU", (3, 5, 2), dict(dropout=-0.1), "dropout should be a number in range [0, 1]"),
    ("GRU", (3, 5, 2), dict(dropout=True), "dropout should be a number in range [0, 1]"),
    ("GRU", (3, 5, 2), dict(dropout="x"), "dropout should be a number in range [0, 1]"),
    ("GRU", (3, 5, 2), dict(dropout=None), "dropout should be a number in range [0, 1]"),
    ("GRU", (3, 5), dict(proj_size=2), "proj_size argument is only supported for LSTM, not RNN or GRU"),
    ("GRU", (3, 5), dict(proj_size=0), "proj_size argument is only supported for LSTM, not RNN or GRU"),
    ("RNN", (3, 5), dict(proj_size=2), "proj_size argument is only supported for LSTM, not RNN or GRU"),
    ("RNN", (3, 5), dict(nonlinearity="sigmoid"), "Unknown nonlinearity 'sigmoid'. Select from 'tanh' or 'relu'."),
    ("RNN", (3, 5, 1, "gelu"), {}, "Unknown nonlinearity 'gelu'. Select from 'tanh' or 'relu'."),
    ("LSTM", (3, 5), dict(proj_size=-1), "proj_size should be a positive integer or zero to disable projections"),
    ("LSTM", (3, 5), dict(proj_size=5), "proj_size has to be smaller than hidden_size"),
    ("LSTM", (3, 5), dict(proj_size=7), "proj_size has to be smaller than hidden_size"),
    ("LSTM", (3, 5), dict(proj_size=2.0), "proj_size should be of type int, got: float"),
    ("LSTM", (3, 5), dict(unknown=1), "unexpected keyword argument 'unknown'"),
    ("LSTM", (3, 5, 1, True, False, 0.0, False, 0, None, None, "extra"), {}, "positional argument"),
]


@pytest.mark.parametrize("preset,args,kwargs,phrase", CTOR_CASES,
                         ids=[f"{c[0]}{c[1]}{c[2]}" for c in CTOR_CASES])
def test_bad_constructor_argument_raises_torch_class(preset, args, kwargs, phrase):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as theirs:
            getattr(nn, preset)(*args, **kwargs)
        with pytest.raises(theirs.type) as ours:
            getattr(rnnkit, preset)(*args, **kwargs)
    assert phrase in str(ours.value), str(ours.value)


@pytest.mark.parametrize("value", ["False", 1, None])
def test_non_bool_bidirectional_is_refused_when_built(value):
    """torch takes it and fails in forward with its kernel's TypeError; rnnkit fails at once."""
    with pytest.raises(TypeError):
        nn.LSTM(3, 5, bidirectional=value)(torch.randn(2, 1, 3))
    with pytest.raises(TypeError, match=f"bidirectional should be of type bool, got: {type(value).__name__}"):
        rnnkit.LSTM(3, 5, bidirectional=value)


@pytest.mark.parametrize("args,kwargs", [
    ((3, 5, True), {}),                                  # bool is an int to torch too
    ((3, 5, 2), dict(dropout=1)),                        # an int probability
    ((3, 5, 2), dict(dropout=np.float64(0.25))),         # any numbers.Number
    ((3, 5, 1, "relu", False, True, 0.0, True), {}),     # torch's positional order
])
def test_arguments_torch_accepts_are_accepted(args, kwargs):
    name = "RNN" if len(args) > 3 else "GRU"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref, ours = getattr(nn, name)(*args, **kwargs), getattr(rnnkit, name)(*args, **kwargs)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for k in ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
              "bidirectional", "proj_size", "mode"):
        assert getattr(ours, k) == getattr(ref, k), k
    assert type(ours.dropout) is float


def test_rnn_attributes_match_torch():
    for name, kw in CONFIGS.values():
        ref, ours = _pair(name, **kw)
        assert (ours.mode, ours.proj_size) == (ref.mode, ref.proj_size)
        if name == "RNN":
            assert ours.nonlinearity == ref.nonlinearity


# ------------------------------------------------------------------- input errors

def _r(*shape, **kw):
    return torch.randn(*shape, **kw)


INPUT_CASES = [  # (preset, kwargs, make (args of forward), check torch's message is in ours)
    ("GRU", {}, lambda: (_r(2, 3, 3, 3),), True),
    ("LSTM", {}, lambda: (_r(3),), True),
    ("GRU", {}, lambda: (_r(2, 3, 4),), True),
    ("RNN", {}, lambda: (_r(2, 4),), True),
    ("GRU", {}, lambda: (_r(2, 3, 3), _r(1, 4, 5)), True),
    ("GRU", dict(batch_first=True), lambda: (_r(3, 2, 3), _r(1, 2, 5)), True),
    ("GRU", {}, lambda: (_r(2, 3, 3), _r(2, 3, 5)), True),
    ("RNN", {}, lambda: (_r(2, 3, 3), _r(1, 3, 4)), True),
    ("GRU", {}, lambda: (_r(2, 3, 3), _r(3, 5)), True),
    ("RNN", {}, lambda: (_r(2, 3), _r(1, 1, 5)), True),
    ("GRU", {}, lambda: (_r(2, 3), _r(1, 4)), True),
    ("GRU", {}, lambda: (_r(2, 3, 3, dtype=torch.float64),), True),
    ("LSTM", {}, lambda: (_r(2, 3, 3).long(),), True),
    ("GRU", {}, lambda: (_r(2, 3, 3), _r(1, 3, 5, dtype=torch.float64)), False),
    ("GRU", {}, lambda: (_r(0, 3, 3),), True),
    ("LSTM", {}, lambda: (_r(0, 3),), True),
    ("LSTM", {}, lambda: (_r(2, 3, 3), (_r(1, 3, 5), _r(1, 4, 5))), True),
    ("LSTM", {}, lambda: (_r(2, 3, 3), (_r(1, 4, 5), _r(1, 3, 5))), True),
    ("LSTM", dict(proj_size=2), lambda: (_r(2, 3, 3), (_r(1, 3, 5), _r(1, 3, 5))), True),
    ("LSTM", {}, lambda: (_r(2, 3, 3), (_r(3, 5), _r(3, 5))), True),
    ("LSTM", {}, lambda: (_r(2, 3), (_r(1, 1, 5), _r(1, 1, 5))), True),
    ("LSTM", {}, lambda: (_r(2, 3, 3), (_r(1, 3, 5), _r(1, 3, 5), _r(1, 3, 5))), True),
    ("LSTM", dict(num_layers=2), lambda: (_r(2, 3, 3), _r(2, 3, 5)), False),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_input_raises_torch_class_and_words(backend):
    for preset, kw, make, same_words in INPUT_CASES:
        kw = dict(kw)
        L = kw.pop("num_layers", 1)
        torch.manual_seed(0)
        args = make()
        with pytest.raises(Exception) as theirs:
            getattr(nn, preset)(3, 5, L, **kw)(*args)
        with pytest.raises(rnnkit.InputError) as ours:
            getattr(rnnkit, preset)(3, 5, L, backend=backend, **kw)(*args)
        case = f"{preset}({kw}) on {[getattr(a, 'shape', a) for a in args]}"
        assert isinstance(ours.value, theirs.type), f"{case}: {ours.value!r} vs {theirs.value!r}"
        if same_words:  # torch's sentence, less its leading "LSTM: "
            words = str(theirs.value).split(f"{preset}: ", 1)[-1]
            assert words in str(ours.value), f"{case}: {words!r} not in {str(ours.value)!r}"


def test_input_error_is_both_value_and_runtime_error():
    assert issubclass(rnnkit.InputError, ValueError) and issubclass(rnnkit.InputError, RuntimeError)
    lstm = rnnkit.LSTM(3, 5)
    for exc in (ValueError, RuntimeError):
        with pytest.raises(exc, match=r"hx\[0\]: expected shape \(1, 2, 5\), got \(1, 3, 5\); "
                                      r"the input has 2 sequences \(Expected hidden\[0\] size"):
            lstm(torch.randn(4, 2, 3), (torch.zeros(1, 3, 5), torch.zeros(1, 2, 5)))


# --------------------------------------------------------- unbatched and empty input

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", CONFIGS)
def test_unbatched_input_matches_torch(config, backend):
    name, kw = CONFIGS[config]
    for batch_first, with_hx in ((False, False), (True, True)):  # batch_first: ignored
        ref, ours = _pair(name, backend, bidirectional=True, batch_first=batch_first, **kw)
        hx = [torch.randn(4, s) for s in _state_sizes(name, kw)] if with_hx else None
        _assert_same_run(ref, ours, torch.randn(5, I), hx)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", CONFIGS)
def test_empty_batch_matches_torch(config, backend):
    name, kw = CONFIGS[config]
    for batch_first, with_hx, training in ((False, False, True), (True, True, False)):
        ref, ours = _pair(name, backend, bidirectional=True, batch_first=batch_first,
                          dropout=0.5, **kw)
        ref.train(training), ours.train(training)
        x = torch.randn((0, 5, I) if batch_first else (5, 0, I))
        hx = [torch.randn(4, 0, s) for s in _state_sizes(name, kw)] if with_hx else None
        _assert_same_run(ref, ours, x, hx)
        for p in ours.parameters():  # a gradient, of zeros (as torch's), not None
            assert p.grad is not None and not p.grad.any()
    ours = getattr(rnnkit, name)(I, H, 2, bidirectional=True, backend=backend, **kw)
    out, h_n = ours(torch.randn(5, 0, I), lengths=torch.zeros(0, dtype=torch.long))  # rnnkit's
    assert out.shape == (5, 0, 2 * (kw.get("proj_size") or H))
    assert [h.shape for h in as_tuple(h_n)] == [(4, 0, s) for s in _state_sizes(name, kw)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_length_sequence_raises_torch_class(backend):
    for shape in ((0, 2, I), (0, I)):
        with pytest.raises(RuntimeError, match="Expected sequence length to be larger than 0"):
            nn.GRU(I, H)(torch.randn(shape))
        with pytest.raises(rnnkit.InputError, match=r"input: expected at least one time step, "
                           r"got shape .*\(Expected sequence length to be larger than 0 in RNN\)"):
            rnnkit.GRU(I, H, backend=backend)(torch.randn(shape))


# -------------------------------------------------------------------------- dropout

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_dropout_between_layers_and_changed_at_runtime_matches_torch(name, backend):
    """Inter-layer dropout draws torch's masks (same seed, same output) on every backend;
    ``.dropout`` set after construction takes effect at the next call, as in torch."""
    ref, ours = _pair(name, backend, num_layers=3)
    x = torch.randn(5, 2, I)
    for p in (0.0, 0.3, 1.0, 0.6, 0.0):
        ref.dropout = ours.dropout = p
        for training in (True, False):
            ref.train(training), ours.train(training)
            torch.manual_seed(7)
            o_ref = ref(x)[0]
            torch.manual_seed(7)
            o_ours = ours(x)[0]
            torch.testing.assert_close(o_ours, o_ref, msg=lambda m: f"p={p} train={training}: {m}")
    ref.dropout = ours.dropout = 0.5
    ref.train(), ours.train()
    torch.manual_seed(3)
    a = ours(x)[0]
    assert not torch.allclose(a, ours(x)[0])  # fresh masks each call


# ---------------------------------------------------- weight norm and pruning hooks

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", CONFIGS)
def test_weight_norm_on_recurrent_weight_matches_torch(config, backend):
    name, kw = CONFIGS[config]
    ref, ours = _pair(name, backend, **kw)
    for m in (ref, ours):
        nn.utils.weight_norm(m, "weight_hh_l0")
        with torch.no_grad():
            m.weight_hh_l0_g.mul_(1.5)  # a reparametrised weight unlike the original
    assert sum(isinstance(p, nn.Parameter) for p in ours._flat_weights) \
        == sum(isinstance(p, nn.Parameter) for p in ref._flat_weights) \
        == len(ours._flat_weights) - 1
    _assert_same_run(ref, ours, torch.randn(5, 2, I))
    assert ours.weight_hh_l0_g.grad is not None and ours.weight_hh_l0_v.grad is not None
    for m in (ref, ours):
        nn.utils.remove_weight_norm(m, "weight_hh_l0")
    assert "weight_hh_l0" in dict(ours.named_parameters())
    assert not any(n.endswith(("_g", "_v")) for n, _ in ours.named_parameters())
    _assert_same_run(ref, ours, torch.randn(5, 2, I))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", CONFIGS)
def test_parametrized_weight_norm_matches_torch(config, backend):
    name, kw = CONFIGS[config]
    ref, ours = _pair(name, backend, **kw)
    for m in (ref, ours):
        nn.utils.parametrizations.weight_norm(m, "weight_hh_l0")
        with torch.no_grad():
            m.parametrizations.weight_hh_l0.original0.mul_(0.5)
    _assert_same_run(ref, ours, torch.randn(5, 2, I))
    _assert_same_run(ref, copy.deepcopy(ours), torch.randn(5, 2, I))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", CONFIGS)
def test_pruned_recurrent_weight_matches_torch(config, backend):
    name, kw = CONFIGS[config]
    ref, ours = _pair(name, backend, **kw)
    for m in (ref, ours):
        prune.l1_unstructured(m, "weight_hh_l0", amount=0.5)
    assert torch.equal(ours.weight_hh_l0_mask, ref.weight_hh_l0_mask)
    _assert_same_run(ref, ours, torch.randn(5, 2, I))
    assert not ours.weight_hh_l0_orig.grad[ours.weight_hh_l0_mask == 0].any()
    buf = io.BytesIO()
    torch.save(ours, buf)
    buf.seek(0)
    back = torch.load(buf, weights_only=False)
    _assert_same_run(ref, back, torch.randn(5, 2, I))
    for m in (ref, ours):
        prune.remove(m, "weight_hh_l0")
    _assert_same_run(ref, ours, torch.randn(5, 2, I))


# ----------------------------------------------------------- flat weights, save, copy

@pytest.mark.parametrize("config", CONFIGS)
def test_flat_weights_and_all_weights_after_load_state_dict(config):
    name, kw = CONFIGS[config]
    ref = getattr(nn, name)(I, H, 2, bidirectional=True, **kw)
    for bias in (True, False):
        ref = getattr(nn, name)(I, H, 2, bias=bias, bidirectional=True, **kw)
        ours = getattr(rnnkit, name)(I, H, 2, bias=bias, bidirectional=True, **kw)
        ours.load_state_dict(ref.state_dict())
        assert ours._flat_weights_names == ref._flat_weights_names
        assert [[p.shape for p in ps] for ps in ours.all_weights] \
            == [[p.shape for p in ps] for ps in ref.all_weights]
        for a, b in zip(ours._flat_weights, ref._flat_weights):
            assert torch.equal(a, b)
        for n, w in zip(ours._flat_weights_names, ours._flat_weights):
            assert w is getattr(ours, n)  # the live parameters, not copies
        for ws, ws_ref in zip(ours.all_weights, ref.all_weights):
            assert all(torch.equal(a, b) for a, b in zip(ws, ws_ref))


@pytest.mark.parametrize("config", CONFIGS)
def test_torch_save_load_then_flatten_parameters(config):
    name, kw = CONFIGS[config]
    ref, ours = _pair(name, bidirectional=True, **kw)
    buf = io.BytesIO()
    torch.save(ours, buf)
    buf.seek(0)
    back = torch.load(buf, weights_only=False)
    back.flatten_parameters()
    assert type(back) is type(ours)
    _assert_same_run(ref, back, torch.randn(5, 2, I))
    buf = io.BytesIO()  # the weights alone, as torch.nn's checkpoints are loaded
    torch.save(ref.state_dict(), buf)
    buf.seek(0)
    fresh = getattr(rnnkit, name)(I, H, 2, bidirectional=True, **kw)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    fresh.flatten_parameters()
    _assert_same_run(ref, fresh, torch.randn(5, 2, I))


@pytest.mark.parametrize("config", CONFIGS)
def test_deepcopy_and_pickle(config):
    name, kw = CONFIGS[config]
    ref, ours = _pair(name, bidirectional=True, dropout=0.25, **kw)
    for twin in (copy.deepcopy(ours), pickle.loads(pickle.dumps(ours))):
        assert all(a is not b for a, b in zip(twin.parameters(), ours.parameters()))
        assert (twin.dropout, twin.mode, twin.proj_size) == (ref.dropout, ref.mode, ref.proj_size)
        ref.eval(), twin.eval()
        _assert_same_run(ref, twin, torch.randn(5, 2, I))
        ref.train(), twin.train()
        torch.manual_seed(1)
        o_ref = ref(torch.ones(5, 2, I))[0]
        torch.manual_seed(1)
        torch.testing.assert_close(twin(torch.ones(5, 2, I))[0], o_ref)


@pytest.mark.parametrize("config", CONFIGS)
def test_setstate_of_an_older_pickle(config):
    """A module pickled before RNN/GRU had proj_size and before the regularisers
    existed (torch.nn.RNNBase.__setstate__ fills proj_size the same way)."""
    name, kw = CONFIGS[config]
    ref, ours = _pair(name, **kw)
    state = ours.__getstate__() if hasattr(ours, "__getstate__") else ours.__dict__
    state = dict(state)
    del state["regularizers"]
    if name != "LSTM":
        del state["proj_size"]
    old = type(ours).__new__(type(ours))
    old.__setstate__(state)
    assert old.proj_size == ref.proj_size
    _assert_same_run(ref, old, torch.randn(5, 2, I))


# ---------------------------------------------------- factory arguments, meta device

@pytest.mark.parametrize("config", CONFIGS)
def test_device_and_dtype_factory_arguments(config):
    name, kw = CONFIGS[config]
    for device in ("cpu", torch.device("cpu")):
        ours = getattr(rnnkit, name)(I, H, 2, device=device, dtype=torch.float64, **kw)
        ref = getattr(nn, name)(I, H, 2, device=device, dtype=torch.float64, **kw)
        assert all(p.dtype == torch.float64 and p.device.type == "cpu" for p in ours.parameters())
        ours.load_state_dict(ref.state_dict())
        _assert_same_run(ref, ours, torch.randn(5, 2, I, dtype=torch.float64),
                         tol=dict(atol=1e-12, rtol=1e-10))
    on_meta = getattr(rnnkit, name)(I, H, 2, bidirectional=True, device="meta", **kw)
    ref_meta = getattr(nn, name)(I, H, 2, bidirectional=True, device="meta", **kw)
    assert all(p.is_meta for p in on_meta.parameters())
    x = torch.randn(5, 2, I, device="meta")
    for a, b in zip(as_tuple(on_meta(x)[1]) + (on_meta(x)[0],),
                    as_tuple(ref_meta(x)[1]) + (ref_meta(x)[0],)):
        assert a.is_meta and a.shape == b.shape
    on_meta.to_empty(device="cpu")  # materialise, as with torch.nn's
    on_meta.reset_parameters()
    ref = getattr(nn, name)(I, H, 2, bidirectional=True, **kw)
    on_meta.load_state_dict(ref.state_dict())
    _assert_same_run(ref, on_meta, torch.randn(5, 2, I))


# ------------------------------------------- non-contiguous input, repeated backward

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", CONFIGS)
def test_non_contiguous_input_and_state_match_torch(config, backend):
    name, kw = CONFIGS[config]
    for batch_first in (False, True):
        ref, ours = _pair(name, backend, bidirectional=True, batch_first=batch_first, **kw)
        x = torch.randn(2, 5, 2 * I)[..., ::2]  # strided features
        x = x if batch_first else x.transpose(0, 1)  # and a transposed layout
        assert not x.is_contiguous()
        hx = [torch.randn(2, 4, s).transpose(0, 1) for s in _state_sizes(name, kw)]
        _assert_same_run(ref, ours, x, hx)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", CONFIGS)
def test_repeated_backward_with_retain_graph(config, backend):
    name, kw = CONFIGS[config]
    ref, ours = _pair(name, backend, **kw)
    grads = []
    for m in (ref, ours):
        x = torch.randn(5, 2, I, generator=torch.Generator().manual_seed(0), requires_grad=True)
        out, _ = m(x)
        loss = out.pow(2).sum()
        loss.backward(retain_graph=True)
        once = [p.grad.clone() for p in m.parameters()] + [x.grad.clone()]
        loss.backward()
        twice = [p.grad for p in m.parameters()] + [x.grad]
        for a, b in zip(twice, once):
            torch.testing.assert_close(a, 2 * b)
        grads.append(once)
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a)


@pytest.mark.parametrize("backend", ["auto", "fused", "loop"])
@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_lower_precision_input_under_autocast_as_torch(name, backend):
    """torch.nn skips its input-dtype check under autocast; so does rnnkit (torch's CPU
    kernel takes no bfloat16, so ``torch`` refuses it and ``auto`` runs a scan)."""
    ref, ours = _pair(name, backend)
    x = torch.randn(5, 2, I).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (o_ref, h_ref), (o_ours, h_ours) = ref(x), ours(x)
    assert o_ours.dtype == o_ref.dtype == torch.bfloat16
    torch.testing.assert_close(o_ours.float(), o_ref.float(), atol=3e-2, rtol=0)
    for a, b in zip(as_tuple(h_ours), as_tuple(h_ref)):
        torch.testing.assert_close(a.float(), b.float(), atol=3e-2, rtol=0)
    with pytest.raises(rnnkit.InputError, match=r"RNN input dtype \(torch.bfloat16\)"):
        ours(x)  # without autocast the dtypes must agree, as in torch
