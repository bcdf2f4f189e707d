"""Language-model pipeline: model, loss/metrics against hand computation, generation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rnnkit.data import Vocab
from rnnkit.generate import encode_prompt, filter_logits, generate, sample_next
from rnnkit.models.lm import LanguageModel, LMConfig, detach_state
from rnnkit.tasks.lm import LMDataConfig, evaluate_ids, lm_metrics


def _lm(**kw):
    torch.manual_seed(0)
    cfg = dict(embedding_size=12, hidden_size=12, num_layers=2)
    cfg.update(kw)
    return LanguageModel(LMConfig(**cfg), 9)


def test_model_matches_torch_lstm_pipeline():
    m = _lm(tie_weights=True).eval()
    ref = torch.nn.LSTM(12, 12, 2)
    ref.load_state_dict({k[len("rnn."):]: v for k, v in m.state_dict().items() if k.startswith("rnn.")})
    x = torch.randint(0, 9, (5, 3))
    logits, (h, c) = m(x)
    out, (h2, c2) = ref(F.embedding(x, m.embedding.weight))
    expected = out @ m.embedding.weight.T + m.decoder.bias  # tied decoder
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, h2, atol=1e-6, rtol=1e-5)
    assert m.decoder.weight is m.embedding.weight
    n_params = sum(p.numel() for p in m.parameters())
    assert n_params == 9 * 12 + 9 + sum(p.numel() for p in ref.parameters())  # tied: E counted once


def test_carried_state_continues_the_sequence():
    m = _lm().eval()
    x = torch.randint(0, 9, (8, 2))
    full, _ = m(x)
    a, s = m(x[:3])
    b, _ = m(x[3:], detach_state(s))
    torch.testing.assert_close(torch.cat([a, b]), full, atol=1e-6, rtol=1e-5)
    assert all(not t.requires_grad for t in detach_state(s))


def test_tie_weights_needs_equal_sizes_and_no_bidirectional():
    with pytest.raises(ValueError, match=r"tie_weights needs .*hidden_size=16.*embedding_size=12"):
        _lm(hidden_size=16, tie_weights=True)
    with pytest.raises(ValueError, match="must be unidirectional"):
        _lm(extras={"bidirectional": True})
    with pytest.raises(ValueError, match=r"model.dropout=1.5; expected a probability"):
        _lm(dropout=1.5)


def test_embedding_dropout_drops_whole_rows():
    m = _lm(embedding_dropout=0.5)
    m.train()
    torch.manual_seed(3)
    x = torch.tensor([[1, 1, 2, 2, 1]]).T  # (T=5, B=1): words 1 and 2 repeated
    e = m._embed(x)[:, 0]  # (T, E)
    w = m.embedding.weight
    for t, tok in enumerate(x[:, 0].tolist()):
        row = e[t]
        assert torch.allclose(row, torch.zeros_like(row)) or torch.allclose(row, 2 * w[tok])
    # every occurrence of a word gets the same decision
    assert torch.equal(e[0], e[1]) and torch.equal(e[0], e[4]) and torch.equal(e[2], e[3])
    m.eval()
    torch.testing.assert_close(m._embed(x)[:, 0], w[x[:, 0]])


def test_init_range():
    m = _lm(init_range=0.1)
    assert all(p.abs().max() <= 0.1 for p in m.parameters())


def test_evaluate_ids_equals_hand_computation():
    m = _lm().eval()
    ids = torch.randint(0, 9, (41,))
    d = LMDataConfig(eval_batch_size=1, bptt=7)
    with torch.no_grad():
        logits, _ = m(ids[:-1].unsqueeze(1))  # one stream, full context
        expected = F.cross_entropy(logits[:, 0], ids[1:]).item()
    assert evaluate_ids(m, ids, d) == pytest.approx(expected, rel=1e-5)
    met = lm_metrics(expected, "char")
    assert met["ppl"] == pytest.approx(math.exp(expected)) and met["bpc"] == pytest.approx(expected / math.log(2))
    assert "bpc" not in lm_metrics(expected, "word")


def test_training_step_loss_reductions(tmp_path):
    from rnnkit.tasks.lm import LMTask
    from rnnkit.train.config import build_run_config

    text = "abcabcabd\n" * 30
    (tmp_path / "t.txt").write_text(text)
    raw = {"task": "lm", "data": {"corpus": str(tmp_path / "t.txt"), "batch_size": 2, "bptt": 5},
           "model": {"embedding_size": 4, "hidden_size": 4, "num_layers": 1}}
    task = LMTask(build_run_config(raw))
    task.setup(0, 1)
    x, y = next(iter(task.train_batches(0, 0)))
    out = task.training_step(task.model, (x, y), None)
    logits, _ = task.model(x)
    ce = F.cross_entropy(logits.reshape(-1, len(task.vocab)), y.reshape(-1))
    assert out.loss.item() == pytest.approx(ce.item(), rel=1e-6) and out.n_items == 10
    raw["data"]["loss_reduction"] = "sum_time"
    task2 = LMTask(build_run_config(raw))
    task2.model.load_state_dict(task.model.state_dict())
    task2.setup(0, 1)
    out2 = task2.training_step(task2.model, (x, y), None)
    assert out2.loss.item() == pytest.approx(5 * ce.item(), rel=1e-6)  # summed over T=5
    assert out2.loss_value == pytest.approx(ce.item(), rel=1e-6)
    assert isinstance(out2.carry, tuple) and not out2.carry[0].requires_grad
    # DDP sharding: rank r of 2 gets column r of the global batch
    task.setup(1, 2)
    x1, _ = next(iter(task.train_batches(0, 0)))
    assert torch.equal(x1[:, 0], x[:, 1])


# ---------------------------------------------------------------------------- generation


def test_filter_logits_top_k_top_p():
    z = torch.log(torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05]))
    assert torch.isinf(filter_logits(z, top_k=2)[2:]).all() and torch.isfinite(filter_logits(z, top_k=2)[:2]).all()
    # nucleus p=0.7: 0.5 + 0.2 reaches 0.7 -> keep 2; p=0.71 -> keep 3
    assert torch.isfinite(filter_logits(z, top_p=0.7)).sum() == 2
    assert torch.isfinite(filter_logits(z, top_p=0.71)).sum() == 3
    assert torch.isfinite(filter_logits(z, top_p=0.1)).sum() == 1  # the top token always stays
    g = torch.Generator().manual_seed(0)
    draws = {sample_next(z, top_k=2, generator=g) for _ in range(200)}
    assert draws == {0, 1}
    assert sample_next(z, temperature=0) == 0


def test_sampling_frequencies_follow_temperature():
    z = torch.log(torch.tensor([0.6, 0.3, 0.1]))
    g = torch.Generator().manual_seed(1)
    n = 4000
    counts = torch.bincount(torch.tensor([sample_next(z, temperature=2.0, generator=g) for _ in range(n)]),
                            minlength=3).float() / n
    expected = torch.softmax(z / 2.0, 0)
    torch.testing.assert_close(counts, expected, atol=0.03, rtol=0)


def _char_vocab():
    return Vocab.build(list("abcdefgh \n"), specials=(), level="char")


def test_generate_greedy_matches_manual_argmax_and_is_seeded():
    v = _char_vocab()
    torch.manual_seed(0)
    m = LanguageModel(LMConfig(embedding_size=6, hidden_size=6, num_layers=1), len(v)).eval()
    out = "".join(generate(m, v, "abc", 6, temperature=0))
    ids = v.encode(list("abc"))
    with torch.no_grad():
        for _ in range(6):
            logits, _ = m(torch.tensor(ids).unsqueeze(1))
            ids.append(int(logits[-1, 0].argmax()))
    assert out == "".join(v.decode(ids[3:]))
    a = "".join(generate(m, v, "ab", 30, temperature=1.0, top_p=0.9, seed=5))
    b = "".join(generate(m, v, "ab", 30, temperature=1.0, top_p=0.9, seed=5))
    c = "".join(generate(m, v, "ab", 30, temperature=1.0, top_p=0.9, seed=6))
    assert a == b and a != c and len(a) == 30


def test_prompt_errors():
    v = _char_vocab()
    with pytest.raises(ValueError, match=r"--prompt: 'z' at position 2 is not in the checkpoint's vocabulary \(10 characters\)"):
        encode_prompt(v, "abz")
    assert encode_prompt(v, "") == [v.stoi["\n"]]
    m = LanguageModel(LMConfig(embedding_size=4, hidden_size=4, num_layers=1), len(v))
    with pytest.raises(ValueError, match="--top-p 1.5"):
        next(generate(m, v, "a", 3, top_p=1.5))
    with pytest.raises(ValueError, match="--temperature -1"):
        next(generate(m, v, "a", 3, temperature=-1))
