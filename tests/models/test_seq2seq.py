"""Seq2Seq with attention: masks, attention math, greedy/beam equivalences, learning a task."""
import math

import pytest
import torch

from rnnkit.models.seq2seq import Attention, Seq2Seq, Seq2SeqConfig, length_penalty

PAD, BOS, EOS = 0, 2, 3


def small(cell="gru", attention="general", **kw):
    cfg = Seq2SeqConfig(cell=cell, embed_size=16, hidden_size=8, dec_hidden_size=16,
                        attention=attention, attn_size=12, dropout=0.0, **kw)
    torch.manual_seed(0)
    return Seq2Seq(cfg, src_vocab=20, tgt_vocab=15).eval()


def batch():
    """Three sources of lengths 6, 4, 2 (padded with 0)."""
    g = torch.Generator().manual_seed(1)
    src = torch.randint(4, 20, (3, 6), generator=g)
    lengths = torch.tensor([6, 4, 2])
    src[1, 4:] = PAD
    src[2, 2:] = PAD
    tgt = torch.randint(4, 15, (3, 5), generator=g)
    tgt[:, 0] = BOS
    return src, lengths, tgt


@pytest.mark.parametrize("attention", ["general", "dot", "additive"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_attention_sums_to_one_and_ignores_padding(cell, attention):
    model = small(cell, attention, tie_embeddings=False) if attention != "dot" else None
    if attention == "dot":  # dot needs Hd = 2H
        cfg = Seq2SeqConfig(cell=cell, embed_size=16, hidden_size=8, dec_hidden_size=16,
                            attention="dot", dropout=0.0)
        torch.manual_seed(0)
        model = Seq2Seq(cfg, 20, 15).eval()
    src, lengths, tgt = batch()
    logits, attn = model(src, lengths, tgt)
    assert logits.shape == (3, 5, 15) and attn.shape == (3, 5, 6)
    torch.testing.assert_close(attn.sum(-1), torch.ones(3, 5))
    assert bool((attn[1, :, 4:] == 0).all()) and bool((attn[2, :, 2:] == 0).all())
    assert bool((attn[2, :, :2] > 0).all())
    # the padding's content is irrelevant: other pad-position tokens give the same output
    src2 = src.clone()
    src2[1, 4:] = 7
    src2[2, 2:] = 9
    logits2, attn2 = model(src2, lengths, tgt)
    torch.testing.assert_close(logits2, logits)
    torch.testing.assert_close(attn2, attn)


def test_general_and_additive_scores_match_the_formulas():
    torch.manual_seed(0)
    B, S, M, Q = 2, 4, 6, 5
    memory, query = torch.randn(B, S, M), torch.randn(B, Q)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    gen = Attention("general", Q, M, 7)
    ctx, a = gen(query, memory, gen.prepare(memory), mask)
    e = torch.einsum("bq,qm,bsm->bs", query, gen.W_a.weight, memory)
    e1 = torch.softmax(e[1, :2], 0)
    torch.testing.assert_close(a[0], torch.softmax(e[0], 0))
    torch.testing.assert_close(a[1], torch.cat([e1, torch.zeros(2)]))
    torch.testing.assert_close(ctx[1], e1[0] * memory[1, 0] + e1[1] * memory[1, 1])
    add = Attention("bahdanau", Q, M, 7)
    _, a = add(query, memory, add.prepare(memory), mask)
    e = (torch.tanh(memory @ add.W_k.weight.T + (query @ add.W_q.weight.T + add.W_q.bias)[:, None])
         @ add.v.weight[0])
    torch.testing.assert_close(a[0], torch.softmax(e[0], 0))
    with pytest.raises(ValueError, match="dot.*needs dec_hidden_size == 2 \\* hidden_size"):
        Attention("dot", 5, 6, 7)


def test_length_penalty_is_gnmt():
    L = torch.tensor([1, 7])
    torch.testing.assert_close(length_penalty(L, 1.0), torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(length_penalty(L, 0.0), torch.tensor([1.0, 1.0]))
    assert float(length_penalty(torch.tensor(13), 0.5)) == pytest.approx(math.sqrt(3.0))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_beam_size_one_equals_greedy(cell):
    model = small(cell)
    src, lengths, _ = batch()
    g = model.greedy(src, lengths, max_len=12)
    b = model.beam_search(src, lengths, beam_size=1, max_len=12, alpha=0.6)
    assert [h["tokens"] for h in b] == [h["tokens"] for h in g]
    assert [h["score"] for h in b] == pytest.approx([h["score"] for h in g], abs=1e-5)
    for hb, hg in zip(b, g):
        torch.testing.assert_close(hb["attention"], hg["attention"])


@pytest.mark.parametrize("beam", [1, 4])
def test_padded_batch_decodes_each_sentence_as_if_alone(beam):
    model = small("gru")
    src, lengths, _ = batch()
    together = model.beam_search(src, lengths, beam_size=beam, max_len=12)
    for i in range(3):
        n = int(lengths[i])
        alone = model.beam_search(src[i:i + 1, :n], lengths[i:i + 1], beam_size=beam, max_len=12)[0]
        assert alone["tokens"] == together[i]["tokens"]
        assert alone["score"] == pytest.approx(together[i]["score"], abs=1e-4)
        rows = min(len(alone["tokens"]) + 1, 12)  # + <eos> unless max_len was reached
        assert together[i]["attention"].shape == (rows, n)
        torch.testing.assert_close(together[i]["attention"], alone["attention"], atol=1e-5, rtol=1e-4)


def _sequence_logprob(model, src, lengths, tokens):
    """log p(tokens + <eos> | src) by a teacher-forced forward pass."""
    y = torch.tensor([[BOS] + tokens])
    logits, _ = model(src, lengths, y)
    logp = torch.log_softmax(logits[0], -1)
    return float(sum(logp[t, k] for t, k in enumerate(tokens + [EOS])).detach())


def test_beam_scores_are_the_sequence_logprobs_and_beat_greedy_on_average():
    model = small("gru", tie_embeddings=False)
    # a bias towards <eos> so that hypotheses end within max_len
    with torch.no_grad():
        model.out.bias[EOS] += 2.0
    src, lengths, _ = batch()
    g = model.greedy(src, lengths, max_len=15)
    b = model.beam_search(src, lengths, beam_size=5, max_len=15, alpha=0.0)
    for i, h in enumerate(b):
        n = int(lengths[i])
        lp = _sequence_logprob(model, src[i:i + 1, :n], lengths[i:i + 1], h["tokens"])
        assert h["score"] == pytest.approx(lp, abs=1e-4)
    # alpha = 0 ranks by log-probability: the beam's winner is never worse than greedy here
    assert all(hb["score"] >= hg["score"] - 1e-5 for hb, hg in zip(b, g))


def test_teacher_forcing_zero_feeds_own_predictions():
    """With ratio 0 the decoder ignores the gold tokens after <bos>: its argmaxes are greedy's."""
    model = small("gru", teacher_forcing=0.0)
    model.train()  # teacher forcing applies in training; dropout is 0
    src, lengths, tgt = batch()
    logits, _ = model(src, lengths, tgt)
    model.eval()
    greedy = model.greedy(src, lengths, max_len=5)
    for i, h in enumerate(greedy):
        k = min(len(h["tokens"]) + 1, 5)  # up to and including <eos>
        assert logits[i, :k].argmax(-1).tolist() == (h["tokens"] + [EOS])[:k]
    model.train()
    logits_tf, _ = model(src, lengths, tgt, teacher_forcing=1.0)  # gold inputs: different
    assert not torch.allclose(logits_tf[:, 1:], logits[:, 1:])


def test_config_errors():
    with pytest.raises(ValueError, match="tie_embeddings needs dec_hidden_size == embed_size"):
        Seq2Seq(Seq2SeqConfig(embed_size=8, dec_hidden_size=16), 10, 10)
    with pytest.raises(ValueError, match="teacher_forcing=1.5"):
        Seq2Seq(Seq2SeqConfig(teacher_forcing=1.5), 10, 10)


def test_learns_to_reverse_digit_strings():
    """A tiny reverse task (digits 4..11, lengths 2-5) reaches exact match in a few seconds."""
    torch.manual_seed(0)
    cfg = Seq2SeqConfig(cell="gru", embed_size=32, hidden_size=16, dec_hidden_size=32,
                        attention="general", dropout=0.0, tie_embeddings=True)
    model = Seq2Seq(cfg, src_vocab=12, tgt_vocab=12)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)

    def sample(n):
        lengths = torch.randint(2, 6, (n,), generator=g)
        seqs = [torch.randint(4, 12, (int(k),), generator=g).tolist() for k in lengths]
        src = torch.tensor([s + [EOS] + [PAD] * (5 - len(s)) for s in seqs])  # (n, 6)
        tgt = torch.tensor([[BOS] + s[::-1] + [EOS] + [PAD] * (5 - len(s)) for s in seqs])
        return src, lengths + 1, tgt, seqs

    # 400 steps: at 300 the run sat on an Adam spike's edge, and float32 summation order alone
    # (compiled GRU loop vs Python loop, gradients equal to 1e-7) moved it between 94 and 98
    for _ in range(400):
        src, lengths, tgt, _ = sample(64)
        logits, _ = model(src, lengths, tgt[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(),
                                                 ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    src, lengths, _, seqs = sample(100)
    hyps = model.beam_search(src, lengths, beam_size=3, max_len=8)
    exact = sum(h["tokens"] == s[::-1] for h, s in zip(hyps, seqs))
    assert exact >= 97, exact
    # reversal: the first output token attends mostly to the last real source token
    h = hyps[0]
    assert int(h["attention"][0].argmax()) == len(seqs[0]) - 1


@pytest.mark.parametrize("cell, extras", [("mamba", {"state_size": 3}), ("xlstm", {"num_heads": 2}),
                                          ("deep_lru", {"state_size": 4}), ("griffin", {})])
def test_a_block_stack_encodes_and_each_sentence_decodes_as_if_alone(cell, extras):
    """``model.cell`` a block: a bidirectional stack of them encodes; the bridge reads its
    last forward and first backward outputs, the attention masks the padding, and a padded
    batch decodes each sentence as it decodes alone."""
    from rnnkit.models.sequence import BidirectionalBlockStack

    model = small(cell, extras=extras)
    assert isinstance(model.encoder, BidirectionalBlockStack) and model.dec_kind == "gru"
    src, lengths, tgt = batch()
    logits, attn = model(src, lengths, tgt)
    assert logits.shape == (3, 5, 15) and bool((attn[2, :, 2:] == 0).all())
    src2 = src.clone()
    src2[2, 2:] = 9  # other padding tokens: the same outputs
    torch.testing.assert_close(model(src2, lengths, tgt)[0], logits)
    together = model.beam_search(src, lengths, beam_size=3, max_len=8)
    for i in range(3):
        n = int(lengths[i])
        alone = model.beam_search(src[i:i + 1, :n], lengths[i:i + 1], beam_size=3, max_len=8)[0]
        assert alone["tokens"] == together[i]["tokens"]
        assert alone["score"] == pytest.approx(together[i]["score"], abs=1e-4)
