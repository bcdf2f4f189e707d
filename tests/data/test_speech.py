"""Transcribed-audio readers, character units, streaming features, FSDD digit utterances."""
from pathlib import Path

import numpy as np
import pytest

sf = pytest.importorskip("soundfile")
pytest.importorskip("librosa")

from rnnkit.data.audio import AudioDataError, FeatureConfig, compute_features  # noqa: E402
from rnnkit.data.digits import (  # noqa: E402
    DIGIT_WORDS,
    fsdd_recordings,
    make_utterances,
    split_pools,
)
from rnnkit.data.speech import (  # noqa: E402
    CharUnits,
    StreamingFeatures,
    list_trans_txt,
    list_transcribed,
)

FSDD = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "fsdd" / "recordings"
needs_fsdd = pytest.mark.skipif(not FSDD.is_dir(), reason=f"FSDD not found at {FSDD} "
                                "(../shared/datasets/fsdd: see its README)")


def wav(path: Path, seconds=0.1):
    sf.write(str(path), np.zeros(int(8000 * seconds), np.float32), 8000)
    return path


def test_csv_reader_normalises_text_and_names_bad_lines(tmp_path):
    wav(tmp_path / "a.wav")
    wav(tmp_path / "b.wav")
    (tmp_path / "t.csv").write_text('path,text\na.wav,"Three  ONE"\nb.wav,nine\n')
    t = list_transcribed(tmp_path / "t.csv")
    assert t.texts == ["three one", "nine"] and t.origin[1].endswith("t.csv:3")
    (tmp_path / "bad.csv").write_text("path,text\na.wav,one\nmissing.wav,two\n")
    with pytest.raises(AudioDataError, match=r"bad\.csv:3: audio file .*missing\.wav not found"):
        list_transcribed(tmp_path / "bad.csv")
    (tmp_path / "hdr.csv").write_text("file,words\na.wav,one\n")
    with pytest.raises(AudioDataError, match=r"hdr\.csv:1: no 'path' column"):
        list_transcribed(tmp_path / "hdr.csv")
    (tmp_path / "empty.csv").write_text("path,text\na.wav,  \n")
    with pytest.raises(AudioDataError, match=r"empty\.csv:2: empty 'text'"):
        list_transcribed(tmp_path / "empty.csv")


def test_librispeech_trans_txt_reader(tmp_path):
    d = tmp_path / "19" / "198"
    d.mkdir(parents=True)
    wav(d / "19-198-0000.wav")
    wav(d / "19-198-0001.wav")
    (d / "19-198.trans.txt").write_text("19-198-0000 NORTHANGER ABBEY\n19-198-0001 THIS\n")
    t = list_trans_txt(tmp_path)
    assert t.texts == ["northanger abbey", "this"] and t.fields[0]["speaker"] == "19"
    (d / "19-198.trans.txt").write_text("19-198-0000 ONE\n19-198-0009 TWO\n")
    with pytest.raises(AudioDataError, match=r"19-198\.trans\.txt:2: no audio '19-198-0009'"):
        list_trans_txt(tmp_path)
    (d / "19-198.trans.txt").write_text("19-198-0000\n")
    with pytest.raises(AudioDataError, match=r"trans\.txt:1: expected 'UTTERANCE-ID TEXT'"):
        list_trans_txt(tmp_path)
    (tmp_path / "none").mkdir()
    with pytest.raises(AudioDataError, match=r"none: no \*\.trans\.txt files"):
        list_trans_txt(tmp_path / "none")


def test_char_units_encode_decode_and_errors():
    u = CharUnits.from_texts(["three one", "two"])
    assert u.labels == ["<blank>", " ", "e", "h", "n", "o", "r", "t", "w"] and len(u) == 9
    assert u.decode(u.encode("one two")) == "one two"
    with pytest.raises(AudioDataError, match=r"t\.csv:7: character '9' \(column 5\) is not in"):
        u.encode("one 9", where="t.csv:7")
    assert CharUnits.from_json(u.to_json()).chars == u.chars


def test_streaming_features_equal_the_whole_clip():
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(4321)).astype(np.float32)
    for kind in ("logmel", "mfcc"):
        cfg = FeatureConfig(kind=kind)
        s = StreamingFeatures(cfg)
        cuts = np.sort(rng.integers(0, len(y), 6))
        parts = [s.push(c) for c in np.split(y, cuts)] + [s.finish()]
        whole = compute_features(y, cfg)
        got = np.concatenate(parts)
        assert got.shape == whole.shape == (1 + 4321 // 80, cfg.num_features)
        np.testing.assert_allclose(got, whole, atol=1e-3)
    with pytest.raises(AudioDataError, match="deltas"):
        StreamingFeatures(FeatureConfig(deltas=1))


@needs_fsdd
def test_digit_utterances_are_deterministic_and_match_their_digits():
    pools = split_pools(fsdd_recordings(FSDD), "standard")
    a = make_utterances(pools["test"], 5, seed=7)
    b = make_utterances(pools["test"], 5, seed=7)
    c = make_utterances(pools["test"], 5, seed=8)
    for u, v in zip(a, b):
        assert u.text == v.text and np.array_equal(u.audio, v.audio) and u.sources == v.sources
    assert [u.text for u in a] != [u.text for u in c]
    for u in a:
        assert 2 <= len(u.digits) <= 7 and u.text == " ".join(DIGIT_WORDS[d] for d in u.digits)
        assert [int(s.split("_")[0]) for s in u.sources] == list(u.digits)  # the words said
        assert {s.split("_")[1] for s in u.sources} == {u.speaker}  # one speaker
        assert u.audio.dtype == np.float32 and np.abs(u.audio).max() <= 1.0


@needs_fsdd
def test_splits_hold_out_recordings_and_speakers():
    recs = fsdd_recordings(FSDD)
    std = split_pools(recs, "standard")
    assert {r.index for r in std["test"]} == set(range(5))
    assert min(r.index for r in std["train"]) >= 10 and len(std["test"]) == 300
    for u in make_utterances(std["train"], 30, seed=0):
        assert all(int(s.split("_")[2].split(".")[0]) >= 10 for s in u.sources)
    loso = split_pools(recs, "loso:theo")
    assert {r.speaker for r in loso["test"]} == {"theo"} and len(loso["test"]) == 500
    assert "theo" not in {r.speaker for r in loso["train"] + loso["valid"]}
    with pytest.raises(AudioDataError, match="unknown speaker; expected one of"):
        split_pools(recs, "loso:nobody")


def test_the_same_audio_listed_twice_is_an_error(tmp_path):
    wav(tmp_path / "a.wav")
    wav(tmp_path / "b.wav")
    (tmp_path / "t.csv").write_text("path,text\na.wav,one\nb.wav,two\n./a.wav,nine nine\n")
    with pytest.raises(AudioDataError, match=r"t\.csv:4: audio file .*a\.wav is listed twice "
                       r"\(also at .*t\.csv:2\)"):
        list_transcribed(tmp_path / "t.csv")
    (tmp_path / "s.csv").write_text("path,text\na.wav,one\na.wav,one\n")  # same text too
    with pytest.raises(AudioDataError, match=r"s\.csv:3: .* listed twice \(also at .*s\.csv:2\)"):
        list_transcribed(tmp_path / "s.csv")


def test_a_repeated_utterance_id_in_trans_txt_is_an_error(tmp_path):
    d = tmp_path / "19" / "198"
    d.mkdir(parents=True)
    wav(d / "19-198-0000.wav")
    wav(d / "19-198-0001.wav")
    (d / "19-198.trans.txt").write_text("19-198-0000 ONE\n19-198-0001 TWO\n19-198-0000 SIX\n")
    with pytest.raises(AudioDataError, match=r"19-198\.trans\.txt:3: utterance '19-198-0000' is "
                       r"listed twice \(also at .*19-198\.trans\.txt:1\)"):
        list_trans_txt(tmp_path)
    (d / "19-198.trans.txt").write_text("19-198-0000 ONE\n19-198-0001 TWO\n")
    assert len(list_trans_txt(tmp_path)) == 2
    e = tmp_path / "19" / "199"  # the same ID again in another chapter's transcripts
    e.mkdir()
    wav(e / "19-198-0001.wav")
    (e / "19-199.trans.txt").write_text("19-198-0001 NINE\n")
    with pytest.raises(AudioDataError, match=r"19-199\.trans\.txt:1: utterance '19-198-0001' is "
                       r"listed twice \(also at .*19-198\.trans\.txt:2\)"):
        list_trans_txt(tmp_path)
