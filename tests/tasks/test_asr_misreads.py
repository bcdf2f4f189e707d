"""The asr pipeline refuses input it would otherwise misread: transcripts CTC cannot align,
non-positive evaluation sizes, out-of-range data options and lexicons it cannot spell."""
import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

sf = pytest.importorskip("soundfile")
pytest.importorskip("librosa")
pytest.importorskip("torchmetrics")

from rnnkit.commands.evaluate import add_parser  # noqa: E402
from rnnkit.data.audio import AudioDataError  # noqa: E402
from rnnkit.tasks.asr import ASRTask, evaluate_asr_checkpoint  # noqa: E402
from rnnkit.tasks.asr_data import load_asr_data  # noqa: E402
from rnnkit.tasks.asr_eval import decode_split, make_decoder  # noqa: E402
from rnnkit.train.checkpoint import write_checkpoint  # noqa: E402
from rnnkit.train.config import ConfigError, build_run_config, to_dict  # noqa: E402

SR = 8000
LONG_TEXT = "one two six one two six"  # 23 characters, no repeats: 23 output frames


def corpus(folder: Path, n=8, extra: tuple[str, ...] = ()) -> Path:
    """``n`` one-second noise clips with short transcripts (speakers a/b alternating), a
    0.1 s ``short.wav`` (11 feature frames, 6 after the model's stride 2), and ``extra``
    rows; returns the CSV."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["path,text,speaker"]
    for i in range(n):
        sf.write(str(folder / f"u{i}.wav"), 0.1 * rng.standard_normal(SR).astype(np.float32), SR)
        rows.append(f"u{i}.wav,{['one two', 'six', 'two six one'][i % 3]},{'ab'[i % 2]}")
    sf.write(str(folder / "short.wav"), 0.1 * rng.standard_normal(SR // 10).astype(np.float32),
             SR)
    (folder / "corpus.csv").write_text("\n".join(rows + list(extra)) + "\n")
    return folder / "corpus.csv"


def recipe(source, **data):
    return {
        "task": "asr",
        "data": {"source": str(source), "test": "speaker=b", "valid_fraction": 0.0,
                 "batch_size": 4, "spec_augment": False, "cache": False, "lexicon": None,
                 "features": {"kind": "logmel", "n_mels": 20}, **data},
        "model": {"cell": "gru", "conv_channels": [8], "conv_strides": [2], "kernel_size": 3,
                  "hidden_size": 8, "num_layers": 1, "bidirectional": False, "dropout": 0.0},
        "trainer": {"seed": 0},
    }


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An (untrained) asr checkpoint over a feasible corpus: ``(csv, best)``."""
    tmp = tmp_path_factory.mktemp("asr_misreads")
    src = corpus(tmp / "corpus")
    torch.manual_seed(0)
    cfg = build_run_config(recipe(src))
    task = ASRTask(cfg)
    best = write_checkpoint(tmp / "run" / "best", model_state=task.model.state_dict(),
                            config=to_dict(cfg), task="asr", version="0",
                            write_assets=task.write_assets)
    return src, best


# ------------------------------------------------------------------ 1. CTC feasibility


def test_ctc_frames_needed_counts_a_blank_between_repeats():
    from rnnkit.tasks.asr_eval import ctc_frames_needed

    assert ctc_frames_needed([]) == 0
    assert ctc_frames_needed([3, 4, 5]) == 3
    assert ctc_frames_needed([3, 3, 3, 4, 4]) == 8  # hello-like: 5 units + 3 repeats


def test_a_transcript_too_long_for_its_audio_stops_training_naming_the_line(tmp_path):
    src = corpus(tmp_path, extra=(f"short.wav,{LONG_TEXT},a",))
    with pytest.raises(AudioDataError, match=r"corpus\.csv:10: transcript too long for its audio "
                       r"under CTC: it needs 23 output frames .* 11 feature frames give the "
                       r"model 6"):
        ASRTask(build_run_config(recipe(src)))
    ok = corpus(tmp_path / "ok", extra=("short.wav,six,a",))
    assert len(ASRTask(build_run_config(recipe(ok))).data["train"]) == 5


def test_evaluation_data_too_long_for_its_audio_is_an_error_not_a_zero_loss(checkpoint):
    src, best = checkpoint
    good = src.read_text()
    try:
        src.write_text(good + f"short.wav,{LONG_TEXT},b\n")  # a test utterance (speaker=b)
        with pytest.raises(AudioDataError, match=r"corpus\.csv:10: .*needs 23 output frames.*"
                           r"give the model 6"):
            evaluate_asr_checkpoint(best, split="test")
    finally:
        src.write_text(good)


def test_decode_split_refuses_an_infeasible_utterance_and_a_non_positive_batch(checkpoint):
    from rnnkit.tasks.asr import load_asr_checkpoint

    src, best = checkpoint
    model, units, _, cfg = load_asr_checkpoint(best)
    items = load_asr_data(cfg.data, 0, units=units)[0]["test"]
    decode = make_decoder(units)
    for b in (0, -1):
        with pytest.raises(ValueError, match="expected a positive integer"):
            decode_split(model, items, decode, b)
    frames = np.zeros((11, 20), np.float32)
    bad = [(frames, units.encode(LONG_TEXT), LONG_TEXT, "x.csv:7")]
    with pytest.raises(AudioDataError, match=r"x\.csv:7: .*needs 23 output frames"):
        decode_split(model, bad, decode)


# ------------------------------------------------------------------ 2. evaluation sizes


@pytest.mark.parametrize("flags", [["--batch-size", "-1"], ["--batch-size", "0"],
                                   ["--beam-size", "0"], ["--beam-size", "-3"]])
def test_evaluate_cli_refuses_non_positive_sizes(checkpoint, flags):
    _, best = checkpoint
    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers())
    a = ap.parse_args(["evaluate", str(best), *flags])
    with pytest.raises(ValueError, match=rf"^{flags[0]}: expected a positive integer, "
                       rf"got {flags[1]}$"):
        a.func(a)


def test_evaluate_function_refuses_non_positive_sizes_instead_of_defaults(checkpoint):
    _, best = checkpoint
    for kw in ({"batch_size": 0}, {"batch_size": -1}, {"beam_size": 0}, {"beam_size": -2}):
        with pytest.raises(ValueError, match="expected a positive integer"):
            evaluate_asr_checkpoint(best, **kw)
    r = evaluate_asr_checkpoint(best, batch_size=1)
    assert r["decoder"] == "greedy" and r["utterances"] == 4
    whole = evaluate_asr_checkpoint(best)  # batching changes nothing but float rounding
    assert r["loss"] == pytest.approx(whole["loss"], rel=1e-5) and r["wer"] == whole["wer"]


# ------------------------------------------------------------------ 4. data options


@pytest.mark.parametrize("data, key", [
    ({"test": None, "valid_fraction": -0.5}, "valid_fraction"),
    ({"test": None, "test_fraction": -0.25}, "test_fraction"),
    ({"test": None, "test_fraction": 1.0}, "test_fraction"),
    ({"freq_masks": -2}, "freq_masks"),
    ({"time_width": -3}, "time_width"),
    ({"max_time_fraction": 7.0}, "max_time_fraction"),
    ({"eval_batch_size": 0}, "eval_batch_size"),
])
def test_out_of_range_data_options_name_the_key(checkpoint, data, key):
    src, _ = checkpoint
    with pytest.raises(ConfigError, match=rf"config key 'data\.{key}': expected"):
        ASRTask(build_run_config(recipe(src, **data)))


def test_a_split_filter_matching_nothing_is_an_error(checkpoint):
    src, _ = checkpoint
    with pytest.raises(ConfigError, match=r"'data\.test': filter 'path=nope\.wav' matches none "
                       r"of the 8 files"):
        ASRTask(build_run_config(recipe(src, test="path=nope.wav")))
    with pytest.raises(ConfigError, match=r"'data\.valid': filter 'speaker=b' matches none of "
                       r"the 4 non-test files"):
        ASRTask(build_run_config(recipe(src, valid="speaker=b")))  # all of them are test files


@pytest.mark.parametrize("data, key", [({"train_utterances": 0}, "train_utterances"),
                                       ({"test_utterances": -5}, "test_utterances"),
                                       ({"valid_utterances": -1}, "valid_utterances")])
def test_utterance_counts_out_of_range_are_errors(tmp_path, data, key):
    cfg = build_run_config({"task": "asr", "data": {"source": "fsdd_digits", **data}})
    with pytest.raises(ConfigError, match=rf"config key 'data\.{key}': expected"):
        load_asr_data(cfg.data, 0, data_dir=str(tmp_path))  # checked before FSDD is looked for


# ------------------------------------------------------------------ 5. lexicon


def test_lexicon_words_are_lower_cased_as_transcripts_are(checkpoint, tmp_path):
    src, _ = checkpoint
    task = ASRTask(build_run_config(recipe(src, lexicon=["ONE", "Two", "six"])))
    assert task.lexicon == ["one", "two", "six"]
    f = tmp_path / "words.txt"
    f.write_bytes("\ufeffONE\n\n  two  \r\nSix\n".encode())
    assert ASRTask(build_run_config(recipe(src, lexicon=str(f)))).lexicon == ["one", "two", "six"]
    f.write_bytes(b"ONE\tW AH N\ntwo  T UW\n")  # a pronunciation lexicon: the first field
    assert ASRTask(build_run_config(recipe(src, lexicon=str(f)))).lexicon == ["one", "two"]


def test_bad_lexicon_entries_name_the_file_and_line(checkpoint, tmp_path):
    src, _ = checkpoint
    f = tmp_path / "words.txt"
    cases = [(b"one\n\nzebra\n", r"words\.txt:3: lexicon word 'zebra' has character 'z'"),
             ("one\nsix\u00e9\n".encode(), r"words\.txt:2: lexicon word 'six\u00e9'"),
             (b"one\n\xff\n", r"data\.lexicon: .*words\.txt:2.*UTF-8")]
    for data, msg in cases:
        f.write_bytes(data)
        with pytest.raises(AudioDataError, match=msg):
            ASRTask(build_run_config(recipe(src, lexicon=str(f))))
    with pytest.raises(AudioDataError, match=r"'data\.lexicon\[1\]': expected one word"):
        ASRTask(build_run_config(recipe(src, lexicon=["one", "two six"])))
