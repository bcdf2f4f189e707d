"""TextClassifier: padding never changes logits; the flip trick equals a bidirectional layer."""
import pytest
import torch

from rnnkit.models.classify import ClassifierConfig, TextClassifier, reverse_within_lengths

V, K = 50, 3


def model(**kw):
    torch.manual_seed(0)
    cfg = ClassifierConfig(**{"embedding_dim": 8, "hidden_size": 6, "dropout": 0.0,
                              "embedding_dropout": 0.0, **kw})
    return TextClassifier(cfg, V, K).eval()


def batch(seed=0, B=4, T=9):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([T, 5, 1, 7])[:B]
    ids = torch.randint(1, V, (B, T), generator=g)
    ids[torch.arange(T)[None, :] >= lengths[:, None]] = 0
    return ids, lengths


def test_reverse_within_lengths():
    x = torch.arange(8.0).view(2, 4, 1)
    y = reverse_within_lengths(x, torch.tensor([4, 2]))
    assert y[..., 0].tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]
    assert torch.equal(reverse_within_lengths(y, torch.tensor([4, 2])), x)


def _copy_into_bidirectional(m_split, m_bi):
    """Weights of the per-direction layers -> the one bidirectional layer (torch names)."""
    sd = {}
    for k, (f, b) in enumerate(zip(m_split.fwd, m_split.bwd)):
        for name, p in f.named_parameters():
            sd[name.replace("l0", f"l{k}")] = p
        for name, p in b.named_parameters():
            sd[name.replace("l0", f"l{k}") + "_reverse"] = p
    m_bi.rnn.load_state_dict(sd)
    for name in ("embedding", "head"):
        getattr(m_bi, name).load_state_dict(getattr(m_split, name).state_dict())
    if hasattr(m_split, "att"):
        m_bi.att.load_state_dict(m_split.att.state_dict())


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("pooling", ["last", "max", "mean", "meanmax", "attention"])
def test_flip_reverse_equals_bidirectional_layer_with_lengths(cell, pooling):
    kw = {"cell": cell, "pooling": pooling, "num_layers": 2}
    split, bi = model(**kw), model(flip_reverse=False, **kw)
    assert split.split_directions and not bi.split_directions
    _copy_into_bidirectional(split, bi)
    ids, lengths = batch()
    torch.testing.assert_close(split(ids, lengths), bi(ids, lengths), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kw", [{"pooling": "meanmax"}, {"pooling": "last"},
                                {"pooling": "attention", "conv_channels": [5, 4]},
                                {"pooling": "max", "cell": "sru", "flip_reverse": False},
                                {"pooling": "mean", "bidirectional": False},
                                {"pooling": "last", "cell": "mamba", "flip_reverse": False,
                                 "num_layers": 2, "extras": {"state_size": 3}},
                                {"pooling": "meanmax", "cell": "griffin", "flip_reverse": False},
                                {"pooling": "attention", "cell": "griffin"}])
def test_padding_never_changes_logits(kw):
    m = model(**kw)
    ids, lengths = batch()
    logits = m(ids, lengths)
    for b in range(len(lengths)):  # each text alone, unpadded
        alone = m(ids[b:b + 1, :lengths[b]], lengths[b:b + 1])
        torch.testing.assert_close(logits[b:b + 1], alone, atol=1e-5, rtol=1e-5)
    more = torch.cat([ids, torch.randint(1, V, (4, 6))], 1)  # longer padding, with junk ids
    torch.testing.assert_close(m(more, lengths), logits, atol=1e-5, rtol=1e-5)


def test_pooling_by_hand():
    m = model(pooling="meanmax")
    ids, lengths = batch()
    h = m._recur(m.embedding(ids), lengths)  # (B, T, 12)
    b = 1  # length 5
    z = torch.cat([h[b, :5].mean(0), h[b, :5].amax(0)])
    torch.testing.assert_close(m._pool(h, lengths)[b], z)
    m.config.pooling = "last"
    torch.testing.assert_close(m._pool(h, lengths)[b], torch.cat([h[b, 4, :6], h[b, 0, 6:]]))


def test_pretrained_vectors_freeze_and_bad_config():
    m = model(freeze_embedding=True)
    vecs = torch.randn(V, 8)
    found = torch.zeros(V, dtype=torch.bool)
    found[[0, 3, 7]] = True
    assert m.load_vectors(vecs, found) == 2  # the padding row stays zero
    assert torch.equal(m.embedding.weight[3], vecs[3]) and not m.embedding.weight[0].any()
    assert not m.embedding.weight.requires_grad
    with pytest.raises(ValueError, match=r"shape \(50, 4\); the embedding is \(50, 8\)"):
        m.load_vectors(torch.zeros(V, 4), found)
    with pytest.raises(ValueError, match="model.conv_kernel=4"):
        model(conv_kernel=4)
    with pytest.raises(ValueError, match="model.pooling='sum'"):
        model(pooling="sum")
    with pytest.raises(ValueError, match=r"expects token ids of shape \(B, T\)"):
        m(torch.zeros(3, dtype=torch.long))


def test_dropout_only_in_training_and_gradients_reach_embedding():
    m = model(embedding_dropout=0.5, dropout=0.5)
    ids, lengths = batch()
    m.train()
    a, b = m(ids, lengths), m(ids, lengths)
    assert not torch.allclose(a, b)
    a.sum().backward()
    assert m.embedding.weight.grad[ids[0, 0]].abs().sum() > 0
    assert m.embedding.weight.grad[0].abs().sum() == 0  # padding row
    m.eval()
    torch.testing.assert_close(m(ids, lengths), m(ids, lengths))


def test_block_stacks_take_the_dropout_and_attention_needs_the_bidirectional_layer():
    """The flipped path's one-block stacks get ``dropout`` as their residual dropout (as the
    bidirectional layer's do); Griffin's attention levels need that layer."""
    flip = model(cell="griffin", dropout=0.3)
    assert flip.split_directions and flip.fwd[0].blocks[0].drop.p == 0.3
    assert model(cell="griffin", dropout=0.3, flip_reverse=False).rnn.fwd[0].blocks[0].drop.p == 0.3
    with pytest.raises(ValueError, match="attention_every: .* need model.flip_reverse: false"):
        model(cell="griffin", num_layers=3, extras={"attention_every": 3})
    m = model(cell="griffin", num_layers=3, flip_reverse=False, hidden_size=8,
              extras={"attention_every": 3, "attention_window": 4})
    assert type(m.rnn.fwd[2].blocks[0]).__name__ == "LocalAttentionBlock"
