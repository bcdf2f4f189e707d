"""``rnnkit prune`` never runs a study other than the one asked for: ``--save`` needs ``--out``
(it saved nothing and exited 0), and ``--amounts`` must hold fractions in (0, 1) (``,`` ran a
study with only the dense row)."""

from __future__ import annotations

import pytest

from rnnkit.commands import main
from rnnkit.compress.study import prune_table


def test_prune_save_requires_out(lm_ckpt, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["prune", str(lm_ckpt), "--amounts", "0.5", "--save"]) == 2
    assert "--save" in capsys.readouterr().err and not list(tmp_path.iterdir())


@pytest.mark.parametrize("amounts", [",", " , ", "0", "0.5,0", "1", "-0.1", "nan", "inf"])
def test_prune_rejects_empty_or_out_of_range_amounts(lm_ckpt, capsys, amounts):
    assert main(["prune", str(lm_ckpt), "--amounts", amounts]) == 2
    assert "--amounts" in capsys.readouterr().err


@pytest.mark.parametrize("amounts,match", [([], "amounts: empty"), ([0.0], r"amounts\[0\]"),
                                           ([0.5, 1.0], r"amounts\[1\]"), ([0.5, 0.5], "same amount"),
                                           ([float("nan")], r"amounts\[0\]")])
def test_prune_table_rejects_bad_amounts_before_loading(amounts, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        prune_table(tmp_path / "not-a-checkpoint", amounts)  # checked before the checkpoint is read
