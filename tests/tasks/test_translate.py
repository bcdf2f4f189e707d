"""The translation task end to end on a synthetic word-for-word language pair: train,
checkpoint, evaluate (BLEU/chrF), attention plot, predict; and bad input."""
import argparse
import io
import json
import math
import random
from pathlib import Path

import pytest
import torch

from rnnkit.commands.predict import add_parser
from rnnkit.data.parallel import ParallelDataError
from rnnkit.tasks import get_task_spec
from rnnkit.tasks.translate import (
    TranslateTask,
    evaluate_translate_checkpoint,
    score_translations,
    translate,
)
from rnnkit.train.checkpoint import CheckpointError, write_checkpoint
from rnnkit.train.config import ConfigError, build_run_config, load_recipe, to_dict

ROOT = Path(__file__).resolve().parents[2]
LEX = {"eins": "one", "zwei": "two", "drei": "three", "vier": "four", "fünf": "five",
       "sechs": "six", "Hund": "dog", "Katze": "cat"}


def make_corpus(folder: Path, n_train=400, seed=0) -> Path:
    """Source: 2-5 German words + "."; target: the English words in the same order."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    words = sorted(LEX)
    for split, n in (("train", n_train), ("val", 30), ("test", 30)):
        src, tgt = [], []
        for _ in range(n):
            ws = [rng.choice(words) for _ in range(rng.randint(2, 5))]
            src.append(" ".join(ws) + ".")
            tgt.append(" ".join(LEX[w] for w in ws) + ".")
        (folder / f"{split}.de").write_text("\n".join(src) + "\n", encoding="utf-8")
        (folder / f"{split}.en").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    return folder


def recipe(source, **data):
    return {
        "task": "translate",
        "data": {"source": str(source), "tokenizer": "word", "src_vocab_size": 50,
                 "tgt_vocab_size": 50, "min_freq": 1, "batch_size": 32, "beam_size": 3,
                 "label_smoothing": 0.0, **data},
        "model": {"cell": "gru", "embed_size": 32, "hidden_size": 16, "dec_hidden_size": 32,
                  "dropout": 0.0},
        "trainer": {"seed": 0},
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short training run shared by the tests below, saved as a checkpoint."""
    tmp = tmp_path_factory.mktemp("translate")
    src = make_corpus(tmp / "corpus")
    torch.manual_seed(0)
    cfg = build_run_config(recipe(src))
    task = TranslateTask(cfg)
    task.setup(0, 1)
    opt = torch.optim.Adam(task.model.parameters(), lr=0.01)
    for epoch in range(20):
        assert task.steps_per_epoch(epoch) == 13  # 400 pairs, batches of <= 32
        for batch in task.train_batches(epoch, 0):
            out = task.training_step(task.model, batch, None)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
    task.model.eval()
    metrics = {s: task.evaluate(task.model, s) for s in task.eval_splits}
    best = write_checkpoint(tmp / "run" / "best", model_state=task.model.state_dict(),
                            config=to_dict(cfg), task="translate", version="0",
                            write_assets=task.write_assets)
    return tmp, src, task, metrics, best


def test_learns_the_word_mapping_and_reports_bleu(trained):
    _, _, task, metrics, best = trained
    assert task.eval_splits == ("valid", "test")
    v, t = metrics["valid"], metrics["test"]
    assert set(v) == {"loss", "ppl", "bleu", "chrf"}  # valid: greedy only
    assert set(t) == {"loss", "ppl", "bleu", "chrf", "bleu_greedy", "chrf_greedy"}
    assert v["ppl"] == pytest.approx(math.exp(v["loss"]))
    assert t["bleu"] > 90 and t["bleu_greedy"] > 90 and t["chrf"] > 90
    assert (best / "src_tokenizer.json").is_file() and (best / "tgt_tokenizer.json").is_file()


def test_checkpoint_evaluation_plot_and_hypotheses(trained, tmp_path):
    _, _, _, metrics, best = trained
    ev = evaluate_translate_checkpoint(best, split="test", plot=tmp_path / "attn.png",
                                       hypotheses=tmp_path / "hyp.en", sentence=3)
    assert ev["sentences"] == 30 and ev["beam_size"] == 3
    assert ev["bleu"] == pytest.approx(metrics["test"]["bleu"], abs=1e-6)
    assert ev["loss"] == pytest.approx(metrics["test"]["loss"], rel=1e-5)
    assert (tmp_path / "attn.png").read_bytes()[:4] == b"\x89PNG"
    hyps = (tmp_path / "hyp.en").read_text().splitlines()
    assert len(hyps) == 30
    refs = (trained[1] / "test.en").read_text().splitlines()
    assert score_translations(hyps, refs)["bleu"] == pytest.approx(ev["bleu"])
    ev1 = evaluate_translate_checkpoint(best, split="valid", beam_size=1)
    assert ev1["bleu"] == pytest.approx(metrics["valid"]["bleu"], abs=1e-6)


def test_translate_and_predict_cli(trained, capsys, monkeypatch):
    _, _, _, _, best = trained
    (r,) = translate(best, ["zwei Hund Katze."], beam_size=3)
    assert r["translation"] == "two dog cat."
    assert len(r["attention"]) == len(r["output_tokens"])
    assert all(sum(row) == pytest.approx(1.0, abs=1e-5) for row in r["attention"])
    assert r["tokens"] == ["▁zwei", "▁Hund", "▁Katze", ".", "<eos>"]
    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers())
    monkeypatch.setattr("sys.stdin", io.StringIO("vier eins.\n\nsechs.\n"))
    a = ap.parse_args(["predict", str(best), "eins Hund.", "--file", "-", "--beam-size", "2"])
    assert a.func(a) == 0
    assert capsys.readouterr().out.splitlines() == ["one dog.", "four one.", "six."]
    a = ap.parse_args(["predict", str(best), "drei.", "--json", "--beam-size", "1"])
    a.func(a)
    rec = json.loads(capsys.readouterr().out)
    assert rec["input"] == "drei." and rec["translation"] == "three." and rec["score"] < 0


def test_incomplete_checkpoint_is_refused(trained, tmp_path):
    _, _, task, _, best = trained
    broken = write_checkpoint(tmp_path / "b", model_state=task.model.state_dict(),
                              config=json.loads((best / "config.json").read_text())["config"],
                              task="translate", version="0")
    with pytest.raises(CheckpointError, match="src_tokenizer.json is missing"):
        translate(broken, ["eins."])


def test_score_translations_by_hand():
    # all n-gram precisions are 1; brevity penalty exp(1 - 6/4)
    s = score_translations(["a b c d"], ["a b c d e f"])
    assert s["bleu"] == pytest.approx(100 * math.exp(-0.5), abs=1e-3)
    assert score_translations(["A dog runs."], ["A dog runs."])["bleu"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="1 hypotheses but 2 references"):
        score_translations(["x"], ["x", "y"])


def test_bad_parallel_input_names_files(tmp_path):
    src = make_corpus(tmp_path / "c", n_train=20)
    (src / "train.en").write_text("one.\ntwo.\n", encoding="utf-8")
    with pytest.raises(ParallelDataError, match=r"train\.de has 20 lines but .*train\.en has 2"):
        TranslateTask(build_run_config(recipe(src)))
    make_corpus(src, n_train=20)
    lines = (src / "val.de").read_text().splitlines()
    lines[6] = "  "
    (src / "val.de").write_text("\n".join(lines) + "\n")
    with pytest.raises(ParallelDataError, match=r"val\.de:7: empty line"):
        TranslateTask(build_run_config(recipe(src)))


def test_a_negative_train_limit_is_an_error_not_all_but_n(tmp_path):
    src = make_corpus(tmp_path / "c", n_train=20)
    with pytest.raises(ConfigError, match=r"'data\.train_limit': expected a positive integer or null, got -5"):
        TranslateTask(build_run_config(recipe(src, train_limit=-5)))


def test_runs_under_the_trainer(tmp_path):
    from rnnkit.train.run import run_training

    src = make_corpus(tmp_path / "c", n_train=64)
    cfg = build_run_config({**recipe(src, beam_size=2),
                            "trainer": {"max_epochs": 1, "monitor": "val_bleu", "mode": "max",
                                        "progress": False, "loggers": ["csv"], "plot": False}})
    summary = run_training(cfg, out=tmp_path / "run")
    assert summary["stopped"] == "max_epochs" and summary["step"] == 2
    assert set(summary["test"]) >= {"test_bleu", "test_bleu_greedy", "test_chrf", "test_loss"}
    assert (tmp_path / "run" / "best" / "tgt_tokenizer.json").is_file()


def test_recipe_builds_the_model():
    cfg = load_recipe(ROOT / "configs" / "multi30k_gru_attn.yaml")
    assert get_task_spec("translate").data_config is type(cfg.data)
    assert (cfg.data.source, cfg.data.src_lang, cfg.data.tgt_lang) == ("multi30k", "de", "en")
    from rnnkit.models.seq2seq import Seq2Seq

    model = Seq2Seq(cfg.model, 8000, 5000)
    n = sum(p.numel() for p in model.parameters())
    assert 4_000_000 < n < 6_000_000  # tied output: 8000*256 + 5000*256 embeddings + ~1.6M


# ----------------------------------------------------------------------------- honest input checks


def test_lowercase_scoring_is_case_insensitive_and_says_so():
    hyp, ref = ["a dog runs ."], ["A Dog runs ."]
    assert score_translations(hyp, ref)["bleu"] < 50  # cased, as before
    s = score_translations(hyp, ref, lowercase=True)
    assert s == {"bleu": pytest.approx(100.0), "chrf": pytest.approx(100.0), "lowercase": True}


def _cased_corpus(folder: Path) -> Path:
    """make_corpus with capitalised target sentences."""
    make_corpus(folder, n_train=40)
    for split in ("train", "val", "test"):
        p = folder / f"{split}.en"
        p.write_text("".join(s[:1].upper() + s[1:] + "\n" for s in p.read_text().splitlines()))
    return folder


def test_lowercased_model_is_scored_against_lowercased_references(tmp_path, monkeypatch):
    """A perfect lowercase translation scores 100, not ~30, in training and checkpoint evaluation."""
    import rnnkit.tasks.translate as tr

    src = _cased_corpus(tmp_path / "c")
    task = TranslateTask(build_run_config(recipe(src, lowercase=True, beam_size=2)))
    by_src = {tuple(s): t for s, t in task.data["valid"] + task.data["test"]}

    def perfect(model, src_ids, **kw):  # the reference, through the (lowercasing) tokenizer
        return [{"tokens": by_src[tuple(s)][1:-1], "score": 0.0,
                 "attention": torch.zeros(len(by_src[tuple(s)]) - 1, len(s))} for s in src_ids]

    monkeypatch.setattr(tr, "decode", perfect)
    for split in ("valid", "test"):
        m = task.evaluate(task.model, split)
        assert m["bleu"] == pytest.approx(100.0) and m["chrf"] == pytest.approx(100.0)
        assert m["lowercase"] is True
    assert "case-insensitive" in task.describe()["scoring"]
    best = write_checkpoint(tmp_path / "best", model_state=task.model.state_dict(),
                            config=to_dict(task.config), task="translate", version="0",
                            write_assets=task.write_assets)
    ev = evaluate_translate_checkpoint(best, split="valid")
    assert ev["lowercase"] is True and ev["bleu"] == pytest.approx(100.0)
    assert ev["bleu_greedy"] == pytest.approx(100.0)
    monkeypatch.undo()
    cased = TranslateTask(build_run_config(recipe(src, beam_size=1)))
    assert "lowercase" not in cased.evaluate(cased.model, "valid")  # cased runs: as before


@pytest.mark.parametrize("key", ["max_src_len", "max_tgt_len"])
def test_max_len_must_keep_a_word(tmp_path, key):
    src = make_corpus(tmp_path / "c", n_train=20)
    with pytest.raises(ConfigError, match=rf"'data\.{key}': expected an integer >= 2 .*got 1"):
        TranslateTask(build_run_config(recipe(src, **{key: 1})))


def test_truncated_training_pairs_are_counted_in_the_header(tmp_path):
    src = make_corpus(tmp_path / "c", n_train=40)
    task = TranslateTask(build_run_config(recipe(src, max_src_len=2, max_tgt_len=3)))
    eos, bos = task.src_tok.eos_id, task.tgt_tok.bos_id
    assert all(len(s) == 2 and s[-1] == eos for s, _ in task.data["train"])  # one word + <eos>
    assert all(len(t) <= 4 and t[0] == bos for _, t in task.data["train"])
    # sources are 3-6 tokens with <eos> (always cut to 2); targets 3-6 + <bos> (cut above 4)
    raw = [(task.src_tok.encode(a, add_eos=True), task.tgt_tok.encode(b, add_bos=True, add_eos=True))
           for a, b in task.raw["train"]]
    n_tgt = sum(len(t) > 4 for _, t in raw)
    assert task.truncated == {"src": 40, "tgt": n_tgt, "pairs": 40}
    assert task.describe()["truncated"].startswith("40 training pairs cut to max_src_len=2 / max_tgt_len=3")
    for (s, t), (s0, t0) in zip(task.data["train"], raw):  # the same ids as the tokenizer's own cut
        assert s == s0[:1] + s0[-1:] if len(s0) > 2 else s == s0
        assert t == (t0[:3] + t0[-1:] if len(t0) > 4 else t0)
    full = TranslateTask(build_run_config(recipe(src)))
    assert full.truncated == {"src": 0, "tgt": 0, "pairs": 0}
    assert [s for s, _ in full.data["train"]] == [s for s, _ in raw]


@pytest.mark.parametrize("alpha", [-5.0, -0.1, math.nan, math.inf])
def test_length_penalty_must_be_finite_and_non_negative(tmp_path, alpha):
    src = make_corpus(tmp_path / "c", n_train=20)
    with pytest.raises(ConfigError, match=r"'data\.length_penalty': expected a finite length penalty >= 0"):
        TranslateTask(build_run_config(recipe(src, length_penalty=alpha)))


def test_valid_and_dev_in_one_folder_is_an_error(tmp_path):
    src = make_corpus(tmp_path / "c", n_train=20)
    for lang in ("de", "en"):
        (src / f"dev.{lang}").write_text((src / f"val.{lang}").read_text())
    with pytest.raises(ParallelDataError, match=r"val\.de and .*dev\.de would each be the valid split"):
        TranslateTask(build_run_config(recipe(src)))
