"""experiments/forecast/blend_weights.py: the rule (the lowest geometric mean of late validation
MSE over the fitted weights', only if more than 1% below), and the screen of one small
checkpoint recomputed by hand from SegRNN's and NLinear's own forecasts."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.tasks.forecast import train_forecast

from .test_forecast_ltsf import ett_like  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def bw(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "experiments" / "forecast"))
    spec = importlib.util.spec_from_file_location(
        "_blend_weights", ROOT / "experiments/forecast/blend_weights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    yield mod
    for name in ("ltsf", "blend_partner", "blend_holdout"):
        sys.modules.pop(name, None)


def _row(fitted, shared, equal):
    return {"late_fitted": fitted, "late_shared": shared, "late_equal": equal}


def test_the_rule(bw):
    rows = [_row(1.0, 0.97, 1.10), _row(2.0, 1.96, 1.80)]
    d = bw.decide(rows, 2)
    assert d["score"]["fitted"] == 1.0
    assert d["score"]["shared"] == pytest.approx(math.sqrt(0.97 * 0.98))
    assert d["score"]["equal"] == pytest.approx(math.sqrt(1.10 * 0.90))  # 0.995: not 1% better
    assert d["rows_lower_than_fitted"] == {"shared": 2, "equal": 1}
    assert d["chosen"] == "shared"  # 0.975
    assert bw.decide([_row(1.0, 0.995, 1.2)], 1)["chosen"] == "fitted"  # within the margin
    assert bw.decide([_row(1.0, 0.995, 0.95)], 1)["chosen"] == "equal"
    half = bw.decide(rows[:1], 2)
    assert half["chosen"] is None and half["undecided"] == "1 of 2 rows screened"


def test_rows_in_scope_are_the_univariate_lookback_96_seed_1_runs(bw, tmp_path):
    def write(name, seeds, variant=""):
        runs = [{"command": f"rnnkit forecast train x.yaml --set=trainer.seed={s} --out "
                            f"runs/ltsf/{name}_segrnn_seg24{variant}_seed{s}"} for s in seeds]
        (tmp_path / f"{name}.json").write_text(json.dumps({"runs": {"segrnn": runs}}))

    write("ltsf_etth1_s_h96_l96", [11, 1])  # seed 11 is not seed 1
    write("ltsf_ettm2_s_h336_l96", [1, 2, 3], variant="_stride1")
    write("ltsf_etth1_m_h96_l96", [1])  # multivariate: out of scope
    write("ltsf_etth1_s_h96_l512", [1])  # the long lookback: out of scope
    got = bw.rows_in_scope(tmp_path, n_rows=2)
    assert got == [("ltsf_etth1_s_h96_l96", "runs/ltsf/ltsf_etth1_s_h96_l96_segrnn-ar_seg24_seed1"),
                   ("ltsf_ettm2_s_h336_l96",
                    "runs/ltsf/ltsf_ettm2_s_h336_l96_segrnn-ar_seg24_stride1_seed1")]
    with pytest.raises(SystemExit, match="2 univariate lookback-96 rows; the rule's scope is 16"):
        bw.rows_in_scope(tmp_path)
    write("ltsf_etth2_s_h96_l96", [2])
    with pytest.raises(SystemExit, match="ltsf_etth2_s_h96_l96.json: 0 seed-1 SegRNN runs"):
        bw.rows_in_scope(tmp_path, n_rows=3)


def test_the_test_split_waits_for_a_decision_made_once(bw, tmp_path, monkeypatch):
    out = tmp_path / "bw.json"
    monkeypatch.setattr(bw, "partner_for", lambda L: "nlinear")
    with pytest.raises(SystemExit, match="no decision yet"):
        bw.main(["--test", "--json", str(out)])
    out.write_text(json.dumps({"decision": {"chosen": None}, "date": "d"}))
    with pytest.raises(SystemExit, match="no decision yet"):
        bw.main(["--test", "--json", str(out)])
    out.write_text(json.dumps({"decision": {"chosen": "fitted"}, "date": "2026-12-06"}))
    with pytest.raises(SystemExit, match=r"decided \(fitted\) on 2026-12-06; a decision is made"):
        bw.main(["--json", str(out)])
    monkeypatch.setattr(bw, "partner_for", lambda L: "linear_ar")
    with pytest.raises(SystemExit, match="partner is not NLinear"):
        bw.main(["--test", "--json", str(out)])


@pytest.mark.parametrize("partner", ["nlinear", "damped"])
def test_screen_by_hand(bw, ett_like, tmp_path, monkeypatch, partner):  # noqa: F811
    """The screen's numbers from the two forecasts it blends: equal weights are their mean;
    the shared weight is the pooled least squares on the earlier windows; the fitted one is
    ``fit_ar_blend``'s on them; every MSE is over the later windows only.  With NLinear, which
    is close to exact on this smooth series, the weights sit at the clip's lower end; with
    NLinear's map scaled down (``damped``, a poor partner) they reach both ends and lie between."""
    from blend_holdout import _mse

    import rnnkit.tasks.forecast_task as ft
    from rnnkit.tasks.forecast_data import ForecastData
    from rnnkit.tasks.forecast_task import load_forecast_checkpoint

    real = ft.nlinear_of

    class Damped:
        def __init__(self, data):
            self.fit = real(data)

        def affine(self):
            A, a = self.fit.affine()
            return 0.3 * A, 0.3 * a

    nlinear_of = real if partner == "nlinear" else Damped
    monkeypatch.setattr(ft, "nlinear_of", nlinear_of)

    over = [f"data.path={ett_like}", "data.data_dir=null", "data.input_length=48",
            "data.horizon=24", "data.targets=[OT]", "data.train_stride=4",
            "model.hidden_size=8", "model.segment_length=12", "trainer.max_epochs=1",
            "trainer.loggers=[]", "trainer.plot=false", "model.ar_blend=true"]
    train_forecast(ROOT / "configs" / "ltsf_etth1_segrnn.yaml", out=tmp_path / "r",
                   overrides=over)
    row = bw.screen(tmp_path / "r" / "best", None, test=False)

    model, state, cfg = load_forecast_checkpoint(tmp_path / "r" / "best")
    model.eval()
    data = ForecastData(cfg.data, state=state)
    g, H = data.global_origins("valid"), data.H
    early, late = g[:len(g) // 2 - H], g[len(g) // 2:]
    assert (row["windows_fit"], row["windows_checked"]) == (len(early), len(late))
    model.set_linear_map(*nlinear_of(data).affine())
    with torch.no_grad():
        def forecasts(origins, b):
            model.blend.fill_(b)
            x, y = data.batch(origins)[0::2]
            return model(x)[..., 0].double(), y.double()

        seg_e, y_e = forecasts(early, 1.0)
        nl_e, _ = forecasts(early, 0.0)
        seg_l, y_l = forecasts(late, 1.0)
        nl_l, _ = forecasts(late, 0.0)
    gap = seg_e - nl_e
    b = float(((y_e - nl_e) * gap).sum() / (gap * gap).sum())
    b = min(max(b, 0.0), 1.0)
    assert row["weight_shared_early"] == pytest.approx(b, rel=1e-5)
    assert row["weight_equal_early"] == 0.5
    assert row["late_equal"] == pytest.approx(
        float(((0.5 * (seg_l + nl_l) - y_l) ** 2).mean()), rel=1e-5)
    assert row["late_shared"] == pytest.approx(
        float(((nl_l + b * (seg_l - nl_l) - y_l) ** 2).mean()), rel=1e-5)
    bh = (((y_e - nl_e) * gap).sum((0, 2)) / (gap * gap).sum((0, 2))).clamp(0, 1)
    assert row["weight_fitted_early"] == pytest.approx(float(bh.mean()), rel=1e-5)
    assert row["late_fitted"] == pytest.approx(
        float(((nl_l + bh[None, :, None] * (seg_l - nl_l) - y_l) ** 2).mean()), rel=1e-5)
    assert not np.isclose(row["late_fitted"], row["late_equal"])  # three different blends
    if partner == "damped":  # weights inside the clip, per step unlike shared
        assert 0.01 < b < 1.0
        # clipped at both ends and inside at others: the clip is exercised both ways
        assert bool((bh == 0).any()) and bool((bh == 1).any())
        assert int(((bh > 0) & (bh < 1)).sum()) >= 5
        assert float(bh.max() - bh.min()) > 1e-3
    assert "test_fitted" not in row
    model.blend.fill_(0.5)
    assert _mse(model, data, late) == pytest.approx(row["late_equal"], rel=1e-9)
