"""Audio data: labels from folders/CSV/file names, reading, log-mel/MFCC, SpecAugment."""
from pathlib import Path

import numpy as np
import pytest
import torch

sf = pytest.importorskip("soundfile")
librosa = pytest.importorskip("librosa")

from rnnkit.data.audio import (  # noqa: E402
    AudioDataError,
    FeatureConfig,
    collate,
    compute_features,
    feature_table,
    list_audio,
    list_from_csv,
    list_from_folders,
    list_from_pattern,
    load_audio,
    select,
    spec_augment,
)

FSDD = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "fsdd" / "recordings"


def tone(freq, sr=8000, seconds=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path, y, sr=8000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr)
    return path


# ----------------------------------------------------------------------------- features


@pytest.mark.parametrize("freq", [300.0, 1000.0, 2500.0])
def test_logmel_peak_band_is_the_tone(freq):
    cfg = FeatureConfig(kind="logmel", n_mels=40)
    feats = compute_features(tone(freq), cfg)  # (T, 40)
    assert feats.shape == (1 + 4000 // 80, 40)
    centres = librosa.mel_frequencies(n_mels=42, fmin=0.0, fmax=4000.0)[1:-1]
    band = int(np.argmax(feats[5:-5].mean(0)))  # away from the padded edges
    assert band == int(np.argmin(np.abs(centres - freq)))
    # a pure tone: the peak band is far above the bands an octave away
    far = np.abs(np.log2(centres / freq)) > 1
    assert feats[5:-5].mean(0)[band] - feats[5:-5].mean(0)[far].max() > 30  # dB


def test_mfcc_is_the_dct_of_logmel_and_deltas_stack():
    y = tone(700)
    lm = compute_features(y, FeatureConfig(kind="logmel", n_mels=40))
    mf = compute_features(y, FeatureConfig(kind="mfcc", n_mels=40, n_mfcc=13))
    from scipy.fft import dct

    np.testing.assert_allclose(mf, dct(lm, type=2, norm="ortho", axis=1)[:, :13], rtol=1e-4, atol=1e-3)
    d = compute_features(y, FeatureConfig(kind="mfcc", n_mfcc=13, deltas=2))
    assert d.shape == (mf.shape[0], 39) and FeatureConfig(n_mfcc=13, deltas=2).num_features == 39
    np.testing.assert_allclose(d[:, :13], mf, atol=1e-5)
    # the delta of a steady tone is ~0 away from the edges
    assert np.abs(d[10:-10, 13:26]).max() < 1e-3 * np.abs(mf).max() + 1e-3


def test_load_audio_resamples_and_mixes_down(tmp_path):
    y = tone(1000, sr=16000)
    p = write(tmp_path / "a.wav", np.stack([y, y], axis=1), sr=16000)  # stereo, 16 kHz
    out, sr = load_audio(p, 8000)
    assert sr == 8000 and abs(len(out) - len(y) // 2) <= 1 and out.dtype == np.float32
    spec = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spec) * 8000 / len(out) - 1000) < 5
    same, sr = load_audio(p)
    assert sr == 16000 and np.allclose(same, y, atol=1e-4)


def test_unreadable_audio_names_the_file(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    with pytest.raises(AudioDataError, match=r"broken\.wav: cannot read audio"):
        load_audio(bad)
    with pytest.raises(AudioDataError, match=r"missing\.wav: no such audio file"):
        load_audio(tmp_path / "missing.wav")
    empty = write(tmp_path / "empty.wav", np.zeros(0, np.float32))
    with pytest.raises(AudioDataError, match=r"empty\.wav: the audio file has no samples"):
        load_audio(empty)


def test_feature_table_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for i, f in enumerate((400, 900)):
        write(tmp_path / "clips" / f"{i}_a_0.wav", tone(f, seconds=0.2 + 0.1 * i))
    items = list_from_pattern(tmp_path / "clips")
    cfg = FeatureConfig()
    first = feature_table(items, cfg)
    assert len(list((tmp_path / "cache" / "rnnkit" / "audio").glob("*.npz"))) == 1
    again = feature_table(items, cfg)
    assert [a.shape for a in again] == [(21, 20), (31, 20)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- labels


def test_labels_from_folders(tmp_path):
    for label in ("yes", "no"):
        for i in range(2):
            write(tmp_path / label / f"{i}.wav", tone(500))
    (tmp_path / "no" / "notes.txt").write_text("ignored")
    items = list_from_folders(tmp_path)
    assert items.labels == ["no", "no", "yes", "yes"] and items.classes() == ["no", "yes"]
    assert list_audio(tmp_path).labels == items.labels  # auto: subfolders
    with pytest.raises(AudioDataError, match="no audio files in label subfolders"):
        list_from_folders(tmp_path / "no")


def test_labels_from_csv(tmp_path):
    write(tmp_path / "wav" / "a.wav", tone(500))
    write(tmp_path / "wav" / "b.wav", tone(600))
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label,split\nwav/a.wav,dog,train\nwav/b.wav,cat,test\n")
    items = list_audio(csv)
    assert items.paths == [tmp_path / "wav" / "a.wav", tmp_path / "wav" / "b.wav"]
    assert items.labels == ["dog", "cat"] and select(items, "split=test") == [1]
    csv.write_text("file,label\nwav/a.wav,dog\n")
    with pytest.raises(AudioDataError, match=r"labels\.csv:1: no 'path' column"):
        list_from_csv(csv)
    csv.write_text("path,label\nwav/a.wav,dog\nwav/zzz.wav,cat\n")
    with pytest.raises(AudioDataError, match=r"labels\.csv:3: audio file .*zzz\.wav not found"):
        list_from_csv(csv)
    csv.write_text("path,label\nwav/a.wav,\n")
    with pytest.raises(AudioDataError, match=r"labels\.csv:2: empty 'label'"):
        list_from_csv(csv)
    csv.write_text("path,label\nwav/a.wav,dog,extra\n")
    with pytest.raises(AudioDataError, match=r"labels\.csv:2: expected 2 columns, got 3"):
        list_from_csv(csv)


def test_labels_from_file_name_pattern(tmp_path):
    for name in ("7_theo_12.wav", "10_ann_3.wav", "0_theo_0.flac"):
        write(tmp_path / name, tone(500))
    items = list_audio(tmp_path)  # auto: no subfolders -> the FSDD pattern
    assert items.labels == ["0", "10", "7"] and items.classes() == ["0", "7", "10"]
    assert items.fields[2] == {"label": "7", "speaker": "theo", "index": "12"}
    assert select(items, "index<5") == [0, 1]
    assert select(items, "speaker=theo") == [0, 2] and select(items, "speaker!=theo") == [1]
    assert select(items, "speaker=ann,theo") == [0, 1, 2] and select(items, "index>=12") == [2]
    write(tmp_path / "oops.wav", tone(500))
    with pytest.raises(AudioDataError, match=r"oops\.wav: file name does not match the pattern"):
        list_from_pattern(tmp_path)
    with pytest.raises(AudioDataError, match="needs a {label} field"):
        list_from_pattern(tmp_path, "{speaker}_{index}")


def test_split_filter_errors(tmp_path):
    write(tmp_path / "1_a_0.wav", tone(500))
    items = list_from_pattern(tmp_path)
    with pytest.raises(AudioDataError, match=r"unknown field 'spk'; the files have \['index', 'label', 'speaker'\]"):
        select(items, "spk=a")
    with pytest.raises(AudioDataError, match="expected FIELD=VALUE"):
        select(items, "index ~ 3")
    with pytest.raises(AudioDataError, match="'<' needs numbers"):
        select(items, "speaker<3")


@pytest.mark.datasets
@pytest.mark.skipif(not FSDD.is_dir(), reason="needs ../shared/datasets/fsdd (not present)")
def test_fsdd_listing_and_standard_split():
    items = list_audio(FSDD)
    assert len(items) == 3000 and items.classes() == [str(d) for d in range(10)]
    test = select(items, "index<5")
    assert len(test) == 300
    assert sorted({items.fields[i]["speaker"] for i in test}) == [
        "george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    assert len(select(items, "speaker=theo")) == 500


# ----------------------------------------------------------------------------- batches


def test_spec_augment_masks_are_bands_within_bounds():
    g = torch.Generator().manual_seed(0)
    B, T, F = 64, 50, 20
    x = torch.randn(B, T, F) + 5.0  # no zeros before masking
    lengths = torch.randint(10, T + 1, (B,), generator=g)
    y, mask = spec_augment(x, lengths, freq_masks=2, freq_width=4, time_masks=2, time_width=6,
                           max_time_fraction=0.2, generator=g)
    assert y.shape == x.shape and mask.shape == (B, T, F) and mask.dtype == torch.bool
    assert torch.equal(y == 0, mask) and torch.equal(y[~mask], x[~mask])
    for b in range(B):
        n = int(lengths[b])
        m = mask[b, :n]
        assert not mask[b, n:].any()  # padding untouched
        cols = m.all(0)  # masked feature bands (every valid frame)
        rows = m.all(1)  # masked time spans (every feature)
        assert torch.equal(m, cols[None, :] | rows[:, None])  # nothing but bands and spans
        assert int(cols.sum()) <= 2 * 4
        assert int(rows.sum()) <= 2 * min(6, int(0.2 * n)) or int(cols.sum()) == F


def test_spec_augment_mask_sizes_follow_the_uniform_widths():
    g = torch.Generator().manual_seed(1)
    B, T, F = 4000, 40, 30
    lengths = torch.full((B,), T)
    _, mask = spec_augment(torch.ones(B, T, F), lengths, freq_masks=1, freq_width=10,
                           time_masks=0, generator=g)
    width = mask[:, 0, :].sum(1).float()  # one band: width ~ U{0..10}, mean 5
    assert abs(width.mean().item() - 5.0) < 0.2 and width.max().item() == 10
    _, mask = spec_augment(torch.ones(B, T, F), lengths, freq_masks=0, time_masks=1,
                           time_width=100, max_time_fraction=0.25, generator=g)
    span = mask[:, :, 0].sum(1).float()  # width ~ U{0..floor(0.25 * 40) = 10}
    assert abs(span.mean().item() - 5.0) < 0.2 and span.max().item() == 10


def test_collate_pads_and_keeps_lengths():
    x, lengths, y = collate([(torch.ones(3, 2), 1), (torch.ones(5, 2), 0)])
    assert x.shape == (2, 5, 2) and lengths.tolist() == [3, 5] and y.tolist() == [1, 0]
    assert x[0, 3:].abs().sum() == 0


def test_feature_config_errors():
    with pytest.raises(AudioDataError, match="features.hop_length: expected a positive integer, got 0"):
        FeatureConfig(hop_length=0)
    with pytest.raises(AudioDataError, match="features.n_mfcc=50: at most n_mels=40"):
        FeatureConfig(n_mfcc=50)
    with pytest.raises(AudioDataError, match="fmax <= sample_rate/2 = 4000"):
        FeatureConfig(fmax=6000.0)


# ----------------------------------------------------------------------------- issue 19


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_samples_name_the_file_sample_and_channel(tmp_path, bad):
    y = np.stack([tone(500), tone(700)], axis=1)  # (N, 2)
    y[1234, 1] = bad
    p = tmp_path / "f.wav"
    sf.write(str(p), y, 8000, subtype="FLOAT")
    with pytest.raises(AudioDataError, match=rf"f\.wav: sample 1235 \(1-based\), channel 2: non-finite value "
                                             rf"{bad} \(expected finite samples\)"):
        load_audio(p)


def test_split_filter_needs_finite_numbers(tmp_path):
    for name in ("1_a_0.wav", "1_a_nan.wav", "2_b_inf.wav"):
        write(tmp_path / name, tone(500))
    items = list_from_pattern(tmp_path)
    with pytest.raises(AudioDataError, match=r"split filter 'index<5': field 'index' is 'nan' in "
                                             r".*1_a_nan\.wav; '<' needs finite numbers"):
        select(items, "index<5")
    with pytest.raises(AudioDataError, match=r"split filter 'label<nan': the bound 'nan' is not a finite number"):
        select(items, "label<nan")


def test_csv_list_rows_are_file_lines_and_bad_files_are_one_line_errors(tmp_path):
    write(tmp_path / "a.wav", tone(500))
    csv = tmp_path / "labels.csv"
    csv.write_text('path,label\na.wav,"two\nlines"\nzzz.wav,cat\n')  # a quoted label spans lines 2-3
    with pytest.raises(AudioDataError, match=r"labels\.csv:4: audio file .*zzz\.wav not found"):
        list_from_csv(csv)
    csv.write_bytes(b"path,label\na.wav,\xff\n")
    with pytest.raises(AudioDataError, match=r"labels\.csv:2:7: invalid UTF-8 byte 0xff"):
        list_from_csv(csv)
    csv.write_text("path,label\na\x00.wav,dog\n")
    with pytest.raises(AudioDataError, match=r"labels\.csv:2: audio file .* not found"):
        list_from_csv(csv)
    csv.write_text("path,label,path\na.wav,dog,a.wav\n")
    with pytest.raises(AudioDataError, match=r"labels\.csv:1: column 'path' appears twice"):
        list_from_csv(csv)


def test_huge_cells_are_not_echoed_in_full(tmp_path):
    write(tmp_path / "a.wav", tone(500))
    csv = tmp_path / "labels.csv"
    big = "q" * 1_000_000
    csv.write_text(f"file,{big}\na.wav,dog\n")
    with pytest.raises(AudioDataError, match=r"labels\.csv:1: no 'path' column in the header 'file', 'q{40}'\.\.\. ") as e:
        list_from_csv(csv)
    assert len(str(e.value)) < 400
    csv.write_text(f"path,label\n{big}.wav,dog\n")
    with pytest.raises(AudioDataError, match=r"labels\.csv:2: audio file .*q{40}'?\.\.\. .* not found") as e:
        list_from_csv(csv)
    assert len(str(e.value)) < 600


def test_fuzz_findings_row_of_empty_cells_and_newline_in_a_file_name(tmp_path):
    # found by tests/data/test_fuzz_readers.py under HYPOTHESIS_PROFILE=long
    write(tmp_path / "a.wav", tone(500))
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\n,\na.wav,dog\n")  # was skipped: one row fewer, silently
    with pytest.raises(AudioDataError, match=r"labels\.csv:2: empty 'path'"):
        list_from_csv(csv)
    (tmp_path / "names").mkdir()
    (tmp_path / "names" / "odd\nname.wav").write_bytes(b"")
    with pytest.raises(AudioDataError, match=r"'.*odd\\nname\.wav': file name does not match") as e:
        list_from_pattern(tmp_path / "names")
    assert "\n" not in str(e.value)
