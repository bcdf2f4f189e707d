"""rnnkit.tasks.forecast_compare: the Diebold-Mariano test by hand, its size under the null with
and without the overlap correction, and checkpoints compared on the same windows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import t as student_t

from rnnkit.tasks.forecast import train_forecast
from rnnkit.tasks.forecast_compare import compare_checkpoints, diebold_mariano

from .test_forecast import _recipe, _write_series


def test_by_hand_without_and_with_a_lag():
    r = diebold_mariano([1, 2, 3, 4], [0, 0, 0, 0])
    # d = 1..4: mean 2.5, variance 1.25 (over n); HLN factor sqrt((n + 1 - 2) / n) at h = 1
    stat = math.sqrt(3 / 4) * 2.5 / math.sqrt(1.25 / 4)
    assert r["stat"] == pytest.approx(stat) and r["mean_diff"] == 2.5 and r["n"] == 4
    assert r["p_value"] == pytest.approx(2 * student_t.sf(stat, 3))
    # d = 1, 3, 2, 4 at lag 1: gamma0 1.25, gamma1 (-0.75 - 0.25 - 0.75) / 4 = -0.4375; the
    # equal-weight sum 1.25 - 0.875 = 0.375; h = 2: sqrt((5 - 4 + 0.5) / 4)
    r = diebold_mariano([1, 3, 2, 4], [0, 0, 0, 0], lag=1)
    assert r["kernel"] == "uniform"
    assert r["stat"] == pytest.approx(math.sqrt(1.5 / 4) * 2.5 / math.sqrt(0.375 / 4))
    # d = 1, 4, 1, 4: gamma0 2.25, gamma1 -6.75 / 4: the equal-weight sum is negative, so
    # Bartlett's (weight 1/2): 2.25 - 1.6875 = 0.5625
    r = diebold_mariano([1, 4, 1, 4], [0, 0, 0, 0], lag=1)
    assert r["kernel"] == "bartlett"
    assert r["stat"] == pytest.approx(math.sqrt(1.5 / 4) * 2.5 / math.sqrt(0.5625 / 4))
    # a lower loss for a: a negative statistic, and the relative difference against b
    r = diebold_mariano([1.0, 1.1, 0.9, 1.0, 1.2], [2.0, 2.1, 2.2, 1.9, 2.0])
    assert r["stat"] < 0 and r["relative_diff"] == pytest.approx((1.04 - 2.04) / 2.04)


def test_identical_losses_and_bad_input():
    r = diebold_mariano([0.5, 0.7, 0.2], [0.5, 0.7, 0.2])
    assert r["stat"] == 0.0 and r["p_value"] == 1.0
    r = diebold_mariano([1.5, 2.5, 0.5], [1.0, 2.0, 0.0])  # a constant difference: certain
    assert r["stat"] == math.inf and r["p_value"] == 0.0
    with pytest.raises(ValueError, match="3 losses against 2"):
        diebold_mariano([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="4 losses for lag 3"):
        diebold_mariano([1, 2, 3, 4], [0, 1, 2, 2], lag=3)
    with pytest.raises(ValueError, match="not finite"):
        diebold_mariano([1, float("nan"), 3], [0, 1, 2])


def test_size_under_the_null_and_why_the_lag_matters():
    """Equal expected loss: rejections at 5% near 5% for independent losses; for losses that
    overlap as H-step windows do (a moving sum of 10 shocks), ignoring the overlap rejects about
    half the time (54.5% here), and the lag H - 1 brings it near the nominal level (6.75%)."""
    rng = np.random.default_rng(0)
    n, h, reps = 300, 10, 400
    iid = sum(diebold_mariano(rng.standard_normal(n), np.zeros(n))["p_value"] < 0.05
              for _ in range(reps)) / reps
    assert 0.02 <= iid <= 0.09
    lagged = naive = 0
    for _ in range(reps):
        d = np.convolve(rng.standard_normal(n + h - 1), np.ones(h) / h, "valid")
        lagged += diebold_mariano(d, np.zeros(n), lag=h - 1)["p_value"] < 0.05
        naive += diebold_mariano(d, np.zeros(n))["p_value"] < 0.05
    assert naive / reps > 0.4 and 0.02 <= lagged / reps <= 0.10
    # and the test has power: a real difference of half a standard deviation is found
    found = sum(diebold_mariano(rng.standard_normal(n) + 0.5, np.zeros(n))["p_value"] < 0.05
                for _ in range(50))
    assert found >= 48


def test_null_cutoff_finds_the_over_rejection_of_few_independent_stretches():
    """null_cutoff simulates the test under a true null: at many windows per horizon it rejects
    near 5%; at two windows per horizon (ETTh's 2,161 windows at H = 720 are three) far more
    often, and the cut-off that rejects 5% of the time is far below 0.05."""
    from rnnkit.tasks.forecast_compare import null_cutoff

    many = null_cutoff(300, 9, reps=300)
    assert many["n"] == 300 and many["lag"] == 9 and many["reps"] == 300
    assert 0.02 <= many["size"] <= 0.11 and 0.015 <= many["cutoff"] <= 0.07
    few = null_cutoff(60, 29, reps=300)
    assert few["size"] > 0.15 and few["cutoff"] < 0.01
    assert null_cutoff(60, 29, reps=300) == few  # seeded: the same draws
    with pytest.raises(ValueError, match="reps=0; expected at least 1"):
        null_cutoff(60, 29, reps=0)  # no draw has no cut-off (numpy's quantile said IndexError)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cmp")
    _write_series(tmp / "sales.csv")
    out = {}
    for name, extra in (("a", {}), ("b", {}), ("h4", {"horizon": 4})):
        recipe = _recipe(tmp, **extra)
        seed = {"a": 1, "b": 2, "h4": 1}[name]
        text = recipe.read_text().replace("threads: 1", f"threads: 1\n  seed: {seed}")
        recipe.write_text(text)
        out[name] = Path(train_forecast(recipe, out=tmp / name)["run_dir"])
    return out


def test_checkpoints_on_the_same_windows(runs):
    a, b = runs["a"], runs["b"]
    r = compare_checkpoints([a / "best"], [b / "best"])
    rep_a = json.loads((a / "report.json").read_text())["metrics"]
    rep_b = json.loads((b / "report.json").read_text())["metrics"]
    assert r["windows"] == 2 * 25 and r["horizon"] == 6 and r["lag"] == 5 and r["series"] == 2
    assert r["a_vs_b"]["lag"] == 5 and r["a_vs_naive"]["lag"] == 5  # the lag the test used
    # the statistic from the per-window losses, recomputed
    from rnnkit.tasks.forecast_compare import _window_losses
    from rnnkit.tasks.forecast_task import load_forecast_checkpoint

    la, lb = (_window_losses(load_forecast_checkpoint(c / "best"), "test", None)["losses"]
              for c in (a, b))
    assert r["a_vs_b"]["stat"] == pytest.approx(
        diebold_mariano(la["model"], lb["model"], 5)["stat"])
    assert r["a_vs_linear_ar"]["mean_b"] == pytest.approx(rep_a["linear_ar"]["mse"], rel=1e-5)
    # the per-window losses average to each run's reported test MSE
    assert r["a_vs_b"]["mean_a"] == pytest.approx(rep_a["model"]["mse"], rel=1e-5)
    assert r["a_vs_b"]["mean_b"] == pytest.approx(rep_b["model"]["mse"], rel=1e-5)
    assert r["a_vs_naive"]["mean_b"] == pytest.approx(rep_a["naive"]["mse"], rel=1e-5)
    assert r["a_vs_seasonal_naive"]["mean_b"] == pytest.approx(rep_a["seasonal_naive"]["mse"],
                                                                rel=1e-5)
    # two checkpoints on one side: the mean of their MSEs
    both = compare_checkpoints([a / "best", b / "best"], [b / "best"])
    assert both["a_vs_b"]["mean_a"] == pytest.approx(
        (rep_a["model"]["mse"] + rep_b["model"]["mse"]) / 2, rel=1e-5)
    with pytest.raises(ValueError, match="data.horizon 4, .* is 6; expected the same windows"):
        compare_checkpoints([a / "best"], [runs["h4"] / "best"])


def test_the_command_prints_the_table_and_the_record(runs, capsys):
    from rnnkit.commands import main

    a, b = runs["a"], runs["b"]
    assert main(["forecast", "compare", str(a / "best"), "--against", str(b / "best")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rec = json.loads(lines[-1])
    null = rec.pop("null")
    assert rec == compare_checkpoints([a / "best"], [b / "best"])
    from rnnkit.tasks.forecast_compare import null_cutoff

    assert null == null_cutoff(50, 5, reps=1000)  # the windows and lag of the test above
    assert lines[6] == (f"note: under a simulated null of overlapping windows (1000 draws), this "
                        f"test rejects {null['size']:.1%} of the time at 5% with 50 windows at "
                        f"lag 5; its 5% cut-off is p < {null['cutoff']:.3g}")
    assert null["size"] > 0.05  # 50 windows at lag 5: the nominal p is too small
    assert lines[0].endswith("(50 test windows, lag 5)")
    row = lines[1].split()
    assert row[0] == "--against" and float(row[1]) == pytest.approx(rec["a_vs_b"]["mean_a"],
                                                                   abs=1e-4)
    assert [ln.split()[0] for ln in lines[2:5]] == ["naive", "seasonal_naive", "linear_ar"]
    assert lines[5].startswith("note: 2 series, taken one after another")


def test_a_negative_null_reps_is_an_error_not_zero(runs, capsys):
    from rnnkit.commands import main

    a, b = runs["a"], runs["b"]
    assert main(["forecast", "compare", str(a / "best"), "--against", str(b / "best"),
                 "--null-reps", "-5"]) != 0
    assert "--null-reps -5: expected 0 (no null) or more draws" in capsys.readouterr().err
