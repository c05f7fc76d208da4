"""CPU side of the viewport's per-Gaussian buffers, one pass each in numba: display colours, changed rows.

A lasso or an assign touches nearly every row of a 200k model, and the
viewport then recomposes the colour buffer (`display_colors`) and finds
which of the touched rows an edit really changed (`changed_rows`: an
assign changes only segment ids, so no geometry or colour goes to the GPU).
As batched numpy both were gathers, boolean scatters and temporaries over
all rows (16 and 50 ms of CPU at 200k); each kernel here is one pass over
the rows without temporaries and gives the numpy formulas' results bit for
bit (float32 arithmetic throughout, the same operation order; a test
compares them).
"""

from __future__ import annotations

import numba
import numpy as np

SELECTED = np.array([1.0, 0.85, 0.0], np.float32)
"""The selection tint (yellow, as in SuperSplat), mixed into selected splats in every mode."""
SELECTED_MIX = 0.7
DIM = 0.3
"""Highlight: what the colour of a splat that is not selected is multiplied by."""
_SOURCES = {"rgb": 0, "depth": 0, "segmentation": 1, "features": 1, "overlay": 2}


def display_colors(mode: str, rgb: np.ndarray, alt: np.ndarray, opacities: np.ndarray,
                   state: np.ndarray, highlight: bool) -> np.ndarray:
    """Per-Gaussian colour and opacity as drawn.

    Args:
        mode: a viewport mode ("depth" uses `rgb` here; the shader recolours it).
        rgb: [N, 3] DC colours. alt: [N, 3] segment or feature colours.
        opacities: [N]. state: [N] 0 normal, 1 selected, 2 hidden.
        highlight: dim everything that is not selected.

    Returns:
        [N, 4] float32 RGBA: the mode's colour (overlay: the mean of RGB and
        `alt`), selected splats mixed `SELECTED_MIX` towards `SELECTED`,
        the rest times `DIM` under highlight; alpha 0 for hidden Gaussians,
        negated opacity for selected ones (the shader's selection flag).
    """
    if mode not in _SOURCES:
        raise ValueError(f"unknown viewport mode {mode!r}")
    f32 = np.float32
    # The constants as float32, as numpy applies Python floats to float32 arrays.
    out = _compose(_SOURCES[mode], np.ascontiguousarray(rgb, f32), np.ascontiguousarray(alt, f32),
                   np.ascontiguousarray(opacities, f32), np.ascontiguousarray(state, f32), bool(highlight),
                   f32(1.0 - SELECTED_MIX), f32(SELECTED_MIX) * SELECTED, f32(DIM))
    # numba hands back a dtype numpy does not flag as builtin (vispy then misreads the shape); view it plainly.
    return out.view(np.float32)


@numba.njit(cache=True)
def _compose(source, rgb, alt, opacities, state, highlight, keep, tint, dim):
    n = rgb.shape[0]
    out = np.empty((n, 4), np.float32)
    half = np.float32(0.5)
    for i in range(n):
        selected = state[i] == 1.0
        for c in range(3):
            if source == 0:
                v = rgb[i, c]
            elif source == 1:
                v = alt[i, c]
            else:
                v = half * (rgb[i, c] + alt[i, c])
            if selected:
                v = keep * v + tint[c]
            elif highlight:
                v = v * dim
            out[i, c] = v
        if state[i] > 1.5:
            out[i, 3] = 0.0
        elif selected:
            out[i, 3] = -opacities[i]
        else:
            out[i, 3] = opacities[i]
    return out


def warm_up() -> None:
    """Load (or compile) both kernels, so the first selection or edit after start-up is not slow; thread-safe."""
    one = np.zeros((1, 3), np.float32)
    display_colors("rgb", one, one, np.zeros(1, np.float32), np.zeros(1, np.float32), False)
    changed_rows(np.zeros(1, np.int64), (one,), (one,))


def changed_rows(rows: np.ndarray, new: tuple[np.ndarray, ...], old: tuple[np.ndarray, ...]) -> np.ndarray:
    """[M] bool: which of `rows` differ between the `new` and `old` arrays (any of them, any column).

    Args:
        rows: [M] int64 row indices.
        new, old: arrays of the same shapes pairwise, [N, ...] each (a NaN
            counts as changed, as with ``!=``).
    """
    rows = np.ascontiguousarray(rows, np.int64)
    out = np.zeros(len(rows), np.bool_)
    for a, b in zip(new, old):
        _mark_changed(np.ascontiguousarray(a).reshape(len(a), -1), np.ascontiguousarray(b).reshape(len(b), -1),
                      rows, out)
    return out


@numba.njit(cache=True)
def _mark_changed(new, old, rows, out):
    for k in range(rows.shape[0]):
        if out[k]:
            continue
        r = rows[k]
        for j in range(new.shape[1]):
            if new[r, j] != old[r, j]:
                out[k] = True
                break
