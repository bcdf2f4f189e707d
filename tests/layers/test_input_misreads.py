"""Inputs a layer once misread silently: each now raises, or gives the correct values.

House rule: no input is silently misread; bad input gets a one-line error naming what was
expected, and a computation that cannot be done correctly raises.
"""
import warnings

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import rnnkit
from rnnkit import cells
from rnnkit.layers.errors import InputError

I, H, T, B = 4, 6, 5, 3
ZOO = ["RNN", "LSTM", "GRU", "LayerNormLSTM", "LayerNormGRU", "IndRNN", "QRNN", "SRU", "MinGRU",
       "MinLSTM"]
TWO_STATES = ("LSTM", "LayerNormLSTM")


def _states(h):
    return h if isinstance(h, tuple) else (h,)


# ------------------------------------------------------------ 1. autocast and dtypes
@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
@pytest.mark.parametrize("name", ZOO)
def test_integer_or_bool_input_under_autocast_raises(name, dtype):
    layer = getattr(rnnkit, name)(I, H)
    x = (torch.randn(T, B, I) > 0).to(dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with pytest.raises(InputError, match=rf"input: expected a floating-point tensor under "
                                             rf"autocast, got dtype {dtype}"):
            layer(x)
        with pytest.raises(InputError, match="expected a floating-point tensor"):
            layer(x[:, 0])  # unbatched


def test_integer_hx_under_autocast_raises():
    layer = rnnkit.GRU(I, H)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with pytest.raises(InputError, match=r"expected a floating-point tensor under autocast"):
            # an integer hx matched the integer input's dtype: both ran, giving int64 zeros
            layer(torch.ones(T, B, I, dtype=torch.int64), torch.zeros(1, B, H, dtype=torch.int64))
        with pytest.raises(InputError, match=r"hx: dtype torch.int64 does not match the "
                                             r"input's \(torch.float32\)"):
            layer(torch.randn(T, B, I), torch.zeros(1, B, H, dtype=torch.int64))
        out, _ = layer(torch.randn(T, B, I).half())  # a float of another precision: autocast's
    assert out.is_floating_point()


# ------------------------------------------------------------ 2. NaN/inf in the padding
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("backend", ["auto", "fused", "loop"])
@pytest.mark.parametrize("name", ZOO)
def test_padding_content_never_reaches_outputs_or_gradients(name, backend, residual):
    torch.manual_seed(0)
    layer = getattr(rnnkit, name)(I, H, 2, bidirectional=True, residual=residual,
                                  backend=backend)
    lengths = [5, 3, 4]
    clean = torch.randn(T, B, I)
    for b, n in enumerate(lengths):
        clean[n:, b] = 0.0

    def run(fill):
        x = clean.clone()
        x[3:, 1], x[4:, 2] = fill, -fill
        x.requires_grad_()
        layer.zero_grad(set_to_none=True)
        out, h = layer(x, lengths=lengths)
        (out.square().sum() + sum(s.sum() for s in _states(h))).backward()
        return out, _states(h), x.grad, [p.grad for p in layer.parameters()]

    ref = run(0.0)
    for fill in (float("nan"), float("inf")):
        out, h, gx, gp = run(fill)
        torch.testing.assert_close(out, ref[0])
        for a, b in zip(h, ref[1]):
            torch.testing.assert_close(a, b)
        torch.testing.assert_close(gx, ref[2])
        for a, b in zip(gp, ref[3]):
            assert a.isfinite().all()
            torch.testing.assert_close(a, b)


# ------------------------------------------------------------ 3. step() checks its state
@pytest.mark.parametrize("name", ["GRU", "LSTM", "LayerNormLSTM", "LayerNormGRU", "IndRNN",
                                  "MinGRU", "MinLSTM", "QRNN", "SRU"])
def test_step_checks_dtypes_and_types(name):
    layer = getattr(rnnkit, name)(I, H, 2).eval()
    x = torch.randn(B, I)
    s = _states(layer.init_state(B))

    def like(f):
        return tuple(f(t) for t in s) if len(s) == 2 else f(s[0])

    with pytest.raises(InputError, match=r"state\[0\]: dtype torch.float64 does not match "
                                         r"x_t's \(torch.float32\)"):
        layer.step(x, like(torch.Tensor.double))
    with pytest.raises(InputError, match=r"state\[0\]: dtype torch.int64 does not match"):
        layer.step(x, like(torch.Tensor.long))
    with pytest.raises(InputError, match=r"x_t: dtype torch.float64 does not match the "
                                         r"layer's weights \(torch.float32\)"):
        layer.step(x.double())
    with pytest.raises(InputError, match=r"x_t: dtype torch.int64"):
        layer.step(x.long(), like(lambda t: t))
    with pytest.raises(InputError, match=r"state: expected"):
        layer.step(x, (1, 2) if len(s) == 2 else (1,))
    with pytest.raises(InputError, match=r"state: expected"):
        layer.step(x, 3)
    with pytest.raises(InputError, match=r"state\[0\]: expected shape \(2, 3, 6\), got "
                                         r"\(2, 2, 6\)"):
        layer.step(x, like(lambda t: t[:, :2]))
    y, _ = layer.step(x, like(lambda t: t))  # the right state still runs
    assert y.dtype == torch.float32


# ------------------------------------------------------------ 4. min-RNN half precision
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", ["MinGRU", "MinLSTM"])
def test_min_rnn_parallel_loop_keeps_precision_in_half(name, dtype):
    torch.manual_seed(0)
    x = torch.randn(300, 4, 8)
    ref = getattr(rnnkit, name)(8, 16, 2, dtype=torch.float64)
    layer = getattr(rnnkit, name)(8, 16, 2, dtype=dtype, backend="loop")
    layer.load_state_dict({k: v.to(dtype) for k, v in ref.state_dict().items()})
    with torch.no_grad():
        out, _ = layer(x.to(dtype))
        want, _ = ref(x.double())
    assert out.dtype == dtype
    err = float((out.double() - want).abs().max() / want.abs().max())
    assert err < 0.03, err  # was 0.23-0.25 in bfloat16; the fused path gives about 0.01


# ------------------------------------------------------------ 5, 6. flags and sizes
def test_cell_flags_are_not_coerced():
    with pytest.raises(TypeError, match=r"reset_after should be of type bool, got: str"):
        rnnkit.GRU(I, H, reset_after="False")
    with pytest.raises(TypeError, match=r"reset_after should be of type bool, got: NoneType"):
        cells.GRUCell(I, H, reset_after=None)
    with pytest.raises(TypeError, match=r"rescale should be of type bool, got: str"):
        rnnkit.SRU(I, H, rescale="False")
    with pytest.raises(TypeError, match=r"bias should be of type bool, got: str"):
        cells.LSTMCell(I, H, bias="False")
    assert rnnkit.GRU(I, H, reset_after=False).cells[0].reset_after is False


def test_non_integral_sizes_raise():
    with pytest.raises(TypeError, match=r"proj_size should be of type int, got: float \(2.7\)"):
        rnnkit.Recurrent(cells.LSTMCell, I, H, proj_size=2.7)
    with pytest.raises(TypeError, match=r"proj_size should be of type int, got: bool"):
        rnnkit.LSTM(I, H, proj_size=True)
    with pytest.raises(TypeError, match=r"proj_size should be of type int, got: bool"):
        rnnkit.Recurrent(cells.LSTMCell, I, H, proj_size=True)
    with pytest.raises(TypeError, match=r"input_size should be of type int, got: float"):
        cells.LSTMCell(3.7, H)
    with pytest.raises(TypeError, match=r"hidden_size should be of type int, got: str"):
        cells.GRUCell(I, "6")
    with pytest.raises(ValueError, match=r"window: expected 1 or 2, got 2.0"):
        rnnkit.QRNN(I, H, window=2.0)
    assert rnnkit.Recurrent(cells.LSTMCell, I, H, proj_size=2).cells[0].proj_size == 2


# ------------------------------------------------------------ 7. lengths
def test_bool_lengths_raise():
    layer = rnnkit.GRU(I, H)
    for lengths in (torch.tensor([True, True, False]), [True, True, True]):
        with pytest.raises(InputError, match=r"lengths: expected 3 integer lengths \(one per "
                                             r"sequence\), got dtype torch.bool"):
            layer(torch.randn(T, B, I), lengths=lengths)


def test_empty_lengths_list_for_an_empty_batch():
    out, h = rnnkit.GRU(I, H)(torch.randn(T, 0, I), lengths=[])
    assert out.shape == (T, 0, H) and h.shape == (1, 0, H)
    with pytest.raises(InputError, match=r"lengths: expected 2 integer lengths"):
        rnnkit.GRU(I, H)(torch.randn(T, 2, I), lengths=[])


# ------------------------------------------------------------ 8. finite hyper-parameters
def test_infinite_or_nan_eps_and_forget_bias_raise():
    with pytest.raises(ValueError, match=r"eps: expected a positive finite number, got inf"):
        rnnkit.LayerNormLSTM(I, H, eps=float("inf"))
    with pytest.raises(ValueError, match=r"eps: expected a positive finite number, got inf"):
        cells.LayerNormGRUCell(I, H, eps=float("inf"))
    for v in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValueError, match=r"forget_bias: expected a finite number or None"):
            rnnkit.LSTM(I, H, forget_bias=v)


# ------------------------------------------------------------ 9. packed data rank
@pytest.mark.parametrize("name", ["GRU", "MinGRU"])
def test_packed_sequence_with_wrong_rank_data(name):
    layer = getattr(rnnkit, name)(I, H)
    p = pack_padded_sequence(torch.randn(T, B, I), [5, 4, 2])
    for data, dim in ((p.data[:, 0], 1), (p.data[:, None], 3)):
        q = PackedSequence(data, p.batch_sizes, p.sorted_indices, p.unsorted_indices)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(InputError, match=rf"input: expected a PackedSequence whose data "
                                                 rf"is 2-D .*\(input must have 2 dimensions, "
                                                 rf"got {dim}\)"):
                layer(q)


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
def test_a_state_of_another_float_precision_is_cast_under_autocast(name):
    """The Elman RNN's step returns a bf16 state under CPU autocast: fed back, it was refused
    (torch.nn casts it). Outside autocast the dtypes must still match."""
    torch.manual_seed(0)
    m = getattr(rnnkit, name)(4, 6).eval()
    x = torch.randn(5, 3, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        state = None
        for t in range(5):
            y, state = m.step(x[t], state)
        hx = tuple(h.to(torch.bfloat16) for h in (state if isinstance(state, tuple) else (state,)))
        hx = hx if name == "LSTM" else hx[0]
        out_bf, _ = m(x, hx)
        out_f, _ = m(x, tuple(h.float() for h in hx) if name == "LSTM" else hx.float())
    torch.testing.assert_close(out_bf.float(), out_f.float())
    with pytest.raises(InputError, match=r"dtype torch\.bfloat16 does not match"):
        m(x, hx)
