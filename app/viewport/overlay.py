"""2D line overlay over the splats: selection shapes, the brush circle, volumes and the gizmo.

Whoever owns the overlay content (`app.tools.ViewportTools`) returns a list
of polylines in window pixels each frame; `OverlayRenderer.draw` turns them
into one GL_LINES batch (a few hundred vertices) drawn after the splats with
ordinary alpha blending, so it costs nothing next to a splat frame and is not
part of the at-rest frame cache (the cache holds the splats only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from vispy import gloo

from app.viewport.splats import load_shader


@dataclass
class Polyline:
    """A line through `points` [K, 2] (window pixels) in `color` (RGBA 0-1)."""

    points: np.ndarray
    color: tuple[float, float, float, float]
    closed: bool = False


def circle(centre, radius: float, segments: int = 48) -> np.ndarray:
    """[segments, 2] points of a circle in pixels."""
    t = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    return np.stack([centre[0] + radius * np.cos(t), centre[1] + radius * np.sin(t)], 1)


class OverlayRenderer:
    """Draws `Polyline`s over the current framebuffer; needs a current GL context."""

    def __init__(self) -> None:
        self.program = gloo.Program(load_shader("overlay.vert"), load_shader("overlay.frag"))

    def draw(self, lines: list[Polyline], size: tuple[int, int]) -> None:
        segs, cols = [], []
        for line in lines:
            p = np.asarray(line.points, np.float32).reshape(-1, 2)
            if len(p) < 2:
                continue
            a, b = p[:-1], p[1:]
            if line.closed:
                a, b = np.concatenate([a, p[-1:]]), np.concatenate([b, p[:1]])
            segs.append(np.stack([a, b], 1).reshape(-1, 2))
            cols.append(np.tile(np.asarray(line.color, np.float32), (2 * len(a), 1)))
        if not segs:
            return
        w, h = size
        gloo.set_viewport(0, 0, w, h)
        gloo.set_state(blend=True, depth_test=False, cull_face=False)
        gloo.set_blend_func("src_alpha", "one_minus_src_alpha")
        self.program["a_position"] = np.ascontiguousarray(np.concatenate(segs), np.float32)
        self.program["a_color"] = np.ascontiguousarray(np.concatenate(cols), np.float32)
        self.program["u_size"] = (float(w), float(h))
        self.program.draw("lines")
