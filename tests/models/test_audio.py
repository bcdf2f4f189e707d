"""The CNN-BiRNN audio classifier: shapes with lengths, padding invariance, masked BN."""
import pytest
import torch

from rnnkit.models.audio import AudioClassifier, AudioConfig, frames_after


def make(**kw):
    cfg = AudioConfig(**{"conv_channels": [8, 6], "conv_strides": [1, 2], "kernel_size": 3,
                         "hidden_size": 5, "dropout": 0.0, **kw})
    return AudioClassifier(cfg, num_features=4, num_classes=3)


def test_frames_after_strides():
    assert frames_after(torch.tensor([1, 2, 7, 8]), [2]).tolist() == [1, 1, 4, 4]
    assert frames_after(torch.tensor([9]), [1, 2, 3]).tolist() == [2]


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn_tanh", "indrnn", "griffin", "mamba",
                                  "xlstm", "deep_lru"])
@pytest.mark.parametrize("pooling", ["meanmax", "attention"])
def test_shapes_and_padding_invariance(cell, pooling):
    torch.manual_seed(0)
    extras = {"num_heads": 2, "qkv_block_size": 2} if cell == "xlstm" else {}  # divide 2 * 5
    model = make(cell=cell, pooling=pooling, extras=extras).double().eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(3, 11, 4, dtype=torch.float64)
    lengths = torch.tensor([11, 6, 1])
    logits = model(x, lengths)
    assert logits.shape == (3, 3)
    assert model.frame_lengths(lengths).tolist() == [6, 3, 1]
    for b, n in enumerate(lengths.tolist()):
        alone = model(x[b:b + 1, :n], torch.tensor([n]))
        torch.testing.assert_close(logits[b:b + 1], alone, atol=1e-10, rtol=1e-10)
    # what lies in the padding does not matter
    x2 = x.clone()
    x2[1, 6:] = 100.0
    torch.testing.assert_close(model(x2, lengths), logits, atol=1e-10, rtol=1e-10)
    assert torch.equal(model(x), model(x, torch.tensor([11, 11, 11])))


def test_unidirectional_and_stacked():
    model = make(bidirectional=False, num_layers=2, pooling="max").eval()
    assert model.head.in_features == 5 and model.rnn.num_layers == 2
    assert model(torch.randn(2, 9, 4), torch.tensor([9, 4])).shape == (2, 3)


def test_batch_norm_statistics_ignore_padding():
    torch.manual_seed(0)
    model = make(conv_channels=[3], conv_strides=[1])
    bn = model.convs[0].bn
    x = torch.randn(2, 5, 4)
    model.train()
    model(x, torch.tensor([5, 3]))
    short = bn.running_mean.clone(), bn.running_var.clone()
    bn.reset_running_stats()
    padded = torch.cat([x, torch.randn(2, 7, 4)], dim=1)  # 7 more frames of garbage
    model(padded, torch.tensor([5, 3]))
    torch.testing.assert_close(bn.running_mean, short[0])
    torch.testing.assert_close(bn.running_var, short[1])
    # and equal to the statistics of the 8 real frames of the convolution's output
    with torch.no_grad():
        x[1, 3:] = 0.0  # the model zeroes the input past each length
        u = model.convs[0].conv(x.transpose(1, 2))  # (2, 3, 5)
        real = torch.cat([u[0], u[1, :, :3]], dim=1)  # (3, 8)
    torch.testing.assert_close(bn.running_mean, 0.1 * real.mean(1))
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * real.var(1, unbiased=True))


def test_bad_configuration_and_input():
    with pytest.raises(ValueError, match="conv_strides: expected 2 strides"):
        make(conv_strides=[1])
    with pytest.raises(ValueError, match="kernel_size=4; expected a positive odd number"):
        make(kernel_size=4)
    with pytest.raises(ValueError, match=r"expects \(B, T, 4\) features, got shape \(2, 9, 5\)"):
        make()(torch.randn(2, 9, 5))
