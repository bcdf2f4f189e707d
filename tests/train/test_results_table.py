"""experiments/make_table.py: README table between the markers, from results JSON files."""

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


def test_table_between_markers_only(tmp_path, make_table):
    res = tmp_path / "results"
    res.mkdir()
    (res / "ptb_small.json").write_text(json.dumps(_record()))
    (res / "char.json").write_text(json.dumps(_record(task="language modeling (char)", value=1.4365,
                                                      split="valid | last 10%", status="partial: 3 epochs")))
    readme = tmp_path / "README.md"
    readme.write_text("# T\n\nintro\n<!-- results:start -->\nold table\n<!-- results:end -->\ntail\n")
    assert make_table.main(["--readme", str(readme), "--results", str(res)]) == 0
    text = readme.read_text()
    assert text.startswith("# T\n\nintro\n<!-- results:start -->\n") and text.endswith("<!-- results:end -->\ntail\n")
    assert "old table" not in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[1] == ("| char | language modeling (char) | PTB | valid \\| last 10% | perplexity | 1.437 "
                       "(partial: 3 epochs) | 114.5 (Zaremba et al. 2014) | 90 min | cpu: x (1 threads x 1 process(es)) |")
    assert rows[2].startswith("| ptb_small | language modeling (word) | PTB | test | perplexity | 112.3 |")
    assert "- `ptb_small` (2026-01-01): `rnnkit train configs/ptb_small.yaml`" in text
    assert make_table.main(["--readme", str(readme), "--results", str(res), "--check"]) == 0
    (res / "ptb_small.json").write_text(json.dumps(_record(value=111.0)))
    assert make_table.main(["--readme", str(readme), "--results", str(res), "--check"]) == 1


def test_bad_inputs(tmp_path, make_table):
    res = tmp_path / "results"
    res.mkdir()
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="expected the markers"):
        make_table.main(["--readme", str(readme), "--results", str(res)])
    (res / "x.json").write_text(json.dumps({"task": "t"}))
    with pytest.raises(SystemExit, match=r"x.json: missing keys dataset, split, metric"):
        make_table.load_results(res)
    (res / "x.json").write_text("{bad")
    with pytest.raises(SystemExit, match=r"x.json:1:2: invalid JSON"):
        make_table.load_results(res)
