"""MIDI <-> piano roll through pretty_midi: exact round trip, grids, bad files."""
import numpy as np
import pytest

pretty_midi = pytest.importorskip("pretty_midi")

from rnnkit.data.midi import read_midi, read_midi_folder, write_midi  # noqa: E402
from rnnkit.data.music import NUM_KEYS, MusicDataError  # noqa: E402


def random_roll(T, seed):
    rng = np.random.default_rng(seed)
    roll = (rng.random((T, NUM_KEYS)) < 0.05).astype(np.uint8)
    roll[-1, 40] = 1  # the piece ends with a sounding step (trailing rests are not stored)
    return roll


@pytest.mark.parametrize("spq", [1, 4])
def test_roll_round_trips_through_a_midi_file(tmp_path, spq):
    roll = random_roll(40, spq)
    path = write_midi(roll, tmp_path / "x.mid", steps_per_quarter=spq, tempo=87.0)
    back, dropped = read_midi(path, steps_per_quarter=spq)
    assert dropped == 0
    np.testing.assert_array_equal(back, roll)


def test_grid_follows_the_beat_and_drops_notes_off_the_piano(tmp_path):
    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)  # a quarter note is 0.5 s
    inst = pretty_midi.Instrument(program=0)
    inst.notes += [pretty_midi.Note(velocity=80, pitch=60, start=0.0, end=1.0),    # 2 quarters
                   pretty_midi.Note(velocity=80, pitch=64, start=0.5, end=0.6),    # heard at 1
                   pretty_midi.Note(velocity=80, pitch=67, start=0.6, end=0.9),    # between
                   pretty_midi.Note(velocity=80, pitch=10, start=0.0, end=0.5)]    # below A0
    pm.instruments.append(inst)
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes.append(pretty_midi.Note(velocity=80, pitch=36, start=0.0, end=2.0))
    pm.instruments.append(drums)
    pm.write(str(tmp_path / "g.mid"))
    roll, dropped = read_midi(tmp_path / "g.mid", steps_per_quarter=1)
    assert dropped == 1 and roll.shape == (2, NUM_KEYS)  # drums ignored
    assert [list(np.flatnonzero(r) + 21) for r in roll] == [[60], [60, 64]]
    fine, _ = read_midi(tmp_path / "g.mid", steps_per_quarter=8)  # 1/32 notes: 0.0625 s
    assert fine[:, 67 - 21].sum() == 5  # 0.6-0.9 s covers grid points 10..14


def test_bad_midi_files_get_one_line_errors(tmp_path):
    empty = pretty_midi.PrettyMIDI()
    empty.instruments.append(pretty_midi.Instrument(program=0))
    empty.write(str(tmp_path / "empty.mid"))
    (tmp_path / "junk.mid").write_bytes(b"MThd not really")
    for name, msg in (("empty.mid", r"empty\.mid: no notes; expected a MIDI file with at least"),
                      ("junk.mid", r"junk\.mid: not a readable MIDI file"),
                      ("none.mid", r"none\.mid: no such file")):
        with pytest.raises(MusicDataError, match=msg) as e:
            read_midi(tmp_path / name)
        assert "\n" not in str(e.value)


def test_folder_reader(tmp_path):
    for i in range(3):
        write_midi(random_roll(10 + i, i), tmp_path / "sub" / f"{i}.MID")
    rolls, dropped = read_midi_folder(tmp_path)
    assert sorted(rolls) == ["sub/0.MID", "sub/1.MID", "sub/2.MID"] and dropped == 0
    assert [len(rolls[f"sub/{i}.MID"]) for i in range(3)] == [10, 11, 12]
    (tmp_path / "empty").mkdir()
    with pytest.raises(MusicDataError, match=r"empty: no \.mid or \.midi files"):
        read_midi_folder(tmp_path / "empty")
    with pytest.raises(MusicDataError, match=r"nothing-here: not a folder"):
        read_midi_folder(tmp_path / "nothing-here")
