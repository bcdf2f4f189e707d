"""Tests of rnnkit.data.lm: batchify, fixed/variable truncated-BPTT batches, resume, load_corpus."""

import gzip
import statistics

import pytest
import torch

from rnnkit.data.lm import BPTTBatches, batchify, load_corpus
from rnnkit.data.vocab import Vocab

# ----------------------------------------------------------------------------- batchify


def test_batchify_hand_computed():
    data = batchify(torch.arange(26), 2)
    assert data.shape == (13, 2) and data.dtype == torch.long
    assert data[:, 0].tolist() == list(range(13)) and data[:, 1].tolist() == list(range(13, 26))
    assert data[0].tolist() == [0, 13] and data[12].tolist() == [12, 25]
    assert data.is_contiguous()


def test_batchify_drops_remainder():
    data = batchify(torch.arange(11), 3)  # L = 3, tokens 9 and 10 dropped
    assert data.tolist() == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]


def test_batchify_matches_pytorch_examples():
    ids = torch.randint(0, 50, (103,))
    B = 4
    nbatch = ids.size(0) // B  # pytorch/examples word_language_model/main.py
    ref = ids.narrow(0, 0, nbatch * B).view(B, -1).t().contiguous()
    assert torch.equal(batchify(ids, B), ref)


@pytest.mark.parametrize(
    "ids, B, match",
    [
        (torch.arange(6).view(2, 3), 2, r"shape \(2, 3\); expected a 1-D tensor"),
        (torch.zeros(6), 2, "dtype torch.float32; expected an integer tensor"),
        (torch.arange(6), 0, "batch_size=0; expected an integer >= 1"),
        (torch.arange(3), 4, "3 tokens is fewer than batch_size=4"),
        ([1, 2, 3], 1, "shape list"),
    ],
)
def test_batchify_errors(ids, B, match):
    with pytest.raises(ValueError, match=match):
        batchify(ids, B)


# ----------------------------------------------------------------------------- fixed BPTT


def test_fixed_bptt_hand_computed():
    data = batchify(torch.arange(26), 2)  # (13, 2)
    batches = list(BPTTBatches(data, bptt=4))
    assert len(batches) == 3
    x, y = batches[0]
    assert x.tolist() == [[0, 13], [1, 14], [2, 15], [3, 16]]
    assert y.tolist() == [[1, 14], [2, 15], [3, 16], [4, 17]]
    x, y = batches[1]
    assert x.tolist() == [[4, 17], [5, 18], [6, 19], [7, 20]]
    assert y.tolist() == [[5, 18], [6, 19], [7, 20], [8, 21]]
    x, y = batches[2]
    assert x.tolist() == [[8, 21], [9, 22], [10, 23], [11, 24]]
    assert y.tolist() == [[9, 22], [10, 23], [11, 24], [12, 25]]


def test_fixed_bptt_last_batch_is_short():
    data = batchify(torch.arange(26), 2)
    b = BPTTBatches(data, bptt=5)
    assert b.schedule() == [(0, 5), (5, 5), (10, 2)] and len(b) == 3
    x, y = list(b)[-1]
    assert x.tolist() == [[10, 23], [11, 24]] and y.tolist() == [[11, 24], [12, 25]]


def test_fixed_bptt_matches_pytorch_examples_get_batch():
    data = batchify(torch.randint(0, 100, (1000,)), 7)
    bptt = 9
    ref = []
    for i in range(0, data.size(0) - 1, bptt):  # word_language_model/main.py
        seq_len = min(bptt, len(data) - 1 - i)
        ref.append((data[i : i + seq_len], data[i + 1 : i + 1 + seq_len]))
    got = list(BPTTBatches(data, bptt))
    assert len(got) == len(ref)
    for (x, y), (rx, ry) in zip(got, ref, strict=True):
        assert torch.equal(x, rx) and torch.equal(y, ry)


# ----------------------------------------------------------------------------- variable BPTT


def _cover(batches, data):
    xs = torch.cat([x for x, _ in batches])
    ys = torch.cat([y for _, y in batches])
    return torch.equal(xs, data[:-1]) and torch.equal(ys, data[1:])


def test_variable_bptt_is_deterministic_and_covers_every_token_once():
    data = batchify(torch.arange(6000), 3)  # (2000, 3)
    a = BPTTBatches(data, bptt=20, variable=True, seed=7)
    b = BPTTBatches(data, bptt=20, variable=True, seed=7)
    for epoch in range(3):
        sa, sb = a.schedule(epoch), b.schedule(epoch)
        assert sa == sb
        assert _cover(list(a.iter_epoch(epoch)), data)
        lengths = [T for _, T in sa]
        assert all(5 <= T <= 40 for T in lengths[:-1]) and 1 <= lengths[-1] <= 40
        assert sum(lengths) == data.size(0) - 1
        assert [s for s, _ in sa] == [sum(lengths[:k]) for k in range(len(lengths))]
    assert a.schedule(0) != a.schedule(1)
    assert a.schedule(0) != BPTTBatches(data, bptt=20, variable=True, seed=8).schedule(0)


def test_variable_bptt_pinned_stream():
    # pins the generator so a schedule (and thus a resumed run) never silently changes
    data = batchify(torch.arange(2000), 2)
    b = BPTTBatches(data, bptt=20, variable=True, seed=1)
    assert [T for _, T in b.schedule(0)][:12] == [20, 15, 25, 8, 21, 23, 15, 21, 20, 19, 20, 13]
    assert [T for _, T in b.schedule(1)][:12] == [8, 28, 16, 21, 21, 19, 5, 19, 31, 17, 24, 18]


def test_variable_bptt_distribution_matches_awd_lstm():
    # E[T] = 0.95 E[int N(35, 5^2)] + 0.05 E[int N(17.5, 5^2)] ~ 0.95 * 34.5 + 0.05 * 17.0 = 33.625
    data = batchify(torch.arange(400_000), 2)
    b = BPTTBatches(data, bptt=35, variable=True, seed=0)
    lengths = [T for _, T in b.schedule(0)][:-1]
    assert abs(statistics.mean(lengths) - 33.625) < 0.4  # 5 standard errors
    assert min(lengths) >= 5 and max(lengths) <= 55
    half = sum(1 for T in lengths if T <= 23) / len(lengths)  # mostly the bptt/2 mode
    assert 0.05 < half < 0.10


def test_len_and_set_epoch():
    data = batchify(torch.arange(3000), 2)
    b = BPTTBatches(data, bptt=10, variable=True, seed=3)
    assert len(b) == len(list(b)) == b.num_batches(0)
    b.set_epoch(5)
    assert len(b) == b.num_batches(5) == len(list(b))
    assert _cover(list(b), data)
    with pytest.raises(ValueError, match="epoch=-1"):
        b.set_epoch(-1)


# ----------------------------------------------------------------------------- resume


@pytest.mark.parametrize("variable", [False, True])
def test_resume_equals_tail_of_full_epoch(variable):
    data = batchify(torch.arange(1200), 4)
    b = BPTTBatches(data, bptt=12, variable=variable, seed=11)
    full = list(b.iter_epoch(2))
    for k in (0, 1, len(full) // 2, len(full) - 1, len(full)):
        tail = list(
            BPTTBatches(data, bptt=12, variable=variable, seed=11).iter_epoch(2, start_step=k)
        )
        assert len(tail) == len(full) - k
        for (x, y), (fx, fy) in zip(tail, full[k:], strict=True):
            assert torch.equal(x, fx) and torch.equal(y, fy)


def test_constructor_start_step_applies_to_first_iteration_only():
    data = batchify(torch.arange(26), 2)
    b = BPTTBatches(data, bptt=4, epoch=0, start_step=2)
    first = list(b)
    assert len(first) == 1 and first[0][0][0].tolist() == [8, 21]
    assert len(list(b)) == 3  # the next epoch starts at 0


def test_bad_arguments():
    data = batchify(torch.arange(26), 2)
    with pytest.raises(ValueError, match=r"start_step=4; expected an integer in 0..3"):
        list(BPTTBatches(data, bptt=4).iter_epoch(0, start_step=4))
    with pytest.raises(ValueError, match="bptt=0; expected an integer >= 1"):
        BPTTBatches(data, bptt=0)
    with pytest.raises(ValueError, match="seed=-1"):
        BPTTBatches(data, bptt=4, seed=-1)
    with pytest.raises(ValueError, match=r"shape \(26,\); expected \(L, B\) from batchify"):
        BPTTBatches(torch.arange(26), bptt=4)
    with pytest.raises(ValueError, match="max_len=3; expected an integer >= min_len=5"):
        BPTTBatches(data, bptt=4, max_len=3)


# ----------------------------------------------------------------------------- load_corpus


def test_load_corpus_word_directory(tmp_path):
    (tmp_path / "train.txt").write_text(" a b a \n c a \n")
    (tmp_path / "valid.txt").write_text(" a z \n")
    (tmp_path / "test.txt.gz").write_bytes(gzip.compress(b"\n b \n"))
    c = load_corpus(tmp_path, level="word")
    assert c.vocab.itos == ["<unk>", "a", "<eos>", "b", "c"] and c.level == "word"
    assert c.splits["train"].tolist() == [1, 3, 1, 2, 4, 1, 2]
    assert c.splits["valid"].tolist() == [1, 0, 2]  # unseen "z" -> <unk>
    assert c.splits["test"].tolist() == [2, 3, 2]
    assert c.files["test"] == tmp_path / "test.txt.gz"


def test_load_corpus_keeps_a_test_file_when_valid_is_cut_from_train(tmp_path):
    # train.txt + test.txt, no valid file: valid comes from train, test stays the file
    (tmp_path / "train.txt").write_text("".join(f" a b c {i % 3} \n" for i in range(10)))
    (tmp_path / "test.txt").write_text(" c b \n")
    c = load_corpus(tmp_path, level="word", valid_fraction=0.2, test_fraction=0.3)
    assert list(c.splits) == ["train", "valid", "test"] and c.files["test"] == tmp_path / "test.txt"
    assert c.vocab.decode(c.splits["test"]) == ["c", "b", "<eos>"]
    assert len(c.splits["train"]) + len(c.splits["valid"]) == 10 * 5


def test_load_corpus_char_file_splits_90_10(tmp_path):
    text = "".join(chr(97 + i % 7) for i in range(95)) + "\nxyz\n"
    (tmp_path / "t.txt").write_text(text)
    c = load_corpus(tmp_path / "t.txt")
    assert c.level == "char" and c.vocab.unk is None and set(c.vocab.itos) == set(text)
    assert list(c.splits) == ["train", "valid"]
    assert len(c.splits["train"]) == 90 and len(c.splits["valid"]) == 10  # int(100 * 0.9)
    assert "".join(c.vocab.decode(torch.cat([c.splits["train"], c.splits["valid"]]))) == text


def test_load_corpus_tinyshakespeare_embedded(monkeypatch, tmp_path):
    monkeypatch.delenv("RNNKIT_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    c = load_corpus("tinyshakespeare")
    assert len(c.vocab) == 65 and c.level == "char"
    assert len(c.splits["train"]) == 1_003_854 and len(c.splits["valid"]) == 111_540


def test_load_corpus_with_checkpoint_vocab_names_file_and_line(tmp_path):
    (tmp_path / "t.txt").write_text("abc\nab\nabQ\n")
    vocab = Vocab.build("abc\n", specials=(), level="char")
    with pytest.raises(ValueError) as e:
        load_corpus(tmp_path / "t.txt", vocab=vocab, valid_fraction=0.0)
    assert str(e.value) == (
        f"{tmp_path / 't.txt'} (train split, line 3): token 'Q' at position 9 is outside the "
        "vocabulary (4 char types, no <unk>); expected one of the training tokens"
    )
    with pytest.raises(ValueError, match="level='bpe'"):
        load_corpus(tmp_path / "t.txt", level="bpe")
