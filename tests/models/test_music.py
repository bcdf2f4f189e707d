"""Piano-roll RNN: NADE against brute force, Bernoulli NLL by hand, padding, frame accuracy."""
import itertools
import math

import pytest
import torch

from rnnkit.models.music import NADE, MusicConfig, PianoRollRNN, frame_counts


@torch.no_grad()
def nade_by_hand(nade, v, b_v, b_h):
    """log P(v) of one frame, the NADE's conditionals written out key by key."""
    W, V = nade.W.double(), nade.V.double()
    total = 0.0
    for k in range(v.numel()):
        h = torch.sigmoid(b_h.double() + (v[:k].double()[:, None] * W[:k]).sum(0))
        p = torch.sigmoid(b_v[k].double() + V[k] @ h)
        total += math.log(p if v[k] == 1 else 1 - p)
    return total


def test_nade_log_likelihood_is_exact_on_4_keys():
    torch.manual_seed(0)
    nade = NADE(4, 3)
    with torch.no_grad():
        nade.W.normal_(0, 1.5)
        nade.V.normal_(0, 1.5)
    b_v, b_h = torch.randn(4), torch.randn(3)
    every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)))  # (16, 4)
    with torch.no_grad():
        logp = nade.log_prob(every, b_v.expand(16, 4), b_h.expand(16, 3)).double()
    assert float(logp.exp().sum()) == pytest.approx(1.0, abs=1e-6)  # a distribution
    for v, lp in zip(every, logp):
        assert float(lp) == pytest.approx(nade_by_hand(nade, v, b_v, b_h), abs=1e-5)


def test_nade_samples_follow_its_distribution():
    torch.manual_seed(1)
    nade = NADE(4, 3)
    with torch.no_grad():
        nade.W.normal_(0, 2.0)
        nade.V.normal_(0, 2.0)
    b_v, b_h = torch.randn(4), torch.randn(3)
    every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)))
    with torch.no_grad():
        exact = nade.log_prob(every, b_v.expand(16, 4), b_h.expand(16, 3)).exp()
    n = 20000
    g = torch.Generator().manual_seed(0)
    s = nade.sample(b_v.expand(n, 4), b_h.expand(n, 3), generator=g)
    codes = (s * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(1).long()
    freq = torch.bincount(codes, minlength=16).double() / n
    assert torch.allclose(freq, exact.double(), atol=4 * (0.25 / n) ** 0.5)  # 4 sigma at p=.5
    greedy = nade.sample(b_v[None], b_h[None], greedy=True)[0]  # each key's likelier value
    assert set(greedy.tolist()) <= {0.0, 1.0}


def test_bernoulli_nll_by_hand():
    torch.manual_seed(0)
    m = PianoRollRNN(MusicConfig(cell="gru", hidden_size=5, output="bernoulli"), num_keys=3)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.out.bias.copy_(torch.tensor([0.0, math.log(3.0), -math.log(3.0)]))  # p = 1/2, 3/4, 1/4
    x = torch.tensor([[[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]])  # (1, T=2, K=3)
    lp = m.log_prob(x)
    step0 = math.log(0.5) + math.log(0.75) + math.log(0.75)
    step1 = math.log(0.5) + math.log(0.75) + math.log(0.25)
    assert lp[0].tolist() == pytest.approx([step0, step1], abs=1e-6)
    nll_per_step = -float(lp.detach().sum()) / 2
    assert nll_per_step == pytest.approx(-(step0 + step1) / 2, abs=1e-6)


@pytest.mark.parametrize("output", ["bernoulli", "nade"])
@pytest.mark.parametrize("cell", ["rnn_tanh", "gru", "lstm", "mamba"])
def test_padding_changes_nothing_and_the_first_step_sees_silence(cell, output):
    torch.manual_seed(0)
    m = PianoRollRNN(MusicConfig(cell=cell, hidden_size=8, output=output, nade_hidden=4))
    m.eval()
    a = torch.bernoulli(torch.full((1, 6, 88), 0.1))
    b = torch.bernoulli(torch.full((1, 3, 88), 0.1))
    batch = torch.zeros(2, 6, 88)
    batch[0], batch[1, :3] = a[0], b[0]
    lp = m.log_prob(batch, torch.tensor([6, 3]))
    assert torch.allclose(lp[0], m.log_prob(a)[0], atol=1e-5)
    assert torch.allclose(lp[1, :3], m.log_prob(b)[0], atol=1e-5) and (lp[1, 3:] == 0).all()
    assert (lp[:, :3] < 0).all()
    # step t depends only on steps < t: changing the last step leaves the others alone
    a2 = a.clone()
    a2[0, -1] = 1 - a2[0, -1]
    lp2 = m.log_prob(a2)
    assert torch.allclose(lp2[0, :-1], m.log_prob(a)[0, :-1], atol=1e-6)
    pred = m.predict_frames(batch, torch.tensor([6, 3]))
    assert pred.shape == batch.shape and (pred[1, 3:] == 0).all()
    u, state = m.advance(torch.zeros(1, 1, 88))
    assert m.sample_step(u[:, -1]).shape == (1, 88)


def test_frame_accuracy_counts_by_hand():
    pred = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 1, 0]], dtype=torch.float32)
    true = torch.tensor([[1, 0, 0, 1], [0, 0, 0, 0], [1, 0, 1, 0]], dtype=torch.float32)
    tp, fp, fn = frame_counts(pred, true)
    assert (tp, fp, fn) == (3, 1, 1)  # Bay et al.: 3 / (3 + 1 + 1) = 0.6 over the frames
    assert tp / (tp + fp + fn) == pytest.approx(0.6)


def test_bad_configs_name_their_key():
    for kw, msg in (({"output": "softmax"}, "model.output"), ({"dropout": 1.0}, "model.dropout"),
                    ({"nade_hidden": 0}, "model.nade_hidden"),
                    ({"extras": {"bidirectional": True}}, "unidirectional")):
        with pytest.raises(ValueError, match=msg):
            PianoRollRNN(MusicConfig(**kw))
