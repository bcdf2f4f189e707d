"""experiments/forecast/ltsf_dm.py: what counts as a checked SegRNN run before anything is
made for a row, and a pattern that matches no results file."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def dm(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "experiments" / "forecast"))
    spec = importlib.util.spec_from_file_location("_ltsf_dm", ROOT / "experiments/forecast/ltsf_dm.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    yield mod
    sys.modules.pop("ltsf", None)


def test_a_segrnn_run_counts_once_finished_and_checked(dm, tmp_path):
    out = "runs/ltsf/ltsf_etth1_s_h96_l96_segrnn_seg24_seed1"
    rec = {"runs": {"segrnn": [{"command": f"rnnkit forecast train x.yaml --out {out}"}],
                    "dlinear": [{"command": "rnnkit forecast train missing.yaml --out runs/d"}],
                    "segrnn-nl": [{"command": f"rnnkit forecast blend {out}/best --out runs/b"}]}}
    assert dm.segrnn_verified(rec) == [out]
    assert dm.make_missing(rec) == []  # nothing is made for a row not checked yet
    (tmp_path / out / "best").mkdir(parents=True)  # training: best/ at every improvement
    assert dm.segrnn_verified(rec) == [out]
    (tmp_path / out / "summary.json").write_text("{}")  # finished, not yet checked
    assert dm.segrnn_verified(rec) == [out]
    (tmp_path / "runs/ltsf/ltsf_etth1_s_h96_l96_segrnn-ar_seg24_seed1").mkdir()  # checked
    assert dm.segrnn_verified(rec) == []


def test_a_pattern_that_matches_nothing_raises(dm, tmp_path):
    with pytest.raises(SystemExit, match="no results file matches"):
        dm.main([str(tmp_path / "nothing_*.json"), "--json", str(tmp_path / "o.json")])
    assert not (tmp_path / "o.json").exists()


def test_null_reps_zero_skips_the_null_and_is_recorded(dm, tmp_path, monkeypatch):
    """``--null-reps 0``: each row is tested, no cut-off is simulated (``null_cutoff`` is
    never called, no row has ``null`` or ``holds_at_null_cutoff``), and the recorded command
    says so, so that the file cannot be mistaken for one with cut-offs."""
    import rnnkit.tasks.forecast_compare as fc

    runs = {"segrnn": [], "segrnn-nl": [{"command": "rnnkit forecast blend x --out runs/b1"}],
            "dlinear": [{"command": "rnnkit forecast train d.yaml --out runs/d1"}]}
    for d in ("runs/b1", "runs/d1/best"):
        (tmp_path / d).mkdir(parents=True)
    rec = {"runs": runs, "value": 0.30, "baselines": {"dlinear": {"mse": 0.32}},
           "model": {"name": "SegRNN-NLinear"}, "seeds": {"seeds": [1]}}
    res = tmp_path / "ltsf_etth1_s_h96_l96.json"
    res.write_text(json.dumps(rec))
    seen = []

    def fake_compare(a, b, split, data_dir):
        seen.append(([str(p.relative_to(tmp_path)) for p in a],
                     [str(p.relative_to(tmp_path)) for p in b], split))
        return {"windows": 2785, "lag": 95,
                "a_vs_b": {"mean_a": 0.30, "mean_b": 0.32, "relative_diff": -0.0625,
                           "stat": -2.5, "p_value": 0.012},
                "a_vs_naive": {"p_value": 0.001}}

    def no_null(*a, **k):
        raise AssertionError("null_cutoff called with --null-reps 0")

    monkeypatch.setattr(fc, "compare_checkpoints", fake_compare)
    monkeypatch.setattr(fc, "null_cutoff", no_null)
    out = tmp_path / "o.json"
    assert dm.main([str(res), "--null-reps", "0", "--json", str(out)]) == 0
    assert seen == [(["runs/b1"], ["runs/d1/best"], "test")]
    doc = json.loads(out.read_text())
    row = doc["rows"]["ltsf_etth1_s_h96_l96"]
    assert "null" not in row and "holds_at_null_cutoff" not in row["a_vs_b"]
    assert row["a_vs_b"]["p_value"] == 0.012 and row["gap_to_table"] == {"blend": 0.0,
                                                                        "dlinear": 0.0}
    assert " --null-reps 0 --json " in doc["command"]
