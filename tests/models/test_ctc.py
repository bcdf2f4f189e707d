"""CTC decoding (greedy, beam search) and the streamed recogniser against the whole one."""
import math

import pytest
import torch

from rnnkit.models.asr import ASRConfig, CTCModel, CTCStream
from rnnkit.models.ctc import BeamDecoder, collapse, greedy_decode

LABELS = ["<b>", " ", "a", "b"]


def test_collapse_and_greedy_on_a_hand_case():
    assert collapse([0, 2, 2, 0, 2, 3, 3, 0, 1]) == [2, 2, 3, 1]
    p = torch.full((1, 5, 4), 1e-6)
    for t, u in enumerate([2, 2, 0, 2, 3]):
        p[0, t, u] = 1.0
    assert greedy_decode(p.log()) == [[2, 2, 3]]
    assert greedy_decode(p.log(), torch.tensor([2])) == [[2]]


needs_fl = pytest.mark.skipif(not BeamDecoder.available(), reason="flashlight-text not installed")


@needs_fl
def test_beam_search_finds_the_likelier_label_that_greedy_misses():
    # two frames, P(blank) = 0.6, P(a) = 0.4 each: greedy takes "" (0.36); "a" has
    # 0.4*0.4 + 0.4*0.6 + 0.6*0.4 = 0.64
    p = torch.tensor([[[0.6, 0.0, 0.4, 0.0]] * 2]) + 1e-9
    assert greedy_decode(p.log()) == [[]]
    assert BeamDecoder(LABELS, beam_size=4)(p.log()) == [[2]]
    assert math.isclose(0.4 * 0.4 + 2 * 0.4 * 0.6, 0.64)


@needs_fl
def test_beam_1_equals_greedy_and_the_lexicon_spells_only_its_words():
    torch.manual_seed(0)
    lp = (3 * torch.randn(16, 30, 4)).log_softmax(-1)
    n = torch.randint(1, 31, (16,))

    def text(ids):
        return " ".join("".join(LABELS[i] for i in ids).split())

    g = [text(i) for i in greedy_decode(lp, n)]
    assert g == [text(i) for i in BeamDecoder(LABELS, beam_size=1)(lp, n)]
    lex = [text(i) for i in BeamDecoder(LABELS, beam_size=8, lexicon=["ab", "ba"])(lp, n)]
    assert all(w in ("ab", "ba") for t in lex for w in t.split()) and any(lex)
    with pytest.raises(ValueError, match="lexicon word 'ac'"):
        BeamDecoder(LABELS, lexicon=["ac"])


@pytest.mark.parametrize("cell", ["gru", "lstm", "sru"])
def test_streamed_model_equals_the_whole_utterance(cell):
    torch.manual_seed(0)
    cfg = ASRConfig(cell=cell, hidden_size=16, num_layers=2, bidirectional=False,
                    conv_channels=[8, 8], conv_strides=[2, 2], kernel_size=5)
    model = CTCModel(cfg, 10, 6).eval()
    x = torch.randn(1, 37, 10)
    whole, n = model(x)
    s = CTCStream(model)
    got = torch.cat([s.push(x[0, :5]), s.push(x[0, 5:6]), s.push(x[0, 6:])])
    assert int(n) == 10 == got.shape[0]  # ceil(ceil(37 / 2) / 2)
    torch.testing.assert_close(got, whole[0].detach(), atol=1e-5, rtol=1e-5)


def test_lengths_and_padding_do_not_change_an_utterance():
    torch.manual_seed(0)
    model = CTCModel(ASRConfig(hidden_size=8, num_layers=2), 6, 5).eval()
    x = torch.randn(2, 20, 6)
    lp, n = model(x, torch.tensor([20, 13]))
    alone, m = model(x[1:, :13])
    assert n.tolist() == [10, 7] and int(m) == 7
    torch.testing.assert_close(lp[1, :7], alone[0], atol=1e-5, rtol=1e-5)
