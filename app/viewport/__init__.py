"""The OpenGL (vispy gloo) Gaussian splatting viewport of the studio."""

from app.viewport.camera import ViewCamera
from app.viewport.canvas import SplatCanvas
from app.viewport.splats import MODES, FrameParams, SplatRenderer

__all__ = ["FrameParams", "MODES", "SplatCanvas", "SplatRenderer", "ViewCamera"]
