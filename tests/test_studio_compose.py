"""The viewport's numba buffer kernels give the batched-numpy formulas' results bit for bit."""

import numpy as np
import pytest

from app.viewport.compose import DIM, SELECTED, SELECTED_MIX, changed_rows, display_colors


def _numpy_display_colors(mode, rgb, alt, opacities, state, highlight):
    """The reference: the composition as batched numpy (what the studio ran before the kernel)."""
    if mode in ("segmentation", "features"):
        col = alt.copy()
    elif mode == "overlay":
        col = 0.5 * (rgb + alt)
    else:
        col = rgb.copy()
    selected = state == 1.0
    col[selected] = (1.0 - SELECTED_MIX) * col[selected] + SELECTED_MIX * SELECTED
    if highlight:
        col[~selected] *= DIM
    alpha = np.where(state > 1.5, 0.0, np.where(selected, -opacities, opacities))
    return np.concatenate([col, alpha[:, None]], axis=1).astype(np.float32)


@pytest.mark.parametrize("mode", ["rgb", "segmentation", "overlay", "depth", "features"])
@pytest.mark.parametrize("highlight", [False, True])
def test_display_colors_equal_the_numpy_formula(mode, highlight):
    rng = np.random.default_rng(1)
    n = 5000
    rgb, alt = (rng.uniform(0, 1, (n, 3)).astype(np.float32) for _ in range(2))
    opacities = rng.uniform(0, 1, n).astype(np.float32)
    state = rng.choice(np.array([0.0, 1.0, 2.0], np.float32), n)
    got = display_colors(mode, rgb, alt, opacities, state, highlight)
    want = _numpy_display_colors(mode, rgb, alt, opacities, state, highlight)
    assert got.dtype == np.float32 and got.dtype.isbuiltin and got.shape == (n, 4)  # vispy misreads numba's dtype
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))  # every bit, signs of zero too
    assert np.all(got[state == 1.0, 3] <= 0) and np.all(got[state == 2.0, 3] == 0)


def test_display_colors_refuse_an_unknown_mode():
    with pytest.raises(ValueError, match="unknown viewport mode"):
        display_colors("x-ray", *(np.zeros((1, 3), np.float32),) * 2, np.zeros(1, np.float32),
                       np.zeros(1, np.float32), False)


def test_changed_rows_finds_every_difference_in_any_array_and_column():
    rng = np.random.default_rng(2)
    old = (rng.normal(size=(1000, 3)).astype(np.float32), rng.normal(size=1000).astype(np.float32),
           rng.normal(size=(1000, 1, 3)).astype(np.float32))
    new = tuple(a.copy() for a in old)
    new[0][10, 2] += 1.0
    new[1][20] = np.nan
    new[2][30, 0, 1] = -new[2][30, 0, 1] - 1.0
    new[0][900] += 1.0  # changed, but not among the rows asked about
    rows = np.array([5, 10, 20, 30, 40, 999], np.int64)
    got = changed_rows(rows, new, old)
    want = np.zeros(len(rows), bool)
    for a, b in zip(new, old):
        want |= (a[rows] != b[rows]).reshape(len(rows), -1).any(1)
    assert got.tolist() == want.tolist() == [False, True, True, True, False, False]
    assert changed_rows(np.zeros(0, np.int64), new, old).tolist() == []
