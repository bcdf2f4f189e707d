"""Tests of rnnkit.data.tokenize: trained tokenizers, specials, round trips, files, buckets."""
import json

import pytest

from rnnkit.data.tokenize import (
    SPECIALS,
    TextTokenizer,
    TokenizerError,
    length_buckets,
    train_tokenizer,
)

CORPUS = ["The film was great, really great!", "The plot was thin (very thin).",
          "It's a great film; the actors were great."] * 3


def test_word_vocabulary_order_specials_and_unknowns():
    tok = train_tokenizer(["a b c", "a b", "a"], kind="word")
    # specials first, then by frequency: a (3), b (2), c (1)
    assert [tok.id_to_token(i) for i in range(tok.vocab_size)] == [*SPECIALS, "▁a", "▁b", "▁c"]
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    assert tok.encode("a c zebra") == [4, 6, 1]
    assert tok.encode("a b", add_bos=True, add_eos=True) == [2, 4, 5, 3]
    assert tok.encode("a b c a", add_bos=True, add_eos=True, max_length=4) == [2, 4, 5, 3]
    assert tok.encode_batch(["a", "c b"]) == [[4], [6, 5]]
    assert tok.decode([2, 4, 6, 1, 3, 0, 0]) == "a c"  # specials skipped
    assert tok.kind == "word" and not tok.lowercase and len(tok) == 7


def test_vocab_size_min_freq_and_lowercase():
    tok = train_tokenizer(["A a a b B c"], kind="word", lowercase=True, min_freq=2,
                          reversible=False)
    assert tok.vocab_size == 6 and tok.token_to_id("a") == 4 and tok.token_to_id("b") == 5
    assert tok.token_to_id("c") is None and tok.lowercase
    small = train_tokenizer(["a a a b b c"], kind="word", vocab_size=5, reversible=False)
    assert small.vocab_size == 5 and small.encode("a b c") == [4, 1, 1]


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_reversible_kinds_detokenise_exactly(kind):
    tok = train_tokenizer(CORPUS, kind=kind, vocab_size=200, lowercase=True)
    text = "it's a great film (very thin), the plot was thin!"
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode("The Film.")) == "the film."  # normalised: lowercase


def test_bpe_splits_unseen_words_into_known_pieces():
    tok = train_tokenizer(CORPUS, kind="bpe", vocab_size=60)
    ids = tok.encode("greatest")
    assert len(ids) > 1 and tok.unk_id not in ids
    assert tok.decode(ids) == "greatest"


def test_wordpiece_and_non_reversible_word():
    wp = train_tokenizer(CORPUS, kind="wordpiece", vocab_size=120, lowercase=True)
    assert wp.kind == "wordpiece" and wp.decode(wp.encode("The plot was thin.")) == "the plot was thin."
    w = train_tokenizer(CORPUS, kind="word", reversible=False)
    assert w.tokenize("great, really!") == ["great", ",", "really", "!"]
    assert w.decode(w.encode("great, really!")) == "great , really !"


def test_save_and_load_round_trip(tmp_path):
    tok = train_tokenizer(CORPUS, kind="bpe", vocab_size=80, lowercase=True)
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    assert json.loads(path.read_text())["model"]["type"] == "BPE"
    back = TextTokenizer.load(path)
    text = "The actors were thin."
    assert back.encode(text) == tok.encode(text) and back.vocab_size == tok.vocab_size
    assert back.kind == "bpe" and back.lowercase
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left nothing behind


def test_bad_arguments_and_files(tmp_path):
    with pytest.raises(TokenizerError, match="kind='char'; expected one of word, bpe, wordpiece"):
        train_tokenizer(CORPUS, kind="char")
    with pytest.raises(TokenizerError, match="vocab_size=3; expected an integer > 4"):
        train_tokenizer(CORPUS, vocab_size=3)
    with pytest.raises(TokenizerError, match="min_freq=0"):
        train_tokenizer(CORPUS, min_freq=0)
    with pytest.raises(TokenizerError, match=r"texts\[1\] is int"):
        train_tokenizer(["a", 3])
    with pytest.raises(TokenizerError, match="no texts"):
        train_tokenizer([])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TokenizerError, match=r"bad\.json: not a valid tokenizers JSON"):
        TextTokenizer.load(bad)
    with pytest.raises(FileNotFoundError, match="no such tokenizer file"):
        TextTokenizer.load(tmp_path / "missing.json")
    from tokenizers import Tokenizer, models

    other = tmp_path / "other.json"
    Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>")).save(str(other))
    with pytest.raises(TokenizerError, match=r"other\.json: special tokens \['<pad>', '<bos>'"):
        TextTokenizer.load(other)


def test_length_buckets_cover_every_index_once_and_sort_within_pools():
    lengths = [(7 * i) % 23 + 1 for i in range(103)]
    ev = length_buckets(lengths, 10, shuffle=False)
    assert [len(b) for b in ev] == [10] * 10 + [3]
    flat = [i for b in ev for i in b]
    assert sorted(flat) == list(range(103))
    assert [lengths[i] for i in flat] == sorted(lengths)  # evaluation: globally sorted
    tr = length_buckets(lengths, 10, shuffle=True, seed=3, bucket_factor=2)
    assert sorted(i for b in tr for i in b) == list(range(103))
    assert tr == length_buckets(lengths, 10, shuffle=True, seed=3, bucket_factor=2)
    assert tr != length_buckets(lengths, 10, shuffle=True, seed=4, bucket_factor=2)
    # padding waste (sum of max - len) is far below random batching's
    def waste(bs):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in bs)
    random_batches = length_buckets(lengths, 10, shuffle=True, seed=3, bucket_factor=1)
    assert waste(length_buckets(lengths, 10, shuffle=True, seed=3, bucket_factor=11)) < waste(random_batches) / 3
    with pytest.raises(ValueError, match="batch_size=0"):
        length_buckets(lengths, 0, shuffle=False)
