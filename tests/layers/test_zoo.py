"""The zoo layers as a family: names in the registry, input forms, backends, repr."""
import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from rnnkit.layers import (
    LAYERS,
    LRU,
    MLSTM,
    QRNN,
    RGLRU,
    S6,
    SLSTM,
    SRU,
    IndRNN,
    LayerNormGRU,
    LayerNormLSTM,
    MinGRU,
    MinLSTM,
    build_layer,
)
from rnnkit.testing import as_tuple

ZOO = {"indrnn": IndRNN, "qrnn": QRNN, "sru": SRU, "mingru": MinGRU, "minlstm": MinLSTM,
       "layernorm_lstm": LayerNormLSTM, "layernorm_gru": LayerNormGRU, "lru": LRU, "rglru": RGLRU,
       "slstm": SLSTM, "mlstm": MLSTM, "s6": S6}


@pytest.mark.parametrize("name", ZOO)
def test_registry_builds_each_layer_and_every_input_form_works(name):
    assert LAYERS[name] is ZOO[name]
    torch.manual_seed(0)
    layer = build_layer(name, 3, 5, num_layers=2, bidirectional=True, batch_first=True)
    assert type(layer) is ZOO[name] and layer.batch_first and layer.num_layers == 2
    x = torch.randn(4, 6, 3)  # (B, T, I)
    out, h_n = layer(x, lengths=[6, 2, 5, 1])
    assert out.shape == (4, 6, 10) and out.dtype == torch.float32
    sizes = layer.cells[-1].state_sizes  # (5,), or e.g. the mLSTM's (C, n, m): (25, 5, 1)
    assert [h.shape for h in as_tuple(h_n)] == [(4, 4, s) for s in sizes]
    packed = pack_padded_sequence(x, [6, 2, 5, 1], batch_first=True, enforce_sorted=False)
    p_out, _ = layer(packed)
    assert isinstance(p_out, PackedSequence)
    one, h_one = layer(x[1, :2])  # unbatched (T, I)
    torch.testing.assert_close(one, out[1, :2], atol=1e-6, rtol=0)
    assert [h.shape for h in as_tuple(h_one)] == [(4, s) for s in sizes]


@pytest.mark.parametrize("name", ZOO)
def test_torch_backend_is_refused_with_the_reason(name):
    layer = ZOO[name](3, 4, backend="torch")
    with pytest.raises(ValueError, match=r"backend='torch' cannot run this layer: torch has "
                                         r"no fused kernel for \w+Cell\(3, 4"):
        layer(torch.randn(2, 1, 3))


def test_repr_shows_the_cell_options():
    assert repr(QRNN(3, 4, window=2, pooling="ifo")) == \
        "QRNN(QRNNCell(3, 4, window=2, pooling='ifo'), num_layers=1)"
    assert "recurrent_max=1.00696" in repr(IndRNN(3, 4, time_horizon=100))
    assert "mode='sequential'" in repr(MinLSTM(3, 4, mode="sequential"))
    assert "rescale=True" in repr(SRU(3, 4, rescale=True))
    assert "state_size=8, r_min=0.9, r_max=0.999" in repr(LRU(3, 4, state_size=8, r_min=0.9,
                                                              r_max=0.999))
    assert "c=4.0" in repr(RGLRU(3, 4, c=4))
