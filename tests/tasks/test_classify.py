"""The classify task end to end on a tiny synthetic corpus: train, checkpoint, evaluate, predict."""
import argparse
import io
import json
import random
from pathlib import Path

import pytest
import torch

from rnnkit.commands.predict import add_parser
from rnnkit.data.textcls import TextDataError
from rnnkit.tasks import get_task_spec
from rnnkit.tasks.classify import (
    ClassifyTask,
    classification_report,
    evaluate_classify_checkpoint,
    plot_confusion,
    predict_texts,
)
from rnnkit.train.checkpoint import write_checkpoint
from rnnkit.train.config import ConfigError, build_run_config, load_recipe, to_dict

ROOT = Path(__file__).resolve().parents[2]
WORDS = {"pos": ["great", "superb", "loved"], "neg": ["awful", "boring", "hated"],
         "mix": ["okay", "fine", "average"]}
FILL = ["the", "film", "was", "a", "plot", "and", "it", "this"]


def make_csv(path: Path, n_per_class: int, seed: int, classes=("pos", "neg", "mix")) -> Path:
    """Texts of 3-12 filler words plus one class word; header text,label."""
    rng = random.Random(seed)
    rows = []
    for label in classes:
        for _ in range(n_per_class):
            words = [rng.choice(FILL) for _ in range(rng.randint(3, 12))]
            words.insert(rng.randint(0, len(words)), rng.choice(WORDS[label]))
            rows.append(f"{' '.join(words)},{label}")
    rng.shuffle(rows)
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    return path


def recipe(tmp, **data):
    return {
        "task": "classify",
        "data": {"source": None, "train": str(make_csv(tmp / "train.csv", 30, 0)),
                 "test": str(make_csv(tmp / "test.csv", 6, 1)), "valid_fraction": 0.2,
                 "batch_size": 8, "vocab_size": 100, "max_tokens": 10, **data},
        "model": {"embedding_dim": 16, "hidden_size": 12, "dropout": 0.0,
                  "embedding_dropout": 0.0, "pooling": "max"},
        "trainer": {"seed": 0},
    }


def train_task(task, epochs=8, lr=0.02):
    """The Trainer's loop reduced to its core (the Trainer is tested in tests/train)."""
    task.setup(0, 1)
    opt = torch.optim.Adam(task.model.parameters(), lr=lr)
    for epoch in range(epochs):
        for batch in task.train_batches(epoch, 0):
            out = task.training_step(task.model, batch, None)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
    task.model.eval()
    return task


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("classify")
    torch.manual_seed(0)
    cfg = build_run_config(recipe(tmp))
    task = train_task(ClassifyTask(cfg))
    metrics = {s: task.evaluate(task.model, s) for s in task.eval_splits}
    best = write_checkpoint(tmp / "run" / "best", model_state=task.model.state_dict(),
                            config=to_dict(cfg), task="classify", version="0",
                            write_assets=task.write_assets)
    return tmp, task, best, metrics


def test_splits_batches_and_tokenizer(trained):
    _, task, _, _ = trained
    assert task.classes == ["mix", "neg", "pos"] and task.eval_splits == ("valid", "test")
    assert [len(task.data[s][0]) for s in ("train", "valid", "test")] == [72, 18, 18]
    assert sorted(task.data["valid"][1].tolist()) == [0] * 6 + [1] * 6 + [2] * 6  # per class
    assert task.steps_per_epoch(0) == 9
    lengths = [len(x) for x in task.data["train"][0]]
    assert max(lengths) == 10 and min(lengths) >= 4  # truncated to max_tokens
    seen = []
    for x, L, y in task.train_batches(0, 0):
        assert x.shape == (len(L), int(L.max())) and (x[torch.arange(x.shape[1]) >= L[:, None]] == 0).all()
        seen.extend(y.tolist())
    assert len(seen) == 72
    rest = list(task.train_batches(0, 7))  # resumed at batch 7 of 9
    assert len(rest) == 2
    assert task.tokenizer.token_to_id("great") is not None and not task.tokenizer.kind == "bpe"


def test_training_learns_and_checkpoints(trained):
    tmp, task, best, metrics = trained
    assert metrics["test"]["acc"] == 1.0 and metrics["test"]["macro_f1"] == 1.0
    assert metrics["test"]["loss"] < 0.2
    assert json.loads((best / "labels.json").read_text()) == {"classes": ["mix", "neg", "pos"],
                                                               "multi_label": False}
    ev = evaluate_classify_checkpoint(best, split="test", plot=tmp / "cm.png")
    assert ev["texts"] == 18 and ev["acc"] == 1.0
    assert ev["loss"] == pytest.approx(metrics["test"]["loss"], rel=1e-4)
    assert ev["confusion"] == [[6, 0, 0], [0, 6, 0], [0, 0, 6]]
    assert ev["precision"] == {"mix": 1.0, "neg": 1.0, "pos": 1.0}
    assert (tmp / "cm.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_a_labelled_file_and_unknown_labels(trained, tmp_path):
    _, _, best, _ = trained
    f = tmp_path / "new.csv"
    f.write_text("text,label\nthe film was great,pos\nhated it,neg\n")
    ev = evaluate_classify_checkpoint(best, data=f)
    assert ev["texts"] == 2 and ev["acc"] == 1.0
    f.write_text("text,label\nthe film was great,pos\nso so,meh\n")
    with pytest.raises(TextDataError, match=r"new\.csv:3: label 'meh' was never seen in training"):
        evaluate_classify_checkpoint(best, data=f)


def test_predict_texts_and_cli(trained, capsys, monkeypatch):
    _, _, best, _ = trained
    r = predict_texts(best, ["the plot was superb", "boring film", "it was okay"], top_k=3)
    assert [x["label"] for x in r] == ["pos", "neg", "mix"]
    assert all(x["prob"] > 0.5 for x in r)
    assert sum(p for _, p in r[0]["top"]) == pytest.approx(1.0, abs=1e-5)
    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers())
    monkeypatch.setattr("sys.stdin", io.StringIO("hated this film\n\n"))
    a = ap.parse_args(["predict", str(best), "loved it", "--file", "-"])
    assert a.func(a) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split("\t")[0] for ln in lines] == ["pos", "neg"]
    assert lines[0].split("\t")[-1] == "loved it"
    with pytest.raises(TextDataError, match="input 1: empty text"):
        predict_texts(best, ["  "])


def test_report_by_hand_and_multi_label(tmp_path):
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 2.0]])  # predicts 0, 1, 0, 1
    rep = classification_report(logits, torch.tensor([0, 0, 0, 1]), ["a", "b"])
    assert rep["acc"] == 0.75 and rep["confusion"] == [[2, 1], [0, 1]]
    assert rep["precision"] == {"a": 1.0, "b": 0.5} and rep["recall"] == pytest.approx({"a": 2 / 3, "b": 1.0})
    assert rep["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    ml = classification_report(torch.tensor([[3.0, -3.0], [3.0, 3.0]]),
                               torch.tensor([[1, 0], [1, 0]]), ["x", "y"], multi_label=True)
    assert ml["acc"] == 0.5 and ml["recall"]["x"] == 1.0 and ml["precision"]["y"] == 0.0
    assert plot_confusion(ml["confusion"], ["x", "y"], tmp_path / "ml.png").is_file()


def test_multi_label_task_trains(tmp_path):
    rng = random.Random(0)
    lines = []
    for _ in range(40):
        tags = [t for t in ("pos", "neg") if rng.random() < 0.5]
        words = [rng.choice(FILL) for _ in range(4)] + [WORDS[t][0] for t in tags]
        rng.shuffle(words)
        lines.append(json.dumps({"text": " ".join(words), "tags": "|".join(tags)}))
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    cfg = recipe(tmp_path, train=str(tmp_path / "d.jsonl"), test=None, label_column="tags",
                 label_sep="|", valid_fraction=0.0)
    torch.manual_seed(0)
    task = train_task(ClassifyTask(build_run_config(cfg)), epochs=10)
    assert task.multi_label and task.classes == ["neg", "pos"] and task.eval_splits == ()
    logits, y = task.predict_split(task.model, "train")
    assert y.shape == (40, 2) and classification_report(logits, y, task.classes, multi_label=True)["acc"] >= 0.9


def test_shipped_recipe_and_bad_config(tmp_path):
    cfg = load_recipe(ROOT / "configs" / "imdb_bilstm.yaml")
    assert cfg.task == "classify" and cfg.data.source == "imdb" and cfg.model.cell == "lstm"
    assert cfg.model.bidirectional and cfg.trainer.max_time_minutes <= 60
    assert get_task_spec("classify").data_config is type(cfg.data)
    with pytest.raises(ValueError, match="data.batch_size"):
        ClassifyTask(build_run_config(recipe(tmp_path, batch_size=0)))
    with pytest.raises(ValueError, match="unknown dataset 'sst'"):
        ClassifyTask(build_run_config(recipe(tmp_path, source="sst", train=None, test=None)))
    one = tmp_path / "one.csv"
    one.write_text("text,label\na b,x\nc d,x\n")
    with pytest.raises(TextDataError, match=r"found 1 label\(s\) \['x'\]; expected at least 2"):
        ClassifyTask(build_run_config(recipe(tmp_path, train=str(one), test=None, valid_fraction=0.0)))


@pytest.mark.parametrize("key", ["max_train", "max_eval"])
def test_a_negative_subset_size_is_an_error_not_all_but_n(tmp_path, key):
    # data[:-3] would have kept all but 3 examples
    with pytest.raises(ConfigError, match=rf"'data\.{key}': expected a positive integer or null, got -3"):
        ClassifyTask(build_run_config(recipe(tmp_path, **{key: -3})))


def test_a_header_only_test_file_is_an_error_not_no_test_split(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    with pytest.raises(TextDataError, match=r"empty\.csv: no examples for the test split"):
        ClassifyTask(build_run_config(recipe(tmp_path, test=str(empty))))


def test_a_recipe_that_names_files_reads_them_not_imdb(tmp_path, monkeypatch):
    """data.train without data.source reads the file (the docs' recipe); IMDB is the default
    only when no file is named; a recipe naming both is an error naming both keys."""
    import rnnkit.tasks.classify_data as cd

    def no_imdb(*a, **k):
        raise AssertionError("IMDB was looked up although the recipe names its own files")

    monkeypatch.setattr(cd, "resolve_imdb", no_imdb)
    raw = recipe(tmp_path)
    del raw["data"]["source"]  # as docs/howto/own-data.md writes it: no source key at all
    task = ClassifyTask(build_run_config(raw))
    assert set(task.classes) == {"pos", "neg", "mix"}
    assert sum(len(y) for _, y in task.data.values()) == 3 * 30 + 3 * 6  # train+valid, test
    both = recipe(tmp_path, source="imdb")
    with pytest.raises(ConfigError, match=r"'data.source' \('imdb'\) and 'data.train' \("):
        ClassifyTask(build_run_config(both))
    calls = []
    fake = {"train": make_csv(tmp_path / "imdb_train.csv", 10, 3), "test": make_csv(
        tmp_path / "imdb_test.csv", 2, 4)}
    monkeypatch.setattr(cd, "resolve_imdb", lambda *a, **k: calls.append(1) or fake)
    none = recipe(tmp_path, train=None, test=None)
    del none["data"]["source"]
    task = ClassifyTask(build_run_config(none))  # no file named: the default dataset is read
    assert calls == [1] and sum(len(y) for _, y in task.data.values()) == 3 * 10 + 3 * 2


def test_a_label_name_matching_no_training_label_is_an_error(tmp_path):
    """data.label_names used to rename nothing, silently, for a key no label has: a typo, or
    an unquoted yes/no, which YAML reads as a boolean (caught when the recipe is read)."""
    with pytest.raises(ConfigError, match=r"config key 'data.label_names.poss': no training "
                       r"label 'poss' in .*train\.csv; expected one of its labels: 'mix', "
                       r"'neg', 'pos'$"):
        ClassifyTask(build_run_config(recipe(tmp_path, label_names={"poss": "positive"})))
    with pytest.raises(ConfigError, match=r"'data.label_names': key True was read as bool"):
        build_run_config(recipe(tmp_path, label_names={True: "pos"}))
    task = ClassifyTask(build_run_config(recipe(tmp_path, label_names={"pos": "positive"})))
    assert set(task.classes) == {"positive", "neg", "mix"}


def test_a_wordpiece_run_resumes_with_its_own_tokenizer(tmp_path):
    """HF's WordPiece trainer numbers its tokens differently run to run: a resume that trained
    it again would have been refused (or, before that check, given every embedding row another
    token). The resume reads the checkpoint's tokenizer and classes."""
    import json
    import random

    from rnnkit.train.run import run_training

    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 9))) for _ in range(3000)]
    csv = tmp_path / "c.csv"
    csv.write_text("text,label\n" + "".join(
        " ".join(rng.choice(words) for _ in range(12)) + f",{i % 2}\n" for i in range(400)))
    raw = {"task": "classify",
           "data": {"train": str(csv), "tokenizer": "wordpiece", "vocab_size": 300, "batch_size": 32},
           "model": {"hidden_size": 16, "embedding_dim": 16},
           "trainer": {"max_epochs": 1, "accelerator": "cpu", "progress": False, "loggers": [],
                       "plot": False, "out_dir": str(tmp_path / "runs"), "name": "c"}}
    run_training(build_run_config(raw), recipe_name="c", test_split=None)
    tok = json.loads((tmp_path / "runs" / "c" / "last" / "tokenizer.json").read_text())
    raw["trainer"]["max_epochs"] = 2
    s = run_training(build_run_config(raw), recipe_name="c", resume=tmp_path / "runs" / "c",
                     test_split=None)
    assert s["step"] == 24  # 12 batches an epoch (360 texts after validation): two epochs
    assert json.loads((tmp_path / "runs" / "c" / "last" / "tokenizer.json").read_text()) == tok
