"""Click picking: the segment the rendered segmentation shows at a pixel.

The pick renders the segmentation with the engine's CPU rasteriser
(`coseg.render.rasterization`) at that one pixel only: a 1x1 camera whose
principal point is shifted so its single pixel centre is the clicked pixel
centre, and one-hot segment channels, so the result is each segment's
blending weight there, exactly what a segmentation render composites. The
picked segment is the one with the largest weight; a pixel whose largest
weight is under `min_weight` (background) picks nothing.

Only the Gaussians that can reach the pixel (`coseg.sort.pick_candidates`, a
conservative cone test) go to the rasteriser, so a pick at 200k Gaussians costs
one vectorised distance test plus a render of a few hundred Gaussians.
"""

from __future__ import annotations

import numpy as np
import torch

from coseg.gaussians import Gaussians
from coseg.render import rasterization
from coseg.sort import pick_candidates


class Picker:
    """Segment picking against the CPU render (see module docstring)."""

    def __init__(self, min_weight: float = 0.1) -> None:
        self.min_weight = min_weight
        self._model: Gaussians | None = None
        self._max_scales = np.zeros(0, np.float32)

    def set_model(self, gaussians: Gaussians, visible: np.ndarray) -> None:
        """Prepare a model.

        Args:
            gaussians: N Gaussians with segments.
            visible: [N] bool, the Gaussians that are drawn (hidden/deleted excluded).
        """
        part = gaussians.subset(visible)
        if part.segments is None:
            part.segments = np.zeros(len(part), np.int32)
        self._model = part
        self._max_scales = part.scales.max(axis=1) if len(part) else np.zeros(0, np.float32)

    def weights(self, viewmat: np.ndarray, focal: tuple[float, float, float, float],
                x: float, y: float) -> dict[int, float]:
        """Blending weight of every segment at pixel (x, y) (continuous image coordinates).

        Args:
            viewmat: [4, 4] world-to-camera (OpenCV).
            focal: (fx, fy, cx, cy) of the full image in pixels.
            x, y: a point inside the pixel to pick (column, row, pixel units).
        """
        g = self._model
        if g is None or not len(g):
            return {}
        rows = pick_candidates(g.means, self._max_scales, viewmat, focal, x, y)
        if not len(rows):
            return {}
        part = g.subset(rows)
        ids, inverse = np.unique(part.segments, return_inverse=True)
        onehot = torch.nn.functional.one_hot(torch.from_numpy(inverse.reshape(-1).astype(np.int64)), len(ids))
        fx, fy, cx, cy = focal
        i, j = int(np.floor(x)), int(np.floor(y))
        K = torch.tensor([[fx, 0.0, cx - i], [0.0, fy, cy - j], [0.0, 0.0, 1.0]], dtype=torch.float32)
        with torch.no_grad():
            image, _, _ = rasterization(
                torch.from_numpy(part.means), torch.from_numpy(part.quats), torch.from_numpy(part.scales),
                torch.from_numpy(part.opacities), onehot.to(torch.float32),
                torch.as_tensor(viewmat, dtype=torch.float32), K, 1, 1, backend="cpu")
        w = image.reshape(-1).numpy()
        return {int(ids[k]): float(w[k]) for k in np.flatnonzero(w > 0)}

    def pick(self, viewmat: np.ndarray, focal: tuple[float, float, float, float],
             x: float, y: float) -> int | None:
        """The segment id shown at pixel (x, y), or None for background."""
        w = self.weights(viewmat, focal, x, y)
        if not w:
            return None
        best = max(w, key=w.get)
        return best if w[best] >= self.min_weight else None
