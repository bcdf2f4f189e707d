"""The tagging task end to end on generated sentences: train, checkpoint, evaluate, predict."""
import argparse
import json
import random
from pathlib import Path

import pytest
import torch

from rnnkit.commands.predict import add_parser
from rnnkit.data.conll import ConllError, Sentence
from rnnkit.tasks import get_task_spec
from rnnkit.tasks.tag import (
    TagDataConfig,
    TagTask,
    build_encoder,
    evaluate_tag_checkpoint,
    predict_tags,
    tag_metrics,
)
from rnnkit.train.checkpoint import write_checkpoint
from rnnkit.train.config import ConfigError, build_run_config, load_recipe, to_dict

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT.parent / "shared" / "datasets"
LEX = {"DET": ["the", "a", "this"], "ADJ": ["big", "red", "old", "happy"],
       "NOUN": ["dog", "cat", "house", "tree", "car"], "VERB": ["sees", "likes", "eats"],
       "PUNCT": [".", "!"]}


def sentence(rng):
    """DET (ADJ) NOUN VERB DET (ADJ) NOUN PUNCT, first word capitalised."""
    tags = ["DET"] + ["ADJ"] * rng.randint(0, 1) + ["NOUN", "VERB", "DET"] \
        + ["ADJ"] * rng.randint(0, 1) + ["NOUN", "PUNCT"]
    words = [rng.choice(LEX[t]) for t in tags]
    words[0] = words[0].capitalize()
    return words, tags


def write_conllu(path: Path, n: int, seed: int, extra: str = "") -> Path:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        words, tags = sentence(rng)
        out.append(f"# sent_id = {k}")
        out += [f"{i}\t{w}\t{w}\t{t}\tX{t}\t_\t0\tdep\t_\t_" for i, (w, t) in
                enumerate(zip(words, tags), start=1)]
        out.append("")
    path.write_text("\n".join(out) + "\n" + extra, encoding="utf-8")
    return path


def write_ner(path: Path, n: int, seed: int) -> Path:
    """Column file: 'NAME NAME? works in CITY .' with BIO tags (PER, LOC)."""
    rng = random.Random(seed)
    first, last, cities = ["John", "Mary", "Ann"], ["Smith", "Jones"], ["Paris", "Rome", "Oslo"]
    lines = ["-DOCSTART- O", ""]
    for _ in range(n):
        toks = [(rng.choice(first), "B-PER")]
        if rng.random() < 0.5:
            toks.append((rng.choice(last), "I-PER"))
        toks += [("works", "O"), ("in", "O"), (rng.choice(cities), "B-LOC"), (".", "O")]
        lines += [f"{w} {t}" for w, t in toks] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def recipe(source, **data):
    return {
        "task": "tag",
        "data": {"source": str(source), "batch_size": 8, "eval_batch_size": 16, **data},
        "model": {"word_dim": 16, "char_dim": 8, "char_hidden": 8, "hidden_size": 16,
                  "num_layers": 1, "dropout": 0.0},
        "trainer": {"seed": 0},
    }


def train_task(task, epochs=8, lr=0.02):
    """The Trainer's loop reduced to its core (the Trainer is tested in tests/train)."""
    task.setup(0, 1)
    opt = torch.optim.Adam(task.model.parameters(), lr=lr)
    for epoch in range(epochs):
        for batch in task.train_batches(epoch, 0):
            out = task.training_step(task.model, batch, task.initial_carry())
            opt.zero_grad()
            out.loss.backward()
            opt.step()
    task.model.eval()
    return task


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tag")
    data = tmp / "toy"
    data.mkdir()
    write_conllu(data / "toy-train.conllu", 48, 0)
    write_conllu(data / "toy-dev.conllu", 8, 1)
    write_conllu(data / "toy-test.conllu", 8, 2)
    torch.manual_seed(0)
    cfg = build_run_config(recipe(data))
    task = train_task(TagTask(cfg))
    metrics = {s: task.evaluate(task.model, s) for s in task.eval_splits}
    best = write_checkpoint(tmp / "run" / "best", model_state=task.model.state_dict(),
                            config=to_dict(cfg), task="tag", version="0",
                            write_assets=task.write_assets)
    return tmp, data, task, {"best": best, "metrics": metrics}


def test_training_learns_the_toy_grammar_and_checkpoints(trained):
    tmp, _, task, run = trained
    assert task.eval_splits == ("valid", "test") and task.tag_scheme == "none"
    assert task.encoder.tags.itos == ["ADJ", "DET", "NOUN", "PUNCT", "VERB"]
    assert "the" in task.encoder.words and "The" not in task.encoder.words  # lowercased
    assert "T" in task.encoder.chars  # the characters keep case
    test = run["metrics"]["test"]
    assert test["acc"] == 1.0 and test["loss"] < 0.1 and "f1" not in test
    best = run["best"]
    assert json.loads((best / "tags.json").read_text())["itos"] == task.encoder.tags.itos
    ev = evaluate_tag_checkpoint(best, report_dir=tmp / "report")
    assert ev["acc"] == test["acc"] and ev["loss"] == pytest.approx(test["loss"], rel=1e-5)
    assert ev["sentences"] == 8 and ev["tokens"] == sum(len(s[0]) for s in task.data["test"])
    assert ev["per_tag"]["PUNCT"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 8}
    png = Path(ev["confusion_png"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp / "report" / "report_test.json").read_text())["acc"] == 1.0
    assert not list((tmp / "report").glob(".*"))  # no temporary files left


def test_predict_tags_and_cli(trained, capsys, tmp_path):
    _, _, _, run = trained
    best = run["best"]
    (r,) = predict_tags(best, ["This red car likes the dog !"])
    assert r["tags"] == ["DET", "ADJ", "NOUN", "VERB", "DET", "NOUN", "PUNCT"]
    f = tmp_path / "in.txt"
    f.write_text("The cat eats a tree .\n\n")
    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers())
    a = ap.parse_args(["predict", str(best), "a dog sees this house .", "--file", str(f)])
    assert a.func(a) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == ["a/DET dog/NOUN sees/VERB this/DET house/NOUN ./PUNCT",
                     "The/DET cat/NOUN eats/VERB a/DET tree/NOUN ./PUNCT"]
    a = ap.parse_args(["predict", str(best), "Zyx", "--json"])
    assert a.func(a) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tokens"] == ["Zyx"] and out["tags"][0] in ("ADJ", "DET", "NOUN", "PUNCT", "VERB")


def test_unseen_gold_tags_name_file_and_line(trained, tmp_path):
    tmp, data, _, run = trained
    bad = write_conllu(tmp_path / "bad.conllu", 2, 5,
                       extra="1\tWow\twow\tINTJ\tUH\t_\t0\troot\t_\t_\n")
    n = len(bad.read_text().splitlines())
    with pytest.raises(ConllError, match=rf"bad\.conllu:{n}: tag 'INTJ' was never seen in training; "
                                         "expected one of ADJ, DET"):
        evaluate_tag_checkpoint(run["best"], data=str(bad))
    raw = recipe(data, train=str(data / "toy-train.conllu"), test=str(bad))
    del raw["data"]["source"]  # own files: no known dataset
    with pytest.raises(ConllError, match=rf"bad\.conllu:{n}: tag 'INTJ'"):
        TagTask(build_run_config(raw))
    # a source and a file both naming the data: an error naming both, not a silent mix
    with pytest.raises(ConfigError, match=r"'data\.source' \('.*'\) and 'data\.test' \("):
        TagTask(build_run_config(recipe(data, test=str(bad))))


def test_own_files_never_reach_for_the_default_dataset(tmp_path, monkeypatch):
    """data.train without data.source reads the files; UD EWT is the default only when no file
    is named (it used to be looked up and its valid/test mixed in)."""
    import rnnkit.tasks.tag_data as td

    seen = []
    monkeypatch.setattr(td, "resolve_tagging_data", lambda *a, **k: seen.append(a) or {})
    train = write_conllu(tmp_path / "mine-train.conllu", 12, 0)
    raw = recipe(tmp_path, train=str(train))
    del raw["data"]["source"]
    task = TagTask(build_run_config(raw))
    assert seen == [] and sum(len(v) for v in task.data.values()) == 12
    none = recipe(tmp_path)
    del none["data"]["source"]
    with pytest.raises(ConfigError, match="no training file"):
        TagTask(build_run_config(none))
    assert seen == [("ud_english_ewt",)]


def test_unk_replacement_only_hits_training_singletons():
    train = [Sentence(["The", "cat", "sat"], ["D", "N", "V"]), Sentence(["the", "Dog"], ["D", "N"])]
    enc = build_encoder(train, TagDataConfig())
    assert enc.words.itos == ["<pad>", "<unk>", "the", "cat", "sat", "dog"]
    assert sorted(enc.rare.tolist()) == [3, 4, 5]  # seen once; "the" (lowercased) twice
    sents = [(["x"] * 200, [3] * 100 + [2] * 100, [0] * 200)]
    g = torch.Generator().manual_seed(0)
    b = enc.batch(sents, unk_replace=0.5, generator=g)
    assert 30 < int((b.words[0, :100] == 1).sum()) < 70  # about half of the singletons
    assert int((b.words[0, 100:] == 1).sum()) == 0  # frequent words never
    assert int((enc.batch(sents).words == 1).sum()) == 0  # not at evaluation
    assert b.chars.shape[0] == 1 and b.token_index.unique().tolist() == [0]  # one distinct token


def test_bio_columns_crf_bioes_encoding_and_span_metrics(tmp_path):
    data = tmp_path / "ner"
    data.mkdir()
    write_ner(data / "train.txt", 40, 0)
    write_ner(data / "test.txt", 10, 1)
    torch.manual_seed(0)
    raw = recipe(data, encoding="bioes", valid_fraction=0.2)
    raw["model"]["output"] = "crf"
    task = train_task(TagTask(build_run_config(raw)), epochs=10)
    assert task.scheme == "bio" and task.tag_scheme == "bioes"
    assert set(task.encoder.tags.itos) == {"B-PER", "E-PER", "S-PER", "S-LOC", "O"}
    assert len(task.data["valid"]) == 8 and len(task.data["train"]) == 32  # 20% held out
    m = task.evaluate(task.model, "test")
    assert m["acc"] == 1.0 and m["f1"] == 1.0 and m["precision"] == 1.0


def test_span_metrics_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "O"]]  # 2 of 3 spans found, no false ones
    m = tag_metrics(gold, pred, "bio")
    assert m["acc"] == pytest.approx(5 / 6)
    assert (m["precision"], m["recall"]) == (1.0, pytest.approx(2 / 3))
    assert m["f1"] == pytest.approx(0.8)
    assert set(tag_metrics([["NOUN"]], [["VERB"]], "none")) == {"acc"}


def test_trainer_runs_the_task_end_to_end(trained, tmp_path):
    """``rnnkit train``'s code path: Fabric-wrapped model, best/ checkpoint, test metrics."""
    from rnnkit.train.run import run_training

    _, data, _, _ = trained
    raw = recipe(data)
    raw["trainer"] = {"seed": 0, "max_epochs": 2, "monitor": "val_acc", "mode": "max",
                      "progress": False, "loggers": ["csv"], "plot": False, "accelerator": "cpu",
                      "checkpoint_every_steps": None}
    raw["optim"] = {"lr": 0.02}
    summary = run_training(build_run_config(raw), out=tmp_path / "run")
    assert summary["task"] == "tag" and summary["epoch"] == 2 and summary["step"] == 12
    assert 0.0 < summary["test"]["test_acc"] <= 1.0
    assert {p.name for p in (tmp_path / "run" / "best").iterdir()} >= \
        {"model.safetensors", "config.json", "words.json", "chars.json", "tags.json"}


def test_shipped_recipe():
    cfg = load_recipe(ROOT / "configs" / "ud_ewt_upos.yaml")
    assert cfg.task == "tag" and cfg.data.source == "ud_english_ewt" and cfg.data.column == "upos"
    assert cfg.model.char_encoder == "lstm" and cfg.trainer.monitor == "val_acc"
    assert get_task_spec("tag").data_config is type(cfg.data)


@pytest.mark.datasets
def test_real_ud_english_ewt_task():
    if not (DATASETS / "ud_english_ewt").is_dir():
        pytest.skip(f"{DATASETS}/ud_english_ewt is absent (the shared datasets folder)")
    cfg = load_recipe(ROOT / "configs" / "ud_ewt_upos.yaml", ["data.max_sentences=200"])
    task = TagTask(cfg, data_dir=str(DATASETS))
    assert len(task.data["train"]) == 200 and len(task.data["valid"]) == 2001
    assert len(task.data["test"]) == 2077 and len(task.encoder.tags) == 17


def _typo(path: Path, old: str, new: str) -> int:
    """Replace the first line ``old`` with ``new``; its 1-based line number."""
    lines = path.read_text().splitlines()
    k = lines.index(old)
    lines[k] = new
    path.write_text("\n".join(lines) + "\n")
    return k + 1


def test_stray_tag_never_skips_the_scheme_conversion(tmp_path):
    """One '0' for 'O' used to make the file scheme "none", skip the BIO->BIOES conversion for
    the whole run and still report BIOES span metrics."""
    want = (r"tag {tag} is not O or B-/I-/E-/S- followed by a type "
            r"\(data\.encoding=bioes needs BIO, IOB or BIOES tags\)$")
    data = tmp_path / "ner"
    data.mkdir()
    train, test = write_ner(data / "train.txt", 12, 0), write_ner(data / "test.txt", 4, 1)
    raw = recipe(data, format="columns", encoding="bioes", valid_fraction=0.25)
    task = TagTask(build_run_config(raw))  # the good case: converted, train and test
    assert task.scheme == "bio" and task.tag_scheme == "bioes"
    assert task.encoder.tags.itos == ["B-PER", "E-PER", "O", "S-LOC", "S-PER"]
    assert {task.encoder.tags.itos[i] for x in task.data["test"] for i in x[2]} <= \
        {"B-PER", "E-PER", "O", "S-LOC", "S-PER"}
    n = _typo(train, "works O", "works 0")
    with pytest.raises(ConllError, match=rf"^{train}:{n}: " + want.format(tag="'0'")):
        TagTask(build_run_config(raw))
    _typo(train, "works 0", "works O")
    n = _typo(test, "John B-PER", "John B_PER")  # the test file: checked too, never rewritten to B-PER
    with pytest.raises(ConllError, match=rf"^{test}:{n}: " + want.format(tag="'B_PER'")):
        TagTask(build_run_config(raw))
    # without a conversion the test file is checked against the training file's scheme
    with pytest.raises(ConllError, match=rf"^{test}:{n}: tag 'B_PER' is not O or B-/I-/E-/S- "
                                         r"followed by a type \(the training file's tags are "
                                         r"BIO\)$"):
        TagTask(build_run_config(recipe(data, format="columns", valid_fraction=0.25)))
    with pytest.raises(ConfigError, match=r"^config keys 'data\.scheme' \(none\) and "
                                          r"'data\.encoding' \(bioes\): a conversion needs"):
        TagTask(build_run_config(recipe(data, scheme="none", encoding="bioes")))


def test_a_typo_among_span_tags_is_an_error_without_a_conversion_too(tmp_path):
    # encoding "same", scheme auto: one '0' made the BIO file scheme "none" (no span metrics,
    # '0' a tag of its own); data.scheme: none still reads every tag as a plain label
    data = tmp_path / "ner"
    data.mkdir()
    train = write_ner(data / "train.txt", 12, 0)
    write_ner(data / "test.txt", 4, 1)
    n = _typo(train, "works O", "works 0")
    with pytest.raises(ConllError, match=rf"^{train}:{n}: tag '0' is not O or B-/I-/E-/S- followed "
                                         r"by a type \(other tags in the file are, e\.g\. 'B-PER'"):
        TagTask(build_run_config(recipe(data, format="columns", valid_fraction=0.25)))
    task = TagTask(build_run_config(recipe(data, format="columns", valid_fraction=0.25, scheme="none")))
    assert task.scheme == "none" and "0" in task.encoder.tags.itos


def test_pos_tags_need_no_scheme_unless_a_conversion_is_asked(trained):
    _, data, _, _ = trained
    task = TagTask(build_run_config(recipe(data)))  # encoding "same" (the default): as before
    assert task.scheme == "none" and task.tag_scheme == "none"
    with pytest.raises(ConllError, match=r"toy-train\.conllu:2: tag 'DET' is not O or B-/I-/E-/S- "
                                         r"followed by a type \(data\.encoding=bio needs BIO"):
        TagTask(build_run_config(recipe(data, encoding="bio")))


def test_valid_fraction_never_empties_the_training_split(tmp_path):
    train = write_conllu(tmp_path / "mine-train.conllu", 10, 0)

    def task(**data):
        raw = recipe(tmp_path, train=str(train), **data)
        del raw["data"]["source"]
        return TagTask(build_run_config(raw))

    # used to end in KeyError: 'train' (the empty split was dropped)
    with pytest.raises(ConfigError, match=r"^config key 'data\.valid_fraction': 0\.99 of 10 "
                                          r"training sentences holds out all 10, so the training "
                                          r"split would be empty"):
        task(valid_fraction=0.99)
    with pytest.raises(ConfigError, match=r"data\.valid_fraction': 0\.96 of 10 .* all 10"):
        task(valid_fraction=0.96)  # rounds up to all
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match=rf"^config key 'data\.valid_fraction': expected a "
                                              rf"fraction in \[0, 1\), got {bad}$"):
            task(valid_fraction=bad)
    t = task(valid_fraction=0.9)
    assert len(t.data["train"]) == 1 and len(t.data["valid"]) == 9
    # nor rounds the validation split away: 0.04 of 10 is none
    with pytest.raises(ConfigError, match=r"data\.valid_fraction': 0\.04 of 10 training sentences "
                                          r"holds out none"):
        task(valid_fraction=0.04)


def test_max_sentences_is_positive_or_null(tmp_path):
    data = tmp_path / "toy"
    data.mkdir()
    write_conllu(data / "toy-train.conllu", 10, 0)
    write_conllu(data / "toy-dev.conllu", 2, 1)
    for bad in (-3, 0):  # -3 used to drop the last 3 sentences, 0 to be ignored
        with pytest.raises(ConfigError, match=rf"^config key 'data\.max_sentences': expected a "
                                              rf"positive integer or null \(all sentences\), "
                                              rf"got {bad}$"):
            TagTask(build_run_config(recipe(data, max_sentences=bad)))
    assert len(TagTask(build_run_config(recipe(data, max_sentences=3))).data["train"]) == 3
    assert len(TagTask(build_run_config(recipe(data, max_sentences=None))).data["train"]) == 10


@pytest.mark.parametrize("cell", ["mamba", "griffin", "xlstm"])
def test_a_bidirectional_block_stack_tags_and_its_checkpoint_loads(trained, tmp_path, cell):
    """``model.cell: mamba`` / ``griffin`` in a tagging recipe: the toy grammar is learnt, and
    the checkpoint evaluates to the same figures (the stack's weights load by name)."""
    _, data, _, _ = trained
    raw = recipe(data)
    raw["model"].update(cell=cell, extras={"conv_width": 3})
    torch.manual_seed(0)
    cfg = build_run_config(raw)
    task = train_task(TagTask(cfg))
    from rnnkit.models.sequence import BidirectionalBlockStack

    assert isinstance(task.model.rnn, BidirectionalBlockStack)
    test = task.evaluate(task.model, "test")
    assert test["acc"] == 1.0
    best = write_checkpoint(tmp_path / "best", model_state=task.model.state_dict(),
                            config=to_dict(cfg), task="tag", version="0",
                            write_assets=task.write_assets)
    ev = evaluate_tag_checkpoint(best)
    assert ev["acc"] == test["acc"] and ev["loss"] == pytest.approx(test["loss"], rel=1e-5)
