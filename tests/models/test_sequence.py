"""The task models' sequence layer: cells through build_layer, blocks through their stack, and
the bidirectional block stack against each sequence run alone both ways by hand."""

import doctest

import pytest
import torch

from rnnkit.layers import Recurrent
from rnnkit.models import sequence
from rnnkit.models.blocks import BlockStack
from rnnkit.models.sequence import (
    BidirectionalBlockStack,
    build_sequence_layer,
    reverse_within_lengths,
)

D64 = dict(dtype=torch.float64)
OPTS = {"griffin": {"rnn_width": 6, "conv_width": 3}, "mamba": {"state_size": 3, "conv_width": 3},
        "xlstm": {"num_heads": 2, "conv_width": 3}, "deep_lru": {"state_size": 3}}


def _bi(name, levels=2, I=5, d=4, batch_first=False):
    torch.manual_seed(0)
    layer = BidirectionalBlockStack(name, I, d, levels, batch_first=batch_first,
                                    **OPTS[name]).double()
    with torch.no_grad():  # off the initial values (RMSNorm's 1, Mamba's D of 1)
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return layer


@pytest.mark.parametrize("name", OPTS)
def test_bidirectional_stack_is_each_sequence_forward_and_reversed_by_hand(name):
    """Level by level, for each sequence alone: ``[F(u) ; flip(B(flip(u)))]``, the next level
    reading both; zeros past each length; NaN in the padding reaches nothing."""
    layer, T, lengths = _bi(name), 7, [7, 4, 1]
    x = torch.randn(T, 3, 5, **D64)
    x[4:, 1] = float("nan")
    x[1:, 2] = float("nan")
    x.requires_grad_(True)
    y, (fs, bs) = layer(x, lengths=torch.tensor(lengths))
    assert y.shape == (T, 3, 8) and len(fs) == len(bs) == 2
    for i, L in enumerate(lengths):
        u = x[:L, i:i + 1].transpose(0, 1)  # (1, L, I): the levels' stacks are batch-first
        for f, b in zip(layer.fwd, layer.bwd):
            u = torch.cat([f(u)[0], b(u.flip(1))[0].flip(1)], dim=-1)  # (1, L, 2d)
        torch.testing.assert_close(y[:L, i:i + 1], u.transpose(0, 1), atol=1e-12, rtol=1e-10)
        assert (y[L:, i] == 0).all()
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad[4:, 1] == 0).all()
    assert isinstance(layer.fwd[1], BlockStack) and layer.fwd[1].proj.in_features == 8


@pytest.mark.parametrize("name", OPTS)
def test_bidirectional_stack_batch_first_and_without_lengths(name):
    tm, bf = _bi(name, levels=1), _bi(name, levels=1, batch_first=True)
    x = torch.randn(6, 2, 5, **D64)
    torch.testing.assert_close(bf(x.transpose(0, 1))[0], tm(x)[0].transpose(0, 1))
    full = tm(x, lengths=torch.tensor([6, 6]))[0]
    torch.testing.assert_close(tm(x)[0], full)
    with pytest.raises(ValueError, match="starts from zeros"):
        tm(x, state=tm(x)[1])
    with pytest.raises(ValueError, match="expected a 3-d tensor with 5 features"):
        tm(torch.randn(6, 2, 4))


def test_griffins_attention_levels_in_a_bidirectional_stack():
    """attention_every counts levels: level 2 of 2 is attention in both directions, and the
    stack still equals each sequence run alone both ways."""
    torch.manual_seed(0)
    layer = BidirectionalBlockStack("griffin", 5, 8, 2, attention_every=2, attention_window=3,
                                    attention_heads=2, rnn_width=6, conv_width=3).double()
    kinds = [type(s.blocks[0]).__name__ for s in (*layer.fwd, *layer.bwd)]
    assert kinds == ["GriffinBlock", "LocalAttentionBlock"] * 2
    x, lengths = torch.randn(7, 2, 5, **D64), [7, 4]
    y, _ = layer(x, lengths=torch.tensor(lengths))
    for i, L in enumerate(lengths):
        u = x[:L, i:i + 1].transpose(0, 1)
        for f, b in zip(layer.fwd, layer.bwd):
            u = torch.cat([f(u)[0], b(u.flip(1))[0].flip(1)], dim=-1)
        torch.testing.assert_close(y[:L, i:i + 1], u.transpose(0, 1), atol=1e-12, rtol=1e-10)
    for make in (lambda: BidirectionalBlockStack("griffin", 5, 8, 2, attention_every=3),
                 lambda: BlockStack("griffin", 5, 8, 2, attention_every=3)):
        with pytest.raises(ValueError, match="attention_every=3 with num_layers=2: no block"):
            make()


def test_reverse_within_lengths_by_hand():
    x = torch.arange(8.0).view(2, 4)
    y = reverse_within_lengths(x, torch.tensor([4, 2]))
    assert y.tolist() == [[3.0, 2.0, 1.0, 0.0], [5.0, 4.0, 6.0, 7.0]]


def test_build_sequence_layer_chooses_by_name():
    lstm = build_sequence_layer("lstm", 5, 4, num_layers=1, dropout=0.3, bidirectional=True,
                                batch_first=True)
    assert isinstance(lstm, Recurrent) and lstm.dropout == 0.0  # one layer: no dropout between
    assert build_sequence_layer("gru", 5, 4, num_layers=2, dropout=0.3).dropout == 0.3
    stack = build_sequence_layer("mamba", 5, 4, num_layers=2, dropout=0.3, **OPTS["mamba"])
    assert isinstance(stack, BlockStack) and all(b.drop.p == 0.3 for b in stack.blocks)
    bi = build_sequence_layer("griffin", 5, 4, dropout=0.2, bidirectional=True,
                              **OPTS["griffin"])
    assert isinstance(bi, BidirectionalBlockStack) and bi.fwd[0].blocks[0].drop.p == 0.2
    assert isinstance(build_sequence_layer("griffin", 5, 4, **{"bidirectional": True}),
                      BidirectionalBlockStack)  # extras' flag, as a cell's recipe writes it
    with pytest.raises(ValueError, match=r"model.extras.zoneout: not an option of the mamba "
                                         r"block .* takes conv_width, dt_max, dt_min, eps, expand, state_size"):
        build_sequence_layer("mamba", 5, 4, zoneout=0.1)


def test_docstring_examples():
    result = doctest.testmod(sequence)
    assert result.attempted > 0 and result.failed == 0
