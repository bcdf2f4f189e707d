"""Tagger: padding and batch-mates never change a sentence's emissions, loss or tags."""
import pytest
import torch
import torch.nn.functional as F

from rnnkit.models.tagger import CharEncoder, TagBatch, Tagger, TaggerConfig

CHARS = {c: i + 2 for i, c in enumerate("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.")}


def make_batch(sents, tags=None, vocab_size=20) -> TagBatch:
    """Sentences of tokens -> TagBatch; word ids from a hash so that they are stable."""
    B, T = len(sents), max(map(len, sents))
    words = torch.zeros(B, T, dtype=torch.long)
    index = torch.zeros(B, T, dtype=torch.long)
    rows: dict[str, int] = {}
    for b, s in enumerate(sents):
        words[b, :len(s)] = torch.tensor([2 + sum(map(ord, w)) % (vocab_size - 2) for w in s])
        index[b, :len(s)] = torch.tensor([rows.setdefault(w, len(rows)) for w in s])
    C = max(len(w) for w in rows)
    chars = torch.zeros(len(rows), C, dtype=torch.long)
    for w, u in rows.items():
        chars[u, :len(w)] = torch.tensor([CHARS.get(c, 1) for c in w])
    char_lengths = torch.tensor([len(w) for w in rows])
    t = None
    if tags is not None:
        t = torch.zeros(B, T, dtype=torch.long)
        for b, y in enumerate(tags):
            t[b, :len(y)] = torch.tensor(y)
    return TagBatch(words, torch.tensor([len(s) for s in sents]), chars, char_lengths, index, t)


NC = len(CHARS) + 2  # characters plus padding and <unk>
SENT = ["the", "Cat", "sat", "."]
TAGS = [0, 1, 2, 3]
OTHER = ["a", "very", "long", "sentence", "with", "Different", "wordsABC", "in", "it", "."]


@pytest.mark.parametrize("kw", [
    dict(char_encoder="lstm", output="softmax"),
    dict(char_encoder="cnn", output="crf"),
    dict(char_encoder="lstm", char_cell="gru", cell="gru", output="crf", num_layers=2),
    dict(char_encoder="none", cell="sru", output="softmax"),
    dict(char_encoder="cnn", cell="mamba", output="crf", num_layers=2),
    dict(char_encoder="lstm", cell="griffin", output="softmax"),
])
def test_padding_and_batch_mates_do_not_change_a_sentence(kw):
    torch.manual_seed(0)
    cfg = TaggerConfig(word_dim=8, char_dim=6, char_hidden=5, hidden_size=7, dropout=0.3, **kw)
    model = Tagger(cfg, num_words=20, num_chars=len(CHARS) + 2, num_tags=4).eval()
    alone = make_batch([SENT], [TAGS])
    both = make_batch([OTHER, SENT], [[0] * len(OTHER), TAGS])  # SENT padded by 6 steps
    e1, e2 = model(alone), model(both)
    torch.testing.assert_close(e2[1, :4], e1[0], atol=1e-5, rtol=1e-5)
    assert float(e2[1, 4:].detach().abs().sum()) == 0.0  # padded steps are zero
    assert model.decode(both)[1] == model.decode(alone)[0]
    l_alone, n_alone = model.loss(alone)
    l_both, n_both = model.loss(both)
    l_other, _ = model.loss(make_batch([OTHER], [[0] * len(OTHER)]))
    assert (n_alone, n_both) == (4, 14)
    torch.testing.assert_close(l_both, l_alone + l_other, atol=1e-4, rtol=1e-5)


def test_softmax_loss_is_token_cross_entropy_and_crf_loss_is_its_nll():
    torch.manual_seed(1)
    b = make_batch([SENT, ["a", "cat"]], [TAGS, [0, 1]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    m = Tagger(TaggerConfig(word_dim=8, char_dim=6, char_hidden=5, hidden_size=7), 20, NC, 4).eval()
    e = m(b)
    loss, n = m.loss(b)
    ref = F.cross_entropy(e[mask], b.tags[mask], reduction="sum")
    torch.testing.assert_close(loss, ref)
    assert n == 6 and m.decode(b) == [e[0].argmax(-1).tolist(), e[1, :2].argmax(-1).tolist()]
    c = Tagger(TaggerConfig(word_dim=8, char_dim=6, char_hidden=5, hidden_size=7, output="crf"),
               20, NC, 4).eval()
    loss, _ = c.loss(b)
    torch.testing.assert_close(loss, -c.crf.log_likelihood(c(b), b.tags, mask).sum())


def test_char_features_see_case_and_ignore_char_padding():
    torch.manual_seed(2)
    for kind in ("lstm", "cnn"):
        enc = CharEncoder(kind, NC, 6, 5).eval()
        one = torch.tensor([[CHARS[c] for c in "cat"]])
        padded = torch.tensor([[CHARS[c] for c in "cat"] + [0, 0], [CHARS[c] for c in "Cats."]])
        a = enc(one, torch.tensor([3]))
        b = enc(padded, torch.tensor([3, 5]))
        torch.testing.assert_close(b[0], a[0], atol=1e-6, rtol=1e-6)
        upper = enc(torch.tensor([[CHARS["C"], CHARS["a"], CHARS["t"]]]), torch.tensor([3]))
        assert not torch.allclose(upper, a)
        assert a.shape == (1, enc.out_dim) == (1, 10 if kind == "lstm" else 5)


def test_training_fits_a_toy_tagging_problem():
    """Tag = whether a word is capitalised (0/1), 2 for '.': the char features must learn case."""
    import random

    torch.manual_seed(3)
    rng = random.Random(0)
    lower = "abcdef"  # few letters, so that every capital occurs in training

    def word():
        w = "".join(rng.choice(lower) for _ in range(rng.randint(1, 4)))
        return w.capitalize() if rng.random() < 0.5 else w

    sents = [[word() for _ in range(rng.randint(1, 5))] + ["."] for _ in range(16)]
    tags = [[1 if w[0].isupper() else 2 if w == "." else 0 for w in s] for s in sents]
    b = make_batch(sents, tags)
    b = b._replace(words=torch.where(b.words > 0, 2, 0))  # one word id: only chars can tell
    m = Tagger(TaggerConfig(word_dim=4, char_dim=8, char_hidden=8, hidden_size=8, dropout=0.0),
               20, NC, 3)
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    for _ in range(80):
        loss, n = m.loss(b)
        opt.zero_grad()
        (loss / n).backward()
        opt.step()
    m.eval()
    assert m.decode(b) == tags
    new = make_batch([["Fdb", "ce", "Ea", "."]])._replace(words=torch.tensor([[2, 2, 2, 2]]))
    assert m.decode(new) == [[1, 0, 1, 2]]  # unseen words, tagged from their characters


def test_config_errors():
    with pytest.raises(ValueError, match="no token features"):
        Tagger(TaggerConfig(word_dim=0, char_encoder="none"), 5, 5, 3)
    with pytest.raises(ValueError, match="model.dropout"):
        Tagger(TaggerConfig(dropout=1.0), 5, 5, 3)
    with pytest.raises(ValueError, match="char_kernel"):
        Tagger(TaggerConfig(char_encoder="cnn", char_kernel=2), 5, 5, 3)
    with pytest.raises(ValueError, match="unknown cell"):
        Tagger(TaggerConfig(cell="nope"), 5, 5, 3)
    with pytest.raises(ValueError, match="no tags"):
        Tagger(TaggerConfig(), 5, 5, 3).loss(make_batch([SENT]))
