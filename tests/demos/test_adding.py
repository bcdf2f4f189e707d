"""The demo's trainer on a short adding problem: gated cells learn it, the score is real."""
from rnnkit.demos.adding import main, train_adding


def test_gru_solves_a_short_adding_problem():
    r = train_adding("gru", T=10, steps=300, hidden=16, eval_every=50, test_size=500)
    assert r["solved"] and r["test_mse"] < 0.01 and r["solved_at_step"] <= 300


def test_demo_prints_a_table(capsys):
    assert main(["--T", "5", "--steps", "20", "--hidden", "8"]) == 0
    out = capsys.readouterr().out
    for cell in ("rnn_tanh", "gru", "lstm"):
        assert cell in out
    assert "test MSE" in out and "solved" in out
