"""The asr pipeline on a tiny generated corpus of sine-tone "words", and its scoring."""
import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

sf = pytest.importorskip("soundfile")
pytest.importorskip("librosa")
pytest.importorskip("torchmetrics")

import rnnkit.tasks.asr  # noqa: E402,F401
from rnnkit.commands.predict import add_parser  # noqa: E402
from rnnkit.data.audio import AudioDataError  # noqa: E402
from rnnkit.models.ctc import BeamDecoder  # noqa: E402
from rnnkit.tasks.asr import (  # noqa: E402
    ASRTask,
    evaluate_asr_checkpoint,
    load_asr_checkpoint,
    transcribe_files,
)
from rnnkit.tasks.asr_eval import error_rates  # noqa: E402
from rnnkit.tasks.asr_stream import StreamingTranscriber  # noqa: E402
from rnnkit.train.checkpoint import write_checkpoint  # noqa: E402
from rnnkit.train.config import ConfigError, build_run_config, load_recipe, to_dict  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SR = 8000
#: each "word" is a tone: the corpus's digits
TONES = {"one": 400.0, "two": 1200.0, "six": 2600.0}


def utterance(words, rng):
    parts = [np.zeros(int(0.05 * SR), np.float32)]
    for w in words:
        t = np.arange(int(0.2 * SR)) / SR
        parts.append((0.4 * np.sin(2 * np.pi * TONES[w] * t)).astype(np.float32))
        parts.append(np.zeros(int(rng.uniform(0.05, 0.1) * SR), np.float32))
    y = np.concatenate(parts)
    return (y + 0.01 * rng.standard_normal(len(y))).astype(np.float32)


def make_corpus(folder: Path, n=12, seed=0):
    """``n`` utterances of 1-3 tone words and a CSV ``path,text,speaker``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["path,text,speaker"]
    for i in range(n):
        words = [list(TONES)[k] for k in rng.integers(3, size=int(rng.integers(1, 4)))]
        sf.write(str(folder / f"u{i}.wav"), utterance(words, rng), SR)
        rows.append(f"u{i}.wav,{' '.join(words).upper()},{'ab'[i % 2]}")
    (folder / "corpus.csv").write_text("\n".join(rows) + "\n")
    return folder / "corpus.csv"


def recipe(source, bidirectional=True, **data):
    return {
        "task": "asr",
        "data": {"source": str(source), "test": "speaker=b", "valid_fraction": 0.0,
                 "batch_size": 6, "spec_augment": False, "cache": False, "lexicon": ["one", "two", "six"],
                 "features": {"kind": "logmel", "n_mels": 20}, **data},
        "model": {"cell": "gru", "conv_channels": [16], "conv_strides": [2], "kernel_size": 3,
                  "hidden_size": 32, "num_layers": 1, "bidirectional": bidirectional,
                  "dropout": 0.0},
        "trainer": {"seed": 0},
    }


def fit(task, steps=250, lr=0.02):
    """The Trainer's loop reduced to its core, on the training split until it is learnt."""
    task.setup(0, 1)
    opt = torch.optim.Adam(task.model.parameters(), lr=lr)
    for step in range(steps):
        for batch in task.train_batches(step, 0):
            out = task.training_step(task.model, batch, None)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
    task.model.eval()
    return task


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A unidirectional CTC model trained on 6 utterances, saved as a checkpoint."""
    tmp = tmp_path_factory.mktemp("asr")
    src = make_corpus(tmp / "corpus")
    torch.manual_seed(0)
    cfg = build_run_config(recipe(src, bidirectional=False))
    task = fit(ASRTask(cfg))
    best = write_checkpoint(tmp / "run" / "best", model_state=task.model.state_dict(),
                            config=to_dict(cfg), task="asr", version="0",
                            write_assets=task.write_assets)
    return tmp, src, task, best


def test_ctc_overfits_a_few_utterances_to_zero_errors(trained):
    _, _, task, best = trained
    assert len(task.data["train"]) == 6 and len(task.data["test"]) == 6
    m = task.evaluate(task.model, "train")
    assert m["wer"] == 0.0 and m["cer"] == 0.0 and m["sentence_accuracy"] == 1.0
    assert m["loss"] < 1.0  # nats per utterance
    units = json.loads((best / "units.json").read_text())
    assert units["units"]["chars"] == list(" einostwx") and units["lexicon"] == ["one", "two", "six"]


def test_beam_search_equals_greedy_at_beam_1_and_lexicon_scores(trained):
    _, _, task, best = trained
    g = evaluate_asr_checkpoint(best, split="train")
    assert g["decoder"] == "greedy" and g["wer"] == 0.0
    if not BeamDecoder.available():
        pytest.skip("flashlight-text is not installed (pip install flashlight-text)")
    b = evaluate_asr_checkpoint(best, split="train", beam_size=8)
    assert b["decoder"] == "beam 8 + lexicon" and b["wer"] == 0.0
    model, units, _, _ = load_asr_checkpoint(best)
    x = [it for it in task.data["test"]]
    from rnnkit.tasks.asr_eval import collate_utterances, make_decoder

    xb, lengths, _, _ = collate_utterances(x)
    lp, olen = model(xb, lengths)
    noisy = (lp + 2.0 * torch.randn_like(lp)).log_softmax(-1)  # a less certain model
    assert make_decoder(units)(noisy, olen) == BeamDecoder_texts(units, noisy, olen)


def BeamDecoder_texts(units, lp, olen):
    from rnnkit.data.speech import normalise_text

    return [normalise_text(units.decode(ids))
            for ids in BeamDecoder(units.labels, beam_size=1)(lp, olen)]


def test_streaming_transcriber_equals_the_whole_utterance(trained):
    tmp, src, _, best = trained
    model, units, info, _ = load_asr_checkpoint(best)
    rng = np.random.default_rng(5)
    from rnnkit.tasks.asr import transcribe_waveform

    rows = [r.split(",") for r in src.read_text().splitlines()[1:]]
    for name, text, _ in rows[:6:2]:  # training utterances: the model knows them
        y, _ = sf.read(str(src.parent / name), dtype="float32")
        whole = transcribe_waveform(model, units, info, y)
        s = StreamingTranscriber(model, units, info)
        partial, i = [], 0
        while i < len(y):
            k = int(rng.integers(50, 900))
            partial.append(s.push(y[i:i + k]))
            i += k
        assert s.finish() == whole == text.lower()
        assert all(whole.replace(" ", "").startswith(p.replace(" ", "")) for p in partial)
    with pytest.raises(ValueError, match="needs a unidirectional model"):
        from rnnkit.models.asr import ASRConfig, CTCModel

        StreamingTranscriber(CTCModel(ASRConfig(hidden_size=8), 20, len(units)), units, info)


def test_predict_cli_prints_the_transcript(trained, capsys):
    tmp, src, _, best = trained
    f = tmp / "new.wav"
    y, _ = sf.read(str(tmp / "corpus" / "u0.wav"), dtype="float32")
    sf.write(str(f), y, SR)
    text = src.read_text().splitlines()[1].split(",")[1].lower()
    assert transcribe_files(best, [str(f)])[0]["transcript"] == text
    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers())
    a = ap.parse_args(["predict", str(best), str(f)])
    assert a.func(a) == 0
    assert capsys.readouterr().out.strip() == f"new.wav\t{text}"


def test_server_transcribes_a_wav_body_within_bounds(trained):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from rnnkit.serve import Limits, create_app

    tmp, src, _, best = trained
    body = (src.parent / "u2.wav").read_bytes()
    text = src.read_text().splitlines()[3].split(",")[1].lower()
    with TestClient(create_app(best, Limits(max_body_bytes=len(body) + 100))) as c:
        r = c.post("/transcribe", content=body, headers={"content-type": "audio/wav"})
        assert r.status_code == 200 and r.json()["text"] == text
        assert c.get("/info").json()["streaming"] is True
        bad = c.post("/transcribe", content=b"RIFF not audio")
        assert bad.status_code == 422 and "cannot read audio" in bad.json()["detail"][0]["msg"]
        big = c.post("/transcribe", content=body + b"\0" * 200)
        assert big.status_code == 413


def test_error_rates_on_hand_cases():
    m = error_rates(["one two", "three"], ["one three", "three"])
    assert m["wer"] == pytest.approx(1 / 3) and m["sentence_accuracy"] == 0.5
    assert error_rates(["abc"], ["abd"])["cer"] == pytest.approx(1 / 3)
    assert error_rates(["one two six"], ["one six"])["wer"] == pytest.approx(0.5)  # an insertion


def test_bad_transcript_character_names_the_line(tmp_path, trained):
    _, src, _, best = trained
    rows = src.read_text().splitlines()
    rows[3] = rows[3].split(",")[0] + ",one 2,a"
    bad = src.parent / "bad.csv"
    bad.write_text("\n".join(rows) + "\n")
    from rnnkit.tasks.asr_data import load_asr_data

    cfg = build_run_config(recipe(bad))
    with pytest.raises(AudioDataError, match=r"bad\.csv:4: character '2' \(column 5\) is not in"):
        load_asr_data(cfg.data, 0, units=load_asr_checkpoint(best)[1])


def test_shipped_recipes_load():
    for name in ("digits_ctc", "digits_ctc_loso"):
        cfg = load_recipe(ROOT / "configs" / f"{name}.yaml")
        assert cfg.task == "asr" and cfg.data.source == "fsdd_digits"
    assert load_recipe(ROOT / "configs" / "digits_ctc_loso.yaml").data.split.startswith("loso:")


def test_unreadable_wav_is_a_one_line_error(trained, tmp_path):
    _, _, _, best = trained
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEfmt nonsense")
    with pytest.raises(AudioDataError, match=r"bad\.wav: cannot read audio \(.*\); expected WAV"):
        transcribe_files(best, [str(bad)])


def test_utterance_normalisation_hand_case_and_gain_invariance(tmp_path):
    from rnnkit.data.audio import FeatureConfig, compute_features, normalise_features

    x = np.array([[1.0, 10.0], [3.0, 30.0]], np.float32)  # per feature: mean (2, 20), std (1, 10)
    np.testing.assert_allclose(normalise_features(x, {"normalize": "utterance"}),
                               [[-1, -1], [1, 1]], atol=1e-4)
    # a gain adds the same dB to every log-mel bin, which the utterance's own mean removes
    y = utterance(["one", "six"], np.random.default_rng(1))
    f = FeatureConfig(kind="logmel", n_mels=20)
    a, b = (normalise_features(compute_features(g * y, f), {"normalize": "utterance"})
            for g in (1.0, 0.25))
    np.testing.assert_allclose(a, b, atol=1e-3)
    task = ASRTask(build_run_config(recipe(make_corpus(tmp_path / "c", n=6),
                                           normalize="utterance")))
    for frames, *_ in task.data["train"] + task.data["test"]:
        np.testing.assert_allclose(frames.mean(0), 0.0, atol=1e-4)
        np.testing.assert_allclose(frames.std(0), 1.0, atol=1e-3)
    assert task.stats["normalize"] == "utterance"


FSDD = ROOT.parent / "shared" / "datasets" / "fsdd" / "recordings"


@pytest.fixture()
def resampler_loaded():
    from rnnkit.data.digits import speed_perturb

    speed_perturb(np.zeros(64, np.float32), 0.9, SR)  # librosa loads soxr on first use (~5 s)



@pytest.mark.skipif(not FSDD.is_dir(), reason=f"FSDD not found at {FSDD}")
def test_speed_perturbation_changes_only_the_training_utterances(resampler_loaded):
    from rnnkit.data.digits import DIGIT_WORDS
    from rnnkit.data.speech import CharUnits
    from rnnkit.tasks.asr_data import ASRDataConfig, load_asr_data

    units = CharUnits.from_texts([" ".join(DIGIT_WORDS)])

    def data(**kw):
        d = ASRDataConfig(split="loso:george", train_utterances=3, valid_utterances=2,
                          test_utterances=2, cache=False, normalize="utterance",
                          augment=False, **kw)
        return load_asr_data(d, 0, str(FSDD.parents[1]), units)[0]

    plain, unit, fast = data(), data(speed_perturb=[1, 1]), data(speed_perturb=[1.25, 1.25])
    for s in ("valid", "test"):
        for u, v in zip(plain[s], fast[s]):
            assert u[2] == v[2] and np.array_equal(u[0], v[0])
    # same draws at factors 1 and 1.25: the same digits and silences, the speech shorter
    for u, v in zip(unit["train"], fast["train"]):
        assert u[2] == v[2] and len(u[0]) / 1.25 < len(v[0]) < len(u[0]) - 10
    with pytest.raises(ConfigError, match=r"data\.speed_perturb': expected \[lo, hi\]"):
        data(speed_perturb=[1.1])


@pytest.mark.skipif(not FSDD.is_dir(), reason=f"FSDD not found at {FSDD}")
def test_resynthesis_gives_each_epoch_new_seeded_training_utterances(tmp_path, resampler_loaded):
    def task(**data):
        raw = {"task": "asr",
               "data": {"source": "fsdd_digits", "data_dir": str(FSDD.parents[1]),
                        "split": "loso:george", "train_utterances": 6, "valid_utterances": 2,
                        "test_utterances": 2, "cache": False, "normalize": "utterance",
                        "speed_perturb": [0.9, 1.1], **data},
               "model": {"conv_channels": [8], "conv_strides": [2], "hidden_size": 8,
                         "num_layers": 1}, "trainer": {"seed": 0}}
        return ASRTask(build_run_config(raw))

    a, b, fixed = task(resynthesize=True), task(resynthesize=True), task()
    assert a.train_utterances(0) is a.data["train"] and fixed.train_utterances(3) is fixed.data[
        "train"]
    e1, e2 = a.train_utterances(1), a.train_utterances(2)
    texts = [[u[2] for u in e] for e in (a.data["train"], e1, e2)]
    assert len({tuple(t) for t in texts}) == 3 and all(len(t) == 6 for t in texts)
    assert a.train_utterances(2) is e2  # made once per epoch
    for u, v in zip(e1, b.train_utterances(1)):  # seeded: another task makes the same epoch
        assert u[2] == v[2] and np.array_equal(u[0], v[0])
        np.testing.assert_allclose(u[0].mean(0), 0.0, atol=1e-4)  # normalised per utterance
    assert "".join(a.units.decode(u[1]) for u in e1) == "".join(u[2] for u in e1)
    with pytest.raises(ConfigError, match=r"data\.resynthesize': only for data\.source"):
        ASRTask(build_run_config(recipe(make_corpus(tmp_path / "c", n=4), resynthesize=True)))
