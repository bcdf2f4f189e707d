"""The backend table: one protocol, one order, one check per forward, the old name warns once."""
import warnings

import pytest
import torch

import rnnkit
from rnnkit.cells import GRUCell, LSTMCell
from rnnkit.kernels import dispatch, fused
from rnnkit.kernels.dispatch import BACKENDS, choose, choose_backend


def test_one_static_table_in_autos_order():
    assert [b.name for b in BACKENDS] == ["torch", "triton", "fused", "loop"]
    assert dispatch.backend_names() == ("auto", "torch", "triton", "fused", "loop")
    for b in BACKENDS:
        assert b.scope in ("layer", "scan", "step")
        assert callable(b.unsupported) and callable(b.run)


def test_native_is_a_deprecated_alias_of_torch_that_warns_once(monkeypatch):
    monkeypatch.setattr(dispatch, "_warned", set())
    x = torch.randn(4, 2, 3)
    with pytest.warns(DeprecationWarning, match="backend='native' is deprecated; use "
                                                "backend='torch'"):
        old = rnnkit.LSTM(3, 5, backend="native")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second use is quiet
        again = rnnkit.GRU(3, 5, backend="native")
    assert old.backend == again.backend == "torch"
    new = rnnkit.LSTM(3, 5, backend="torch")
    new.load_state_dict(old.state_dict())
    torch.testing.assert_close(old(x)[0], new(x)[0], atol=0, rtol=0)
    assert choose_backend(old, x) == "torch"


def test_a_named_backend_that_cannot_run_says_why_in_one_line():
    x = torch.randn(4, 2, 3)
    with pytest.raises(ValueError) as e:
        rnnkit.SRU(3, 5, backend="torch")(x)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("backend='torch' cannot run this layer: torch has no fused kernel")
    with pytest.raises(ValueError, match="backend: expected 'auto', 'torch', 'triton', "
                                         "'fused' or 'loop', got 'cudnn'"):
        rnnkit.LSTM(3, 5, backend="cudnn")


def test_auto_takes_the_first_backend_that_can():
    x = torch.randn(4, 2, 3)
    assert choose(rnnkit.LSTM(3, 5), x).name == "torch"
    assert choose(rnnkit.LSTM(3, 5, zoneout=0.1), x).name == "fused"  # torch: no zoneout
    cell = type("Custom", (LSTMCell,), {})  # a subclass: no kernel knows its step
    assert choose(rnnkit.Recurrent(cell, 3, 5), x).name == "loop"


def test_the_fused_check_runs_once_per_forward(monkeypatch):
    """The layer validates once: ``fused_unsupported`` runs once per forward call, for every
    layer and direction together (the scans themselves do not check again)."""
    calls = []
    real = fused.fused_unsupported

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(fused, "fused_unsupported", spy)
    x = torch.randn(6, 3, 4)
    for layer in (rnnkit.GRU(4, 5, num_layers=2, bidirectional=True),  # auto: torch then fused
                  rnnkit.LSTM(4, 5, num_layers=2, bidirectional=True, zoneout=0.1),
                  rnnkit.SRU(4, 5, num_layers=3, backend="fused")):
        calls.clear()
        layer(x)[0].sum().backward()
        assert len(calls) == 1, type(layer).__name__


def test_cells_say_what_kernels_need():
    assert LSTMCell(2, 3).kernel_kind == "lstm" and GRUCell(2, 3).kernel_kind == "gru"

    class Custom(GRUCell):  # may change step: no kernel runs it unless it says so
        pass

    class Same(GRUCell):
        kernel_kind = "gru"

    assert Custom(2, 3).kernel_kind is None and Same(2, 3).kernel_kind == "gru"
