"""The LTSF page's generated table states every loss and every tie from the results files.

``scripts/docs/docs_tables.py``'s ``ltsf-table`` snippet on a small made-up results folder:
a win on every seed, a loss, a win on the mean that one seed does not hold (a tie), and a
lookback-96 row made at a segment length the table no longer uses (shown, not counted).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "docs"))

from docs_tables import snippet  # noqa: E402


def _row(ds, var, H, L, ours, alone, dlinear, linear_ar=0.50, seg=48, partner=None,
         variant=None):
    """A job file as experiments/forecast/ltsf.py writes it (the keys the table reads)."""
    def spread(v):
        m = sum(v) / len(v)
        return {"mean": m, "std": (sum((x - m) ** 2 for x in v) / len(v)) ** 0.5,
                "min": min(v), "max": max(v), "values": v}

    return {"dataset": ds, "variables": var, "horizon": H, "lookback": L, "metric": "mse",
            "protocol": "ltsf", "value": sum(ours) / len(ours), "status": "complete",
            "seeds": {"seeds": list(range(1, len(ours) + 1)), "n": len(ours), "mse": spread(ours)},
            "recurrent_alone": {"mse": sum(alone) / len(alone), "seeds": {"mse": spread(alone)}},
            "baselines": {"naive": {"mse": 1.0}, "seasonal_naive": {"mse": 0.9},
                          "linear_ar": {"mse": linear_ar},
                          "dlinear": {"mse": sum(dlinear) / len(dlinear),
                                      "seeds": {"mse": spread(dlinear)}}},
            "model": {"segment_length": seg} | ({"ar_blend_partner": partner} if partner else {})
            | ({"variant": variant} if variant else {}),
            "device": "cpu: Test CPU (1 threads x 1 process(es))"}


def test_losses_ties_and_counts_come_from_the_files(tmp_path):
    fc = tmp_path / "experiments" / "forecast"
    res = tmp_path / "experiments" / "results"
    fc.mkdir(parents=True)
    res.mkdir()
    (fc / "ltsf.py").symlink_to(ROOT / "experiments" / "forecast" / "ltsf.py")
    (fc / "ltsf_segment_l96.json").write_text(json.dumps(
        {"lookback": 96, "chosen": 24, "what": "segment length", "candidates": {
            "24": {"val_mse": 0.66}, "48": {"val_mse": 0.67}}}))
    rows = {
        # wins on every seed, against DLinear seed by seed
        "ltsf_etth1_m_h96_l512": _row("ETTh1", "multivariate", 96, 512, [0.35, 0.36, 0.37],
                                      [0.38, 0.38, 0.38], [0.40, 0.41, 0.42]),
        # a win on the mean (0.40 against 0.41) that seed 3 does not hold (0.43 against 0.42)
        "ltsf_etth1_m_h192_l512": _row("ETTh1", "multivariate", 192, 512, [0.38, 0.39, 0.43],
                                       [0.45, 0.45, 0.45], [0.41, 0.40, 0.42]),
        # a loss to linear AR (0.3 < 0.31), where SegRNN alone would have won
        "ltsf_etth2_s_h720_l512": _row("ETTh2", "univariate", 720, 512, [0.31], [0.29], [0.40],
                                       linear_ar=0.30),
        # lookback 96 at the older segment length: shown, marked, not counted
        "ltsf_ettm1_m_h96_l96": _row("ETTm1", "multivariate", 96, 96, [0.99], [0.99], [0.30],
                                     seg=48),
        # lookback 96 blended with NLinear, the partner chosen there: counted, a win
        "ltsf_etth1_s_h96_l96": _row("ETTh1", "univariate", 96, 96, [0.20], [0.22], [0.30],
                                     seg=24, partner="nlinear"),
        # lookback 96 still blended with the linear AR: shown, marked, not counted
        "ltsf_ettm2_s_h96_l96": _row("ETTm2", "univariate", 96, 96, [0.99], [0.99], [0.30],
                                     seg=24),
        # the family's chosen recipe variant: counted, a win, the variant named
        "ltsf_etth2_s_h192_l96": _row("ETTh2", "univariate", 192, 96, [0.20], [0.21], [0.30],
                                      seg=24, partner="nlinear", variant="stride1"),
        # the same family at the recipe, before the variant: shown, marked, not counted
        "ltsf_etth2_s_h336_l96": _row("ETTh2", "univariate", 336, 96, [0.20], [0.21], [0.30],
                                      seg=24, partner="nlinear"),
    }
    (fc / "ltsf_family_recipes.json").write_text(json.dumps({
        "chosen": {"ETTh2 univariate 96": {"name": "stride1", "sets": ["data.train_stride=1"]}},
        "screens": {"ETTh2 univariate 96": {
            "rule": "rule.md", "margin": 0.01, "command": "python family_screen.py",
            "candidates": {"stride1": {"sets": ["data.train_stride=1"], "why": "all windows"},
                           "revin": {"sets": ["model.norm=revin"], "why": "mean and std"}},
            "validation": {"recipe": {"score": 0.158}, "stride1": {"score": 0.154},
                           "revin": {"score": 0.16}},
            "chosen": "stride1", "ratio": 0.154 / 0.158}}}))
    (fc / "ltsf_blend_partner.json").write_text(json.dumps({
        "chosen": {"96": "nlinear"},
        "by_lookback": {"96": {"rows": 32, "rows_in_table": 32, "geomean_ratio": 0.97,
                               "rows_nlinear_lower": 13, "decided_earlier": "nlinear",
                               "decided_with": {"rows": 32, "rows_in_table": 32,
                                                "geomean_ratio": 0.96,
                                                "rows_nlinear_lower": 14}},
                        "512": {"rows": 11, "rows_in_table": 32, "geomean_ratio": 0.94,
                                "rows_nlinear_lower": 7,
                                "undecided": "checkpoints here for 11 of the 32 rows"},
                        "720": {"rows": 0, "rows_in_table": 4,
                                "undecided": "checkpoints here for 0 of the 4 rows"}}}))
    for name, r in rows.items():
        (res / f"{name}.json").write_text(json.dumps(r))
    text = snippet("ltsf-table", tmp_path)
    assert "**The SegRNN blend beats every baseline in 4 of 5 rows** (3 more, still at an " \
           "older recipe or blend and being run again, not counted). It loses in 1:" \
        in text
    assert ("- ETTh2 S (OT), H 720, L 512: 0.3100 against linear AR's 0.3000 (+3.3%; 1 seed); "
            "SegRNN alone 0.2900") in text
    assert "Of those wins, 1 holds on the mean over the seeds (the issue's measure) but not on " \
           "every seed" in text
    assert "- ETTh1 M, H 192, L 512: 0.4000 against DLinear's 0.4100 (-2.44%), worse on 1 of 3 " \
           "seeds" in text
    assert "SegRNN alone beats every baseline in 4 of 5 rows, and the blend is worse than " \
           "SegRNN alone in 1 of them." in text
    assert "PatchTST/64's at lookback 512: 2 of 2" in text  # 0.36 < 0.370, 0.40 < 0.413
    row = next(line for line in text.splitlines() if line.startswith("| ETTh2 S (OT) | 720 |"))
    assert "| 0.3100 | **0.2900** |" in row  # the row's lowest MSE in bold, not the table's model
    stale = next(line for line in text.splitlines() if line.startswith("| ETTm1 M | 96 | 96"))
    assert "(older recipe)" in stale and "96 (seg 48)" in stale
    fam = next(line for line in text.splitlines() if line.startswith("| ETTh2 S (OT) | 192 | 96"))
    assert "96 (seg 24, stride1, NLinear)" in fam and "older" not in fam
    pre = next(line for line in text.splitlines() if line.startswith("| ETTh2 S (OT) | 336 | 96"))
    assert "(older recipe)" in pre
    assert ("A recipe screen for ETTh2 univariate 96 alone (`python family_screen.py`, its rule "
            "written before its first score: `rule.md`)") in text
    assert ("recipe 0.1580, stride1 0.1540, revin 0.1600; chosen: **stride1** "
            "(data.train_stride=1: all windows; 0.975 of the recipe's score)") in text
    assert "Test CPU" in text
    nl = next(line for line in text.splitlines() if line.startswith("| ETTh1 S (OT) | 96 | 96"))
    assert "96 (seg 24, NLinear)" in nl and "older" not in nl
    old = next(line for line in text.splitlines() if line.startswith("| ETTm2 S (OT) | 96 | 96"))
    assert "(older blend)" in old and "NLinear" not in old
    assert "at lookback 96, **NLinear**: NLinear's blend against the AR's, held-out validation " \
           "MSE ratio 0.960 (geometric mean over 32 rows; lower in 14); the seeds screened " \
           "since give 0.970 over 32 rows, which does not decide it again" in text
    assert "at lookback 512, the linear AR (not decided: checkpoints here for 11 of the 32 " \
           "rows)" in text
    assert "at lookback 720, the linear AR (not decided: checkpoints here for 0 of the 4 rows): " \
           "no row screened" in text


def _dm(mean_a, mean_b, p):
    return {"mean_a": mean_a, "mean_b": mean_b, "mean_diff": mean_a - mean_b,
            "relative_diff": mean_a / mean_b - 1, "p_value": p}


def test_dm_table_and_blend_weights_line_come_from_the_files(tmp_path):
    """``ltsf-dm``: each row against DLinear and its best fixed baseline, p below 5% in bold and
    counted by direction; ``ltsf-table`` states the blend-weights screen's scores and choice."""
    fc = tmp_path / "experiments" / "forecast"
    fc.mkdir(parents=True)
    (tmp_path / "experiments" / "results").mkdir()
    (fc / "ltsf.py").symlink_to(ROOT / "experiments" / "forecast" / "ltsf.py")
    assert "No Diebold-Mariano test" in snippet("ltsf-dm", tmp_path)
    rows = {
        "ltsf_etth2_s_h96_l96": {"horizon": 96, "seeds": [1, 2, 3],
                                 "a_vs_b": _dm(0.1239, 0.1274, 0.01),
                                 "a_vs_naive": _dm(0.1239, 0.20, 0.001),
                                 "a_vs_seasonal_naive": _dm(0.1239, 0.15, 0.2),
                                 "a_vs_linear_ar": _dm(0.1239, 0.13, 0.04)},
        "ltsf_ettm2_s_h336_l96": {"horizon": 336, "seeds": [1],
                                  "a_vs_b": _dm(0.1384, 0.1349, 0.68),
                                  "a_vs_naive": _dm(0.1384, 0.29, 0.001),
                                  "a_vs_seasonal_naive": _dm(0.1384, 0.1479, 0.038),
                                  "a_vs_linear_ar": _dm(0.1384, 0.1494, 0.3)}}
    rows_null = json.loads(json.dumps(rows))
    rows_null["ltsf_etth2_s_h96_l96"]["null"] = {"n": 2785, "lag": 95, "reps": 1000,
                                                 "size": 0.068, "cutoff": 0.02}
    rows_null["ltsf_ettm2_s_h336_l96"]["null"] = {"n": 11185, "lag": 335, "reps": 1000,
                                                  "size": 0.08, "cutoff": 0.04}
    for r in rows_null.values():
        for k in ("a_vs_b", "a_vs_naive", "a_vs_seasonal_naive", "a_vs_linear_ar"):
            r[k]["holds_at_null_cutoff"] = r[k]["p_value"] < r["null"]["cutoff"]
    rows_null["ltsf_etth2_s_h96_l96"]["a_vs_b"]["kernel"] = "bartlett"
    (fc / "ltsf_dm.json").write_text(json.dumps({
        "rows": rows_null, "skipped": {}, "command": "cmd",
        "device": "cpu: Test CPU", "torch": "2.x", "date": "2026-12-06"}))
    text = snippet("ltsf-dm", tmp_path)
    # p 0.01 holds (cut-off 0.02), with Bartlett's variance; p 0.04 does not; 0.038 holds (0.04)
    assert "| -2.7% | **0.01** ‡ | linear AR 0.1300 | -4.7% | **0.04** † |" in text
    assert "| seasonal naive 0.1479 | -6.4% | **0.038** |" in text
    assert "Bartlett weights, where the equal-weight sum is not positive, 1 of the tests" in text
    assert ("rejects at 5% this often: 11185 windows at H = 336: 8.0%; 2785 windows at H = 96: "
            "6.8%") in text
    assert "Lower and below the cut-off: 1 against DLinear, 1 against the best fixed" in text
    (fc / "ltsf_dm.json").write_text(json.dumps({
        "rows": rows, "skipped": {"ltsf_ettm1_s_h96_l96": "not here"}, "command": "cmd",
        "device": "cpu: Test CPU", "torch": "2.x", "date": "2026-12-06"}))
    text = snippet("ltsf-dm", tmp_path)
    assert "| ETTh2 S (OT) | 96 | 96 | 3 | 0.1239 | 0.1274 | -2.7% | **0.01** | linear AR 0.1300 " \
           "| -4.7% | **0.04** |" in text
    assert "| ETTm2 S (OT) | 336 | 96 | 1 | 0.1384 | 0.1349 | +2.6% | 0.68 | seasonal naive " \
           "0.1479 | -6.4% | **0.038** |" in text
    assert "against DLinear, 1 lower and 0 higher; against the best fixed baseline, 2 lower " \
           "and 0 higher" in text
    assert "Not tested (checkpoints not on the machine): ltsf_ettm1_s_h96_l96." in text
    (fc / "ltsf_blend_weights.json").write_text(json.dumps({
        "rule": "rule.md", "decision": {
            "score": {"fitted": 1.0, "shared": 0.995, "equal": 1.08},
            "rows_lower_than_fitted": {"shared": 9, "equal": 3}, "rows": 16,
            "rows_in_scope": 16, "margin": 0.01, "chosen": "fitted"}}))
    table = snippet("ltsf-table", tmp_path)
    assert ("geometric mean over the rows: fitted 1.0000, shared 0.9950 (lower in 9 of 16 rows), "
            "equal 1.0800 (lower in 3 of 16 rows); chosen: **fitted per step** (the recipe: no "
            "candidate was lower by more than 1%).") in table
    (fc / "ltsf_two_block.json").write_text(json.dumps({
        "command": "python two_block_screen.py", "rule": "two.md", "margin": 0.01,
        "blocks": {"late": {"data.end_offset": 0, "validation_months": "12-16"},
                   "early": {"data.end_offset": 11520, "validation_months": "8-12"}},
        "scores": {"recipe": 0.17, "revin": 0.1708}, "ratios": {"recipe": 1.0, "revin": 1.0047},
        "chosen": "recipe"}))
    table = snippet("ltsf-table", tmp_path)
    assert ("The same family's recipe screen again, on two validation blocks (`python "
            "two_block_screen.py`, its rule written before its first run: `two.md`; the third "
            "adaptive look at this family): SegRNN at seed 1, the geometric-mean best validation "
            "MSE over four horizons and the blocks late (`data.end_offset=0`: validation months "
            "12-16) and early (`data.end_offset=11520`: validation months 8-12), as ratios to "
            "the score of the recipe, 0.1700 (the recipe here is the one the screen above "
            "chose): revin 1.0047; chosen: **the recipe** (no candidate was lower by more than "
            "1%).") in table
    t = json.loads((fc / "ltsf_two_block.json").read_text())
    (fc / "ltsf_two_block.json").write_text(json.dumps({**t, "chosen": "revin"}))
    assert "revin 1.0047; chosen: **revin**, now in the family's rows." in snippet(
        "ltsf-table", tmp_path)
