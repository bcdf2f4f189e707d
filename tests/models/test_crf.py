"""Linear-chain CRF against brute-force enumeration of every tag sequence."""
import itertools

import pytest
import torch

from rnnkit.models.crf import CRF


def brute(crf: CRF, e: torch.Tensor):
    """(log Z, best path, best score, {path: score}) of one sentence e (n, K) by enumeration."""
    n, K = e.shape
    scores = {}
    for y in itertools.product(range(K), repeat=n):
        s = crf.start[y[0]] + crf.end[y[-1]] + sum(e[t, y[t]] for t in range(n))
        s = s + sum(crf.transitions[y[t - 1], y[t]] for t in range(1, n))
        scores[y] = s
    all_s = torch.stack(list(scores.values()))
    best = max(scores, key=lambda y: float(scores[y].detach()))
    return torch.logsumexp(all_s, 0), list(best), scores[best], scores


@pytest.fixture
def crf():
    torch.manual_seed(0)
    c = CRF(3).double()
    with torch.no_grad():  # larger than the init so that transitions matter for the argmax
        for p in c.parameters():
            p.normal_(0, 1.0)
    return c


def test_log_partition_score_and_viterbi_match_enumeration(crf):
    lengths = [4, 1, 3, 2]
    B, T, K = len(lengths), max(lengths), 3
    e = torch.randn(B, T, K, dtype=torch.float64) * 2
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    tags = torch.randint(0, K, (B, T))
    logz = crf.log_partition(e, mask)
    score = crf.score(e, tags, mask)
    paths = crf.decode(e, mask)
    for b, n in enumerate(lengths):
        z, best, _, scores = brute(crf, e[b, :n])
        torch.testing.assert_close(logz[b], z)
        torch.testing.assert_close(score[b], scores[tuple(tags[b, :n].tolist())])
        assert paths[b] == best and len(paths[b]) == n
    ll = crf.log_likelihood(e, tags, mask)
    assert bool((ll < 0).all())
    # probabilities of all sequences of one sentence sum to one
    _, _, _, scores = brute(crf, e[0])
    total = sum(torch.exp(s - logz[0]) for s in scores.values())
    torch.testing.assert_close(total, torch.tensor(1.0, dtype=torch.float64))


def test_nll_reductions_and_gradient_match_enumeration(crf):
    e = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    tags = torch.tensor([[0, 2, 1], [1, 1, 0]])
    nll = crf(e, tags, mask)
    ref = 0
    for b, n in enumerate([3, 2]):
        z, _, _, scores = brute(crf, e[b, :n])
        ref = ref + z - scores[tuple(tags[b, :n].tolist())]
    torch.testing.assert_close(nll, ref)
    g, = torch.autograd.grad(nll, e, retain_graph=True)
    g_ref, = torch.autograd.grad(ref, e)
    torch.testing.assert_close(g, g_ref)
    assert float(g[1, 2].abs().sum()) == 0.0  # a padded step gets no gradient
    torch.testing.assert_close(crf(e, tags, mask, reduction="mean"), nll / 2)
    assert crf(e, tags, mask, reduction="none").shape == (2,)


def test_padding_does_not_change_a_sentence(crf):
    e = torch.randn(1, 3, 3, dtype=torch.float64)
    tags = torch.tensor([[2, 0, 1]])
    alone = (crf.log_partition(e, torch.ones(1, 3, dtype=torch.bool)),
             crf.decode(e, torch.ones(1, 3, dtype=torch.bool)))
    padded = torch.cat([e, torch.randn(1, 4, 3, dtype=torch.float64) * 50], 1)  # garbage padding
    mask = torch.tensor([[1, 1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    torch.testing.assert_close(crf.log_partition(padded, mask), alone[0])
    assert crf.decode(padded, mask) == alone[1]
    torch.testing.assert_close(crf.score(padded, torch.cat([tags, torch.full((1, 4), 2)], 1), mask),
                               crf.score(e, tags, torch.ones(1, 3, dtype=torch.bool)))


def test_transitions_steer_decoding():
    crf = CRF(2)
    with torch.no_grad():
        crf.start.zero_()
        crf.end.zero_()
        crf.transitions.copy_(torch.tensor([[0.0, -100.0], [0.0, 0.0]]))  # 0 -> 1 forbidden
    e = torch.tensor([[[1.0, 0.0], [0.0, 0.5]]])  # argmax per step would be [0, 1]
    assert crf.decode(e, torch.ones(1, 2, dtype=torch.bool)) == [[0, 0]]


def test_bad_shapes():
    crf = CRF(3)
    with pytest.raises(ValueError, match=r"emissions of shape \(B, T, 3\)"):
        crf.log_partition(torch.randn(1, 2, 4), torch.ones(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one step"):
        crf.decode(torch.randn(1, 2, 3), torch.tensor([[False, False]]))
    with pytest.raises(ValueError, match="reduction"):
        crf(torch.randn(1, 2, 3), torch.zeros(1, 2, dtype=torch.long), torch.ones(1, 2), "max")
    with pytest.raises(ValueError, match="num_tags"):
        CRF(0)
