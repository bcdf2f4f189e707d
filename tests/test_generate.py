"""Sampling at the edges of the temperature range (issue 19, item 4).

``sample_next`` divides logits by the temperature: at a tiny temperature the quotient
overflowed (``inf - inf`` in the softmax, then ``torch.multinomial`` raised); now the
largest logit is subtracted first and the division runs in float64, so every positive
temperature gives a valid distribution, and non-finite or negative ones are refused.
"""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.generate import filter_logits, generate, sample_next
from rnnkit.testing import fuzz_examples


@pytest.mark.parametrize("tau", [1e-45, 1e-300, 5e-324, 1e-30, 1e-8])
def test_tiny_temperatures_sample_the_argmax(tau):
    z = torch.randn(50, generator=torch.Generator().manual_seed(0)) * 10
    g = torch.Generator().manual_seed(1)
    assert {sample_next(z, temperature=tau, generator=g) for _ in range(5)} == {int(z.argmax())}


def test_tiny_temperature_keeps_ties_random_and_filters_apply():
    z = torch.tensor([3.0, 1.0, 3.0, -2.0])  # two tokens tie for the top
    g = torch.Generator().manual_seed(0)
    assert {sample_next(z, temperature=1e-45, generator=g) for _ in range(60)} == {0, 2}
    assert sample_next(z, temperature=1e-45, top_k=1, generator=g) in (0, 2)
    assert sample_next(z, temperature=1e-45, top_p=0.5, generator=g) in (0, 2)


@settings(max_examples=fuzz_examples(200))
@given(logits=st.lists(st.floats(-1e4, 1e4, width=32), min_size=1, max_size=40),
       tau=st.floats(min_value=5e-324, max_value=1e6, allow_nan=False, allow_infinity=False)
       .filter(lambda t: t > 0),
       top_k=st.none() | st.integers(1, 50), top_p=st.none() | st.floats(1e-6, 1.0))
def test_any_positive_temperature_gives_a_valid_token(logits, tau, top_k, top_p):
    z = torch.tensor(logits)
    i = sample_next(z, temperature=tau, top_k=top_k, top_p=top_p, generator=torch.Generator().manual_seed(0))
    assert 0 <= i < len(logits)
    if tau < 1e-30:  # the distribution is one-hot on the largest logit(s)
        assert z[i] == z.max()


@pytest.mark.parametrize("tau", [-1.0, -1e-300, math.nan, math.inf, -math.inf])
def test_negative_and_non_finite_temperatures_are_refused(tau):
    with pytest.raises(ValueError, match="--temperature"):
        sample_next(torch.zeros(3), temperature=tau)
    model = torch.nn.Module()  # never run: the arguments are checked first
    with pytest.raises(ValueError, match=r"--temperature .*: expected a finite value >= 0"):
        next(generate(model, None, "", 1, temperature=tau))


def test_usual_temperatures_draw_what_they_drew_before():
    """The float64 scaling leaves seeded samples at ordinary temperatures as they were."""
    g_old, g_new = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    gen = torch.Generator().manual_seed(3)
    for _ in range(300):
        z = torch.randn(65, generator=gen) * 4
        for tau, k, p in ((1.0, None, None), (0.8, 40, None), (0.9, 10, 0.95), (2.0, None, 0.9)):
            old = int(torch.multinomial(torch.softmax(filter_logits(z / tau, k, p), -1), 1, generator=g_old))
            assert sample_next(z, temperature=tau, top_k=k, top_p=p, generator=g_new) == old


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """An untrained char LM checkpoint (written directly: no training needed here)."""
    from rnnkit import __version__
    from rnnkit.data import Vocab
    from rnnkit.models.lm import LanguageModel
    from rnnkit.train.checkpoint import write_checkpoint
    from rnnkit.train.config import build_run_config, to_dict

    vocab = Vocab.build(list("abcdefgh \n"), specials=(), level="char")
    cfg = build_run_config({"task": "lm", "model": {"cell": "lstm", "embedding_size": 8, "hidden_size": 8,
                                                    "num_layers": 1}})
    torch.manual_seed(0)
    model = LanguageModel(cfg.model, len(vocab))
    return write_checkpoint(tmp_path_factory.mktemp("gen") / "ckpt", model_state=model.state_dict(),
                            config=to_dict(cfg), task="lm", version=__version__,
                            write_assets=lambda d: vocab.save(d / "vocab.json"))


def test_cli_generate_at_a_tiny_temperature_is_greedy(tiny_lm, capsys):
    from rnnkit.commands import main

    args = ["generate", str(tiny_lm), "--prompt", "abc", "--length", "20", "--seed", "0"]
    assert main(args + ["--temperature", "0"]) == 0
    greedy = capsys.readouterr().out
    assert main(args + ["--temperature", "1e-45"]) == 0
    assert capsys.readouterr().out == greedy


@pytest.mark.parametrize("tau", ["nan", "inf", "-0.5"])
def test_cli_generate_refuses_bad_temperatures_in_one_line(tiny_lm, capsys, tau):
    from rnnkit.commands import main

    capsys.readouterr()
    assert main(["generate", str(tiny_lm), "--length", "3", "--temperature", tau]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rnnkit: error: --temperature {float(tau)}: expected a finite value >= 0")
    assert err.count("\n") == 1 and "Traceback" not in err


# ----------------------------------------------------------------------------- prompts and seeds


def _word_vocab():
    from rnnkit.data import Vocab
    from rnnkit.data.text import tokenize

    return Vocab.build(tokenize("the cat sat\non the mat\n", "word"), level="word")


def test_word_prompt_with_unknown_words_is_an_error_naming_them():
    from rnnkit.generate import encode_prompt

    v = _word_vocab()
    assert v.unk == "<unk>"  # the vocabulary has <unk>: the words used to silently become it
    with pytest.raises(ValueError, match=r"--prompt: 'dog', 'ran' are not in the checkpoint's vocabulary"):
        encode_prompt(v, "the dog ran on the mat")
    with pytest.raises(ValueError, match=r"--prompt: 'Cat' is not in"):
        encode_prompt(v, "the Cat")


@pytest.mark.parametrize("prompt", ["the <eos> cat", "the cat <pad>", "<bos> the"])
def test_word_prompt_cannot_type_special_tokens(prompt):
    from rnnkit.generate import encode_prompt

    with pytest.raises(ValueError, match=r"--prompt: '<\w+>' is a special token, not a word"):
        encode_prompt(_word_vocab(), prompt)
    v = _word_vocab()  # <unk> is a word of PTB's and WikiText-2's text, so it may be typed
    assert encode_prompt(v, "the <unk> sat") == v.encode(["the", "<unk>", "sat"])


def test_scoring_reads_unknown_words_as_unk_and_counts_them():
    import torch

    from rnnkit.generate import encode_prompt
    from rnnkit.tasks.predictors import LMPredictor

    v = _word_vocab()
    assert encode_prompt(v, "the dog sat", unknown="unk") == v.encode(["the", "<unk>", "sat"])
    with pytest.raises(ValueError, match=r"unknown='skip': expected 'error' or 'unk'"):
        encode_prompt(v, "the cat", unknown="skip")

    class Uniform(torch.nn.Module):  # every token equally likely: loss = log V exactly
        def forward(self, x, state=None):
            return torch.zeros(x.shape[0], x.shape[1], len(v)), state

    pred = LMPredictor.__new__(LMPredictor)
    pred.vocab, pred.model = v, Uniform()
    r = pred.score("the dog sat on the rug")
    assert r["tokens"] == 6 and r["unknown_words"] == 2
    assert r["loss"] == pytest.approx(math.log(len(v)))


def test_valid_word_prompts_encode_as_before():
    from rnnkit.generate import encode_prompt

    v = _word_vocab()
    assert encode_prompt(v, "the cat\non") == v.encode(["the", "cat", "<eos>", "on"])
    assert encode_prompt(v, "") == [v.stoi["<eos>"]]  # documented: an empty prompt starts a line


def test_empty_prompt_without_a_newline_in_the_vocabulary_is_an_error():
    from rnnkit.data import Vocab
    from rnnkit.generate import encode_prompt

    v = Vocab.build(list("abc "), specials=(), level="char")  # a corpus with no line break
    with pytest.raises(ValueError, match=r"--prompt: empty, and the checkpoint's vocabulary has no '\\n'"):
        encode_prompt(v, "")
    assert encode_prompt(v, "ab") == [v.stoi["a"], v.stoi["b"]]


@pytest.mark.parametrize("seed", [2**64, 99999999999999999999999, -(2**63) - 1])
def test_out_of_range_seeds_name_the_flag(tiny_lm, capsys, seed):
    from rnnkit.commands import main

    capsys.readouterr()
    assert main(["generate", str(tiny_lm), "--length", "3", "--seed", str(seed)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rnnkit: error: --seed {seed}: expected an integer from -2**63 to 2**64 - 1")
    assert err.count("\n") == 1 and "Overflow" not in err
    with pytest.raises(ValueError, match=rf"--seed {seed}: expected an integer"):
        next(generate(torch.nn.Module(), None, "", 1, seed=seed))


def test_edge_seeds_still_work(tiny_lm, capsys):
    from rnnkit.commands import main

    for seed in (2**64 - 1, -1, 0):
        capsys.readouterr()
        assert main(["generate", str(tiny_lm), "--prompt", "ab", "--length", "3", "--seed", str(seed)]) == 0
        assert capsys.readouterr().out.startswith("ab")
