"""The LTSF protocol's row splits and window counts, by the numbers of the published protocol."""

from __future__ import annotations

import pytest

from rnnkit.data.windows import ltsf_split_rows, window_origins


def test_ltsf_split_rows_are_the_published_borders():
    assert ltsf_split_rows("h") == [8640, 11520, 14400]  # ETTh: 12/4/4 months of 30 days
    assert ltsf_split_rows("15min") == [34560, 46080, 57600]  # ETTm: four rows an hour
    assert ltsf_split_rows("D") == [360, 480, 600]
    with pytest.raises(ValueError, match="step"):
        ltsf_split_rows("MS")  # months have no fixed length


@pytest.mark.parametrize("H", [96, 192, 336, 720])
def test_every_test_origin_of_the_protocol(H):
    """Test targets cover rows [11520, 14400): 2880 - H + 1 origins, the first at 11520 with its
    input reaching L rows back, the last forecasting row 14399."""
    L = 336
    o = window_origins(11520, 14400, L, H)
    assert len(o) == 2880 - H + 1 and o[0] == 11520 and o[-1] + H - 1 == 14399
    assert (o[0] - L) == 11520 - L
    tr = window_origins(0, 8640, L, H, stride=3)
    assert tr[-1] == 8640 - H and tr[0] >= L and len(tr) == -(-(8640 - L - H + 1) // 3)
