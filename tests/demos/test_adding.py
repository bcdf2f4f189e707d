"""The demo's trainer on a short adding problem: gated cells learn it, the score is real."""
from rnnkit.commands import main
from rnnkit.demos.adding import train_adding


def test_gru_solves_a_short_adding_problem():
    r = train_adding("gru", T=10, steps=300, hidden=16, eval_every=50, test_size=500)
    assert r["solved"] and r["test_mse"] < 0.01 and r["solved_at_step"] <= 300


def test_demo_prints_progress_a_table_and_writes_its_outputs(capsys, tmp_path):
    import json

    out_dir = tmp_path / "adding"
    assert main(["demo", "adding", "--T", "5", "--steps", "200", "--hidden", "8",
                 "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    for cell in ("rnn_tanh", "gru", "lstm"):
        assert cell in out
        assert f"  {cell:9s} step    100  test MSE " in out  # progress while it trains
    assert "test MSE" in out and "solved" in out
    res = json.loads((out_dir / "results.json").read_text())
    assert [r["cell"] for r in res["results"]] == ["rnn_tanh", "gru", "lstm"]
    assert res["settings"] == {"T": 5, "steps": 200, "hidden": 8, "lr": 0.01, "seed": 0,
                               "batch": 50}
    table = (out_dir / "table.md").read_text().splitlines()
    assert table[0].startswith("| model | test MSE") and len(table) == 5
    assert f"| lstm | {res['results'][2]['test_mse']:.4f} |" in table[4]
    assert (out_dir / "gradient_flow.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_trainer_runs_the_plain_loop_step_for_step():
    """train_adding goes through rnnkit.train.Trainer; the result is the plain loop's, exactly."""
    import torch
    import torch.nn.functional as F

    from rnnkit.data.synthetic import adding_problem
    from rnnkit.demos.adding import AddingModel

    r = train_adding("lstm", T=8, steps=40, hidden=8, eval_every=20, test_size=200, seed=3)
    torch.manual_seed(3)
    g = torch.Generator().manual_seed(4)
    x_test, y_test = adding_problem(200, 8, generator=torch.Generator().manual_seed(12345))
    model = AddingModel("lstm", 8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        x, y = adding_problem(50, 8, generator=g)
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    with torch.no_grad():
        mse = F.mse_loss(model.eval()(x_test), y_test).item()
    assert r["test_mse"] == mse and r["steps"] == 40
