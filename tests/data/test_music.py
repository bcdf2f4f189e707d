"""Piano rolls: JSB JSON, MIDI round trip, transposition, batching, one-line errors."""
import json
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data.music import (
    NUM_KEYS,
    MusicDataError,
    collate,
    random_transpose,
    read_jsb,
    roll_to_steps,
    steps_to_roll,
    transpose,
    transpositions,
)

JSB = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "jsb_chorales" / \
    "jsb-chorales-quarter.json"


def test_steps_to_roll_and_back_drops_notes_off_the_piano():
    roll, dropped = steps_to_roll([[60, 64, 67], [], [21, 108, 20, 109, 127]])
    assert roll.shape == (3, NUM_KEYS) and roll.dtype == np.uint8
    assert dropped == 3  # 20, 109 and 127 have no key
    assert roll_to_steps(roll) == [[60, 64, 67], [], [21, 108]]
    assert roll[0, 60 - 21] == 1 and roll.sum() == 5


def test_read_jsb_and_its_one_line_errors(tmp_path):
    p = tmp_path / "mini.json"
    p.write_text(json.dumps({"train": [[[60], [62, 65.0]]], "valid": [[[]]], "test": [[[48]]]}))
    s, dropped = read_jsb(p)
    assert dropped == 0
    assert [len(s[k]) for k in ("train", "valid", "test")] == [1, 1, 1]
    assert roll_to_steps(s["train"][0]) == [[60], [62, 65]] and s["valid"][0].sum() == 0
    cases = {
        "missing.json": (None, r"missing\.json: no such file"),
        "bad.json": ("{not json", r"bad\.json: not readable JSON"),
        "list.json": ("[1, 2]", r"list\.json: expected a JSON object with keys train"),
        "note.json": (json.dumps({"train": [[[60], ["C4"]]]}),
                      r"note\.json: train\[0\] step 1: 'C4' is not a MIDI note number"),
        "empty.json": (json.dumps({"train": [[]]}), r"empty\.json: train\[0\]: expected a non-empty"),
    }
    for name, (text, msg) in cases.items():
        f = tmp_path / name
        if text is not None:
            f.write_text(text)
        with pytest.raises(MusicDataError, match=msg) as e:
            read_jsb(f)
        assert "\n" not in str(e.value)


@pytest.mark.skipif(not JSB.is_file(), reason="../shared/datasets/jsb_chorales is absent "
                    "(the JSB Chorales JSON of the datasets README)")
def test_real_jsb_has_the_boulanger_lewandowski_split():
    s = read_jsb(JSB)[0]
    assert {k: len(v) for k, v in s.items()} == {"train": 229, "valid": 76, "test": 77}
    assert sum(len(r) for r in s["test"]) == 4725  # time steps the test NLL is averaged over
    assert 3.8 < np.concatenate(s["train"]).sum(1).mean() < 4.0  # four voices, some rests


def test_transposition_keeps_notes_on_the_piano():
    roll, _ = steps_to_roll([[22, 40], [105]])
    assert transpositions(roll, 5) == [-1, 0, 1, 2, 3]  # 22 can go down 1, 105 up 3
    up = transpose(roll, 3)
    assert roll_to_steps(up) == [[25, 43], [108]]
    assert roll_to_steps(transpose(up, -3)) == roll_to_steps(roll)
    rng = np.random.default_rng(0)
    for _ in range(20):
        t = random_transpose(roll, 5, rng)
        assert t.sum() == roll.sum()


def test_collate_pads_with_silence():
    a, b = np.ones((3, NUM_KEYS), np.uint8), np.ones((1, NUM_KEYS), np.uint8)
    x, lengths = collate([a, b])
    assert x.shape == (2, 3, NUM_KEYS) and lengths.tolist() == [3, 1]
    assert x[1, 1:].sum() == 0 and x[0].sum() == 3 * NUM_KEYS


def test_unknown_keys_and_non_midi_numbers_are_errors(tmp_path):
    ok = {"train": [[[60], [20, 64]]], "valid": [[[109, 127]]], "test": [[[0, 48]]]}
    p = tmp_path / "ok.json"
    p.write_text(json.dumps(ok))
    s, dropped = read_jsb(p)
    assert dropped == 4 and [len(s[k]) for k in ("train", "valid", "test")] == [1, 1, 1]
    assert roll_to_steps(s["train"][0]) == [[60], [64]] and s["valid"][0].sum() == 0
    cases = {
        "tst.json": ({"train": ok["train"], "valid": ok["valid"], "tst": ok["test"]},
                     r"tst\.json: unknown key 'tst'; expected keys train, valid, test$"),
        "validation.json": ({"train": ok["train"], "validation": ok["valid"]},
                            r"validation\.json: unknown key 'validation'; expected keys train, "
                            r"valid, test$"),
        "null.json": ({"train": ok["train"], "valid": None},
                      r"null\.json: 'valid' is NoneType; expected a list of pieces$"),
        "high.json": ({"train": ok["train"], "test": [[[60], [48, 200]]]},
                      r"high\.json: test\[0\] step 1: note 200 is not a MIDI note number "
                      r"\(expected 0-127; 21-108 on the piano\)$"),
        "low.json": ({"train": [[[60]], [[-3.0]]]},
                     r"low\.json: train\[1\] step 0: note -3 is not a MIDI note number "
                     r"\(expected 0-127"),
    }
    for name, (doc, msg) in cases.items():
        f = tmp_path / name
        f.write_text(json.dumps(doc))
        with pytest.raises(MusicDataError, match=msg):
            read_jsb(f)
