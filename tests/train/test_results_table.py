"""experiments/make_table.py: README's headline table between the markers, from results JSON files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def make_table():
    spec = importlib.util.spec_from_file_location("make_table", ROOT / "experiments" / "make_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _record(**kw):
    r = {"task": "language modeling (word)", "dataset": "PTB", "split": "test", "metric": "perplexity",
         "value": 112.3456, "reference": {"value": 114.5, "source": "Zaremba et al. 2014"},
         "command": "rnnkit train configs/ptb_small.yaml", "wall_seconds": 5400.0,
         "device": "cpu: x (1 threads x 1 process(es))", "date": "2026-01-01"}
    r.update(kw)
    return r


def _headlines(mt):
    return (
        mt.Headline("Word LM", "docs/pipelines/text-generation.md", "ptb_small", "PTB | test ppl",
                    "Zaremba et al."),
        mt.Headline("Sentiment", "docs/pipelines/text-classification.md", "imdb", "IMDB accuracy",
                    "keras-io", percent=True, note="One seed only."),
        mt.Headline("Anomaly", "docs/pipelines/anomaly-detection.md", "nab_rnn", "NAB score",
                    "windowed Gaussian, same files", baseline_result="nab_gauss", note="Subset."),
        mt.Headline("Audio", "docs/pipelines/spoken-digits.md", "fsdd", "FSDD accuracy", "none",
                    percent=True),
    )


def _results(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    (res / "ptb_small.json").write_text(json.dumps(_record()))
    (res / "imdb.json").write_text(json.dumps(_record(
        task="text classification", value=0.8986, wall_seconds=1514.0, status="partial: 3 epochs",
        reference={"value": 0.878, "source": "keras-io"})))
    (res / "nab_rnn.json").write_text(json.dumps(_record(task="anomaly", value=33.42, wall_seconds=73.5,
                                                         reference={"value": 70.5, "source": "HTM"})))
    (res / "nab_gauss.json").write_text(json.dumps(_record(task="anomaly", value=25.65)))
    (res / "fsdd.json").write_text(json.dumps(_record(task="audio", value=1.0, wall_seconds=60,
                                                      reference={"value": None, "source": "none"})))
    (res / "not_a_headline.json").write_text(json.dumps(_record(task="zzz", value=999.0)))
    return res


def test_headline_table_between_markers_only(tmp_path, make_table, monkeypatch):
    monkeypatch.setattr(make_table, "HEADLINES", _headlines(make_table))
    res = _results(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("# T\n\nintro\n<!-- results:start -->\nold table\n<!-- results:end -->\ntail\n")
    assert make_table.main(["--readme", str(readme), "--results", str(res)]) == 0
    text = readme.read_text()
    assert text.startswith("# T\n\nintro\n<!-- results:start -->\n") and text.endswith("<!-- results:end -->\ntail\n")
    assert "old table" not in text and "999" not in text          # only the headlines, in their order
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0] == "| pipeline | data, metric | rnnkit | baseline | time | run |"
    assert rows[1] == ("| [Word LM](docs/pipelines/text-generation.md) | PTB \\| test ppl | **112.3** | "
                       "114.5, Zaremba et al. | 90 min | [`ptb_small`](experiments/results/ptb_small.json) |")
    # percentages, an unfinished run's status, the first footnote
    assert rows[2] == ("| [Sentiment](docs/pipelines/text-classification.md) (1) | IMDB accuracy | "
                       "**89.86%** (partial: 3 epochs) | 87.8%, keras-io | 25 min | "
                       "[`imdb`](experiments/results/imdb.json) |")
    # the baseline's value from another run on the same data, not the file's reference (70.5)
    assert rows[3].startswith("| [Anomaly](docs/pipelines/anomaly-detection.md) (2) | NAB score | **33.42** | "
                              "25.65, windowed Gaussian, same files | 74 s |")
    assert "| **100%** | -, none | 60 s |" in rows[4]              # no published baseline
    assert "\n\n(1) One seed only.\n\n(2) Subset.\n<!-- results:end -->" in text
    assert make_table.main(["--readme", str(readme), "--results", str(res), "--check"]) == 0
    (res / "nab_gauss.json").write_text(json.dumps(_record(task="anomaly", value=26.0)))
    assert make_table.main(["--readme", str(readme), "--results", str(res), "--check"]) == 1


def test_readme_headlines_are_current_and_exist(make_table):
    """Each headline names a recorded run, and README shows what those files say today."""
    names = {p.stem for p in (ROOT / "experiments" / "results").glob("*.json")}
    for h in make_table.HEADLINES:
        assert h.result in names, h
        assert h.baseline_result is None or h.baseline_result in names, h
        assert (ROOT / h.page).is_file(), h
    assert make_table.main(["--check"]) == 0, "README is out of date: python experiments/make_table.py"


def test_bad_inputs(tmp_path, make_table, monkeypatch):
    res = tmp_path / "results"
    res.mkdir()
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="expected the markers"):
        make_table.main(["--readme", str(readme), "--results", str(res)])
    readme.write_text("<!-- results:start -->\n<!-- results:end -->\n")
    monkeypatch.setattr(make_table, "HEADLINES", _headlines(make_table))
    with pytest.raises(SystemExit, match=r"headline 'Word LM': no results file ptb_small.json"):
        make_table.main(["--readme", str(readme), "--results", str(res)])
    (res / "x.json").write_text(json.dumps({"task": "t"}))
    with pytest.raises(SystemExit, match=r"x.json: missing keys dataset, split, metric"):
        make_table.load_results(res)
    (res / "x.json").write_text("{bad")
    with pytest.raises(SystemExit, match=r"x.json:1:2: invalid JSON"):
        make_table.load_results(res)
