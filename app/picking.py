"""Click picking: the segment the rendered segmentation shows at a pixel.

A segmentation render (one-hot segment channels through the CPU rasteriser)
gives every segment its blending weight at a pixel; the pick is the segment
with the largest weight there, or nothing when that weight is under
`min_weight` (background). Instead of rendering an image, the pick asks
`coseg.sort.pick_candidates` for the few Gaussians that can reach the pixel
and blends only those with `coseg.sort.pixel_weights`, which follows the CPU
rasteriser's rules, so a pick at 200k Gaussians is one vectorised cone test
and a tiny blend (tests compare it with a full `coseg.render` image).
"""

from __future__ import annotations

import numpy as np

from coseg.gaussians import Gaussians
from coseg.sort import pick_candidates, pixel_weights


def warm_up() -> None:
    """Load (or compile) the numba pick kernels, so the first click is not slow; thread-safe."""
    g = Gaussians.from_points(np.zeros((1, 3), np.float32), np.ones((1, 3), np.float32), scale=0.1)
    view = np.eye(4)
    view[2, 3] = 2.0
    pick_candidates(g.means, g.scales.max(1), view, (10.0, 10.0, 4.0, 4.0), 4.0, 4.0)
    pixel_weights(g, view, (10.0, 10.0, 4.0, 4.0), (8, 8), 4.0, 4.0)


class Picker:
    """Segment picking against the CPU render (see module docstring)."""

    def __init__(self, min_weight: float = 0.1) -> None:
        self.min_weight = min_weight
        self._source: tuple[Gaussians, np.ndarray] | None = None
        self._model: Gaussians | None = None
        self._max_scales = np.zeros(0, np.float32)

    def set_model(self, gaussians: Gaussians, visible: np.ndarray) -> None:
        """Prepare a model (the visible part is gathered at the next pick, so edits stay cheap).

        Args:
            gaussians: N Gaussians with segments (not modified before the next pick).
            visible: [N] bool, the Gaussians that are drawn (hidden/deleted excluded).
        """
        self._source = (gaussians, np.asarray(visible, bool).copy())
        self._model = None

    def _prepared(self) -> Gaussians | None:
        if self._model is None and self._source is not None:
            gaussians, visible = self._source
            part = gaussians.subset(visible)
            if part.segments is None:
                part.segments = np.zeros(len(part), np.int32)
            self._model = part
            self._max_scales = part.scales.max(axis=1) if len(part) else np.zeros(0, np.float32)
        return self._model

    def weights(self, viewmat: np.ndarray, focal: tuple[float, float, float, float],
                size: tuple[int, int], x: float, y: float) -> dict[int, float]:
        """Blending weight of every segment at pixel (x, y) (continuous image coordinates).

        Args:
            viewmat: [4, 4] world-to-camera (OpenCV).
            focal: (fx, fy, cx, cy) of the full image in pixels.
            size: (width, height) of the full image.
            x, y: a point inside the pixel to pick (column, row, pixel units).
        """
        g = self._prepared()
        if g is None or not len(g):
            return {}
        rows = pick_candidates(g.means, self._max_scales, viewmat, focal, x, y)
        if not len(rows):
            return {}
        part = g.subset(rows)
        wts = pixel_weights(part, viewmat, focal, size, x, y)
        totals: dict[int, float] = {}
        for sid, wt in zip(part.segments[wts > 0].tolist(), wts[wts > 0].tolist()):
            totals[sid] = totals.get(sid, 0.0) + wt
        return totals

    def pick(self, viewmat: np.ndarray, focal: tuple[float, float, float, float],
             size: tuple[int, int], x: float, y: float) -> int | None:
        """The segment id shown at pixel (x, y) of a `size` image, or None for background."""
        w = self.weights(viewmat, focal, size, x, y)
        if not w:
            return None
        best = max(w, key=w.get)
        return best if w[best] >= self.min_weight else None
