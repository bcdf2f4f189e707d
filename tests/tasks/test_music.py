"""The music task end to end on generated chorales: train, checkpoint, evaluate, generate."""
import argparse
import json

import numpy as np
import pytest
import torch

from rnnkit.commands.generate import add_parser
from rnnkit.data.music import MusicDataError
from rnnkit.tasks import get_task_spec
from rnnkit.tasks.music import MusicTask, evaluate_music_checkpoint
from rnnkit.train.checkpoint import write_checkpoint
from rnnkit.train.config import build_run_config, to_dict


def chorales(n, seed):
    """Pieces of C-major triads moving up and down by step: very predictable."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        root = 60 + int(rng.integers(0, 5))
        steps = []
        for _ in range(int(rng.integers(8, 14))):
            steps.append([root, root + 4, root + 7])
            root += int(rng.choice([-1, 1]))
        out.append(steps)
    return out


def recipe(source, output, **data):
    return {"task": "music",
            "data": {"source": str(source), "batch_size": 4, "transpose": 2, **data},
            "model": {"cell": "gru", "hidden_size": 16, "output": output, "nade_hidden": 8},
            "trainer": {"seed": 0}}


@pytest.fixture(scope="module", params=["bernoulli", "nade"])
def trained(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"music_{request.param}")
    src = tmp / "mini.json"
    src.write_text(json.dumps({"train": chorales(12, 0), "valid": chorales(3, 1),
                               "test": chorales(3, 2)}))
    torch.manual_seed(0)
    cfg = build_run_config(recipe(src, request.param))
    task = MusicTask(cfg)
    before = task.evaluate(task.model, "test")
    task.setup(0, 1)
    opt = torch.optim.Adam(task.model.parameters(), lr=0.02)
    for epoch in range(15):
        assert task.steps_per_epoch(epoch) == 3
        for batch in task.train_batches(epoch, 0):
            out = task.training_step(task.model, batch, None)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
    after = task.evaluate(task.model, "test")
    best = write_checkpoint(tmp / "run" / "best", model_state=task.model.state_dict(),
                            config=to_dict(cfg), task="music", version="0",
                            write_assets=task.write_assets)
    return tmp, {"best": best, "before": before, "after": after, "output": request.param}


def test_training_lowers_the_nll_and_checkpoints(trained):
    _, run = trained
    assert run["after"]["loss"] < run["before"]["loss"] - 1.5  # nats per step
    assert 0 <= run["after"]["frame_acc"] <= 1
    ev = evaluate_music_checkpoint(run["best"])
    assert ev["split"] == "test" and ev["pieces"] == 3
    assert ev["nll_per_step"] == pytest.approx(run["after"]["loss"], rel=1e-5)
    assert json.loads((run["best"] / "music.json").read_text())["num_keys"] == 88


def test_generate_writes_midi_and_png_through_the_cli(trained, capsys):
    pytest.importorskip("pretty_midi")
    from rnnkit.data.midi import read_midi, write_midi

    tmp, run = trained
    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers())
    outs = []
    for name in ("a", "b"):
        a = ap.parse_args(["generate", str(run["best"]), "--out", str(tmp / f"{name}.mid"),
                           "--length", "12", "--seed", "3"])
        assert a.func(a) == 0
        outs.append(read_midi(tmp / f"{name}.mid")[0])
        assert (tmp / f"{name}.png").stat().st_size > 1000
    assert "wrote" in capsys.readouterr().out
    np.testing.assert_array_equal(outs[0], outs[1])  # same seed, same piece
    prompt = write_midi(np.eye(88, dtype=np.uint8)[[39, 43, 46]][[0, 1, 2, 1]], tmp / "p.mid")
    info = get_task_spec("music").generate(run["best"], out=str(tmp / "c.mid"), prompt=str(prompt),
                                           length=5, seed=0, png=str(tmp / "c_roll.png"))
    assert info["prompt_steps"] == 4 and info["steps"] == 5
    assert len(read_midi(tmp / "c.mid")[0]) <= 9 and (tmp / "c_roll.png").is_file()
    a = ap.parse_args(["generate", str(run["best"]), "--top-k", "5"])
    with pytest.raises(ValueError, match="--top-k does not apply to music checkpoints"):
        a.func(a)


def test_predict_scores_a_midi_file(trained):
    pytest.importorskip("pretty_midi")
    from rnnkit.data.midi import write_midi

    tmp, run = trained
    f = write_midi(np.eye(88, dtype=np.uint8)[[39, 43, 46]], tmp / "s.mid")
    (r,) = get_task_spec("music").predict(run["best"], [str(f)])
    assert r["steps"] == 3 and r["nll_per_step"] > 0 and "NLL" in r["text"]


def test_missing_jsb_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RNNKIT_DATA", raising=False)
    cfg = build_run_config({"task": "music", "data": {"source": "jsb"}, "model": {}})
    with pytest.raises(MusicDataError, match="jsb_chorales/jsb-chorales-quarter.json not found"):
        MusicTask(cfg, data_dir=str(tmp_path))


def test_notes_off_the_piano_are_counted_in_the_header_and_evaluation(tmp_path):
    pieces = chorales(4, 0)
    pieces[0][0] = [*pieces[0][0], 12, 120]  # MIDI notes without a piano key: dropped, counted
    src = tmp_path / "off.json"
    src.write_text(json.dumps({"train": pieces, "test": chorales(2, 1)}))
    task = MusicTask(build_run_config(recipe(src, "bernoulli")))
    assert task.notes_off_piano == 2
    assert task.describe()["notes off the piano"] == "2 dropped (MIDI < 21 or > 108: no key)"
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps({"train": chorales(4, 0), "test": chorales(2, 1)}))
    task = MusicTask(build_run_config(recipe(clean, "bernoulli")))
    assert task.notes_off_piano == 0 and task.describe()["notes off the piano"].startswith("0 ")
    best = write_checkpoint(tmp_path / "best", model_state=task.model.state_dict(),
                            config=to_dict(task.config), task="music", version="0",
                            write_assets=task.write_assets)
    assert evaluate_music_checkpoint(best, data=str(src), split="train")["notes_off_piano"] == 2


def test_an_unknown_split_key_stops_the_run(tmp_path):
    src = tmp_path / "tst.json"
    src.write_text(json.dumps({"train": chorales(4, 0), "tst": chorales(2, 1)}))
    with pytest.raises(MusicDataError, match=r"tst\.json: unknown key 'tst'; expected keys "
                       r"train, valid, test$"):
        MusicTask(build_run_config(recipe(src, "bernoulli")))


def test_evaluate_refuses_a_non_positive_batch_size(tmp_path):
    src = tmp_path / "mini.json"
    src.write_text(json.dumps({"train": chorales(4, 0), "test": chorales(2, 1)}))
    task = MusicTask(build_run_config(recipe(src, "bernoulli")))
    best = write_checkpoint(tmp_path / "best", model_state=task.model.state_dict(),
                            config=to_dict(task.config), task="music", version="0",
                            write_assets=task.write_assets)
    for b in (0, -1):  # 0 fell back to the recipe's size; -1 divided by zero
        with pytest.raises(ValueError, match=rf"--batch-size: expected a positive integer, got {b}"):
            evaluate_music_checkpoint(best, batch_size=b)
    assert evaluate_music_checkpoint(best, batch_size=1)["nll_per_step"] == pytest.approx(
        evaluate_music_checkpoint(best)["nll_per_step"], rel=1e-5)
