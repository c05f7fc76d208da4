"""Segment colours: a fixed, well-spread palette indexed by segment id."""

from __future__ import annotations

import colorsys

import numpy as np

_GOLDEN = 0.6180339887498949


def segment_color(segment_id: int) -> tuple[float, float, float]:
    """RGB in [0, 1] of a segment id; the same id always gets the same colour.

    Hues step by the golden ratio so neighbouring ids differ strongly;
    saturation and value alternate in three levels to separate ids whose
    hues come close again.
    """
    i = int(segment_id)
    hue = (0.11 + i * _GOLDEN) % 1.0
    sat = (0.85, 0.6, 0.95)[i % 3]
    val = (0.95, 0.8, 0.65)[(i // 3) % 3]
    return colorsys.hsv_to_rgb(hue, sat, val)


def segment_colors(segments: np.ndarray) -> np.ndarray:
    """[N] int segment ids -> [N, 3] float32 colours."""
    seg = np.asarray(segments, np.int64).reshape(-1)
    if not len(seg):
        return np.zeros((0, 3), np.float32)
    # A table over the id range (ids are small integers), looked up by index: no sort of N ids.
    lo, hi = int(seg.min()), int(seg.max())
    present = np.flatnonzero(np.bincount(seg - lo)) + lo
    table = np.zeros((hi - lo + 1, 3), np.float32)
    table[present - lo] = np.array([segment_color(i) for i in present], np.float32).reshape(-1, 3)
    return table[seg - lo]


def color_hex(segment_id: int) -> str:
    r, g, b = segment_color(segment_id)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"
