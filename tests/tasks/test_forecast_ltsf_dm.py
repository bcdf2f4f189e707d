"""experiments/forecast/ltsf_dm.py: what counts as a checked SegRNN run before anything is
made for a row, and a pattern that matches no results file."""

from __future__ import annotations

import importlib.util
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
