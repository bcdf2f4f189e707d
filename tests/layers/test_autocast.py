"""Layers under CPU autocast (bfloat16), as mixed-precision training runs them.

The vanilla presets on ``auto`` run torch's kernel, so they give exactly torch.nn's results
and dtypes (torch.nn.GRU stays float32 on CPU, its LSTM and RNN compute in bfloat16). Every
other backend and cell runs its recurrence in the layer's float32 with autocast off (in
bfloat16, a layer norm's or minLSTM's state math moved the input gradient by 20%): the
float32 results, whether autocast is on or not, returned in the input's dtype.
"""
import pytest
import torch

import rnnkit

I, H, T, B = 4, 6, 5, 3
ZOO = ["RNN", "LSTM", "GRU", "LayerNormLSTM", "LayerNormGRU", "IndRNN", "QRNN", "SRU", "MinGRU",
       "MinLSTM"]


def _run(layer, x, lengths, autocast):
    layer.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out, h = layer(x, lengths=lengths)
    h = h if isinstance(h, tuple) else (h,)
    (out.float().square().sum() + sum(s.float().sum() for s in h)).backward()
    return out, h, x.grad, [p.grad for p in layer.parameters()]


@pytest.mark.parametrize("backend", ["auto", "fused", "loop"])
@pytest.mark.parametrize("name", ZOO)
def test_every_cell_trains_under_autocast_as_in_float32(name, backend):
    torch.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=True, backend=backend)
    if name in ("RNN", "LSTM", "GRU"):
        kw["zoneout"] = 0.1  # a configuration torch's kernel cannot run
    layer = getattr(rnnkit, name)(I, H, **kw).train()
    x = torch.randn(T, B, I)
    lengths = torch.tensor([5, 2, 4])
    torch.manual_seed(1)
    out, h, gx, gp = _run(layer, x, lengths, autocast=True)
    torch.manual_seed(1)
    out32, h32, gx32, gp32 = _run(layer, x, lengths, autocast=False)
    for a, b in zip([out, *h, gx, *gp], [out32, *h32, gx32, *gp32]):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["SRU", "LayerNormLSTM"])
def test_bfloat16_input_under_autocast(name):
    """An input already in bfloat16 (autocast's dtype): the recurrence runs in float32 and
    the output comes back in bfloat16, as torch.nn's output for that input."""
    torch.manual_seed(0)
    layer = getattr(rnnkit, name)(I, H)
    x = torch.randn(T, B, I).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, h = layer(x)
    assert out.dtype == torch.bfloat16
    assert all(s.dtype == torch.bfloat16 for s in (h if isinstance(h, tuple) else (h,)))
    torch.testing.assert_close(out, layer(x.float())[0].bfloat16(), atol=0, rtol=0)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_presets_under_autocast_are_torch_nn(name):
    """auto runs torch's kernel there: torch.nn's dtypes and values, lengths included."""
    torch.manual_seed(0)
    ref = getattr(torch.nn, name)(I, H, num_layers=2, bidirectional=True)
    ours = getattr(rnnkit, name)(I, H, num_layers=2, bidirectional=True)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(T, B, I)
    lengths = torch.tensor([5, 2, 4])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, ha = ours(x)
        b, hb = ref(x)
        pa, _ = ours(packed)
        pb, _ = ref(packed)
    assert a.dtype == b.dtype
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    torch.testing.assert_close(pa.data, pb.data, atol=0, rtol=0)
    for u, v in zip(ha if isinstance(ha, tuple) else (ha,), hb if isinstance(hb, tuple) else (hb,)):
        torch.testing.assert_close(u, v, atol=0, rtol=0)
