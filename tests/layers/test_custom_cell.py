"""A user-written cell through ``rnnkit.Recurrent`` gets every layer feature.

The code between the markers is docs/tutorials/custom-cell.md's example, verbatim:
tests/docs/test_readme.py fails when the two differ.
"""
# --- docs/tutorials/custom-cell.md example: begin -----------------------------------------------
import torch
import torch.nn.functional as F

import rnnkit


class MGUCell(rnnkit.Cell):
    """Minimal gated unit (Zhou et al. 2016): one gate both forgets and reads.

        f_t = sigmoid(W_f x_t + U_f h_{t-1} + b_f)
        n_t = tanh(W_n x_t + U_n (f_t * h_{t-1}) + b_n)
        h_t = (1 - f_t) * h_{t-1} + f_t * n_t
    """

    num_gates = 2

    def param_shapes(self):
        H, I = self.hidden_size, self.input_size
        return {"weight_ih": (2 * H, I), "weight_hh": (2 * H, H), "bias": (2 * H,)}

    def project(self, x, p):  # every time step at once: (T, B, I) -> (T, B, 2H)
        return F.linear(x, p["weight_ih"], p["bias"])

    def step(self, x_t, state, p):
        (h,) = state
        x_f, x_n = x_t.chunk(2, dim=-1)
        U_f, U_n = p["weight_hh"].chunk(2)
        f = torch.sigmoid(x_f + h @ U_f.T)
        n = torch.tanh(x_n + (f * h) @ U_n.T)
        h = (1 - f) * h + f * n
        return h, (h,)


layer = rnnkit.Recurrent(MGUCell, 8, 16, num_layers=2, bidirectional=True, residual=True)
out, h_n = layer(torch.randn(5, 3, 8), lengths=torch.tensor([5, 2, 4]))  # (5, 3, 32), (4, 3, 16)
# --- docs/tutorials/custom-cell.md example: end -------------------------------------------------

from rnnkit.layers import LAYERS, build_layer, register_layer  # noqa: E402
from rnnkit.testing import check_gradients, check_layer  # noqa: E402


def test_readme_example_shapes_and_parameter_names():
    assert out.shape == (5, 3, 32) and h_n.shape == (4, 3, 16)
    assert torch.all(out[2:, 1] == 0)  # padding
    names = [n for n, _ in layer.named_parameters()]
    assert names[:3] == ["weight_ih_l0", "weight_hh_l0", "bias_l0"]
    assert "bias_l1_reverse" in names and layer.weight_ih_l1.shape == (32, 32)


def test_custom_cell_passes_the_conformance_checks():
    check_layer(lambda **k: rnnkit.Recurrent(MGUCell, 3, 4, **k), 3, 4, (4,))
    check_gradients(lambda **k: rnnkit.Recurrent(MGUCell, 2, 3, **k), 2)


def test_custom_cell_equals_its_equations_stepped_by_hand():
    torch.manual_seed(0)
    mgu = rnnkit.Recurrent(MGUCell, 3, 2).double()
    W, U, b = mgu.weight_ih_l0.detach(), mgu.weight_hh_l0.detach(), mgu.bias_l0.detach()
    x = torch.randn(4, 1, 3, dtype=torch.float64)
    h = torch.tensor([0.5, -0.5], dtype=torch.float64)
    want = []
    for t in range(4):
        f = torch.sigmoid(W[:2] @ x[t, 0] + U[:2] @ h + b[:2])
        n = torch.tanh(W[2:] @ x[t, 0] + U[2:] @ (f * h) + b[2:])
        h = (1 - f) * h + f * n
        want.append(h)
    got, h_n = mgu(x, torch.tensor([[[0.5, -0.5]]], dtype=torch.float64))
    torch.testing.assert_close(got[:, 0], torch.stack(want), atol=1e-14, rtol=0)
    torch.testing.assert_close(h_n[0, 0], h, atol=1e-14, rtol=0)


def test_custom_cell_by_name_and_with_initialisers():
    register_layer("mgu", lambda *a, **k: rnnkit.Recurrent(MGUCell, *a, **k))
    try:
        built = build_layer("mgu", 3, 4, num_layers=2, batch_first=True, init_hh="orthogonal")
    finally:
        del LAYERS["mgu"]
    for block in built.weight_hh_l1.detach().chunk(2):  # num_gates = 2 blocks, each orthogonal
        torch.testing.assert_close(block @ block.T, torch.eye(4), atol=1e-5, rtol=0)
    o, h = built(torch.randn(2, 5, 3))
    assert o.shape == (2, 5, 4) and h.shape == (2, 2, 4)
