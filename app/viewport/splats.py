"""GPU Gaussian splatting with vispy gloo: buffers, draw order, offscreen frames.

Every Gaussian is one point sprite: a screen-aligned square around its
projected mean, the smallest one that holds the ellipse of Mahalanobis radius
3 (less for faint splats) of the projected covariance, i.e. its axis-aligned
bounding box (half side 3 sqrt(max(Sigma'xx, Sigma'yy))). The 3DGS rasteriser
covers the larger square of half side ceil(3 sqrt(lambda_max)) (and whole
16-px tiles); the pixels it has beyond that ellipse hold alpha below
opacity x exp(-4.5) ~ 1 % and are not drawn here (at most a few 1/255 steps
at splat edges; on llvmpipe the fill is most of a frame, and the smaller
square saves about a quarter of it). One vertex per Gaussian
(instead of four for a quad; vispy's default desktop GL binding has no
instancing) and four attributes per vertex matter on Mesa llvmpipe, whose
vertex stage and point setup are single-threaded. The shaders' varyings are
`flat` (GLSL 1.30), so llvmpipe does not interpolate them per fragment, and
the fragment shader takes its offset from `gl_FragCoord`. Simplification: the
half side is capped at half the GL's largest point size (255 px on llvmpipe,
so 127 px); a Gaussian wider than that on screen loses the tail beyond the
cap (only visible close up).

The display colour (`a_color`: RGB, segment colour, overlay or feature colour,
the selection tint, and the opacity, 0 for hidden Gaussians) is composed on
the CPU by `display_colors` (`app.viewport.compose`, one numba pass) when
the mode, selection or visibility changes, so the shader stays small.
Selected splats are always tinted yellow (the highlight option additionally
dims the rest); their opacity is stored negated, so depth mode, which
colours by camera depth in the shader, tints them there too.
The draw order is an index buffer (one uint32 per Gaussian) replaced after
every depth sort. A second, shorter index buffer holds the same order
restricted to the `lod_count` most important Gaussians (opacity x the area
of the two largest axes): frames drawn while the camera moves may use it,
since llvmpipe's vertex stage and point setup cost about 0.6 us of CPU per
Gaussian whatever its size (`coseg-studio --benchmark` prints the split).

At rest the viewport repaints through `draw_cached`: the full frame is
rendered once into an RGBA8 texture of the frame's size and every later
repaint with the same key only blits that texture (one textured quad, no
splat). The key is everything a full frame depends on: view matrix,
intrinsics, size, mode, highlight, background, `depth_range`,
`max_radius` and `version`, a counter every buffer-changing method
(`set_gaussians`, `update_rows`, `set_alt_colors`, `set_state`,
`set_order`) increments. Code that changes the buffers some other way
must call `invalidate_cache`. The blitted image is the direct `draw`'s
exactly: the texture and the window are both 8 bits per channel, blending
quantises the same way into either, and the blit samples texel centres
with nearest filtering (a test compares them pixel for pixel).
"""

from __future__ import annotations

from dataclasses import dataclass
import re
from pathlib import Path

import numpy as np
from vispy import gloo

from app.viewport.compose import changed_rows, display_colors
from coseg.gaussians import Gaussians, sh_dc_to_rgb, sigmoid
from coseg.edit.rowsets import unique_rows
from coseg.sort import covariances_upper, covariances_upper_of

SHADER_DIR = Path(__file__).resolve().parents[2] / "resources" / "shaders"
MODES = ("rgb", "segmentation", "overlay", "depth", "features")
_GEOMETRY = ("means", "quats", "log_scales")
"""The Gaussian fields the geometry buffers (a_mean, a_cov_a, a_cov_b) are computed from."""


def load_shader(name: str, glsl: tuple[int, int] = (1, 30)) -> str:
    """Source of `resources/shaders/NAME` for a context with GLSL version `glsl` (see `for_glsl`)."""
    return for_glsl((SHADER_DIR / name).read_text(), glsl)


def for_glsl(source: str, glsl: tuple[int, int]) -> str:
    """A GLSL 1.30 shader rewritten as 1.20 when the context has no 1.30 (e.g. macOS legacy contexts).

    The splat shaders use 1.30 only for `flat` varyings; as plain 1.20
    varyings they hold the same value over a point sprite (one vertex), so
    the image is the same and only llvmpipe's interpolation work comes back.
    """
    if glsl >= (1, 30) or not source.startswith("#version 130"):
        return source
    source = source.replace("#version 130", "#version 120", 1)
    return source.replace("flat out ", "varying ").replace("flat in ", "varying ")


def glsl_version() -> tuple[int, int]:
    """(major, minor) GLSL version of the current GL context; (1, 20) when unreadable."""
    text = str(gloo.gl.glGetParameter(gloo.gl.GL_SHADING_LANGUAGE_VERSION))
    match = re.search(r"(\d+)\.(\d+)", text)
    if match is None:
        return (1, 20)
    return int(match[1]), int(match[2][:2].ljust(2, "0"))


def _f32(arr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(arr, np.float32)


def importance(gaussians: Gaussians) -> np.ndarray:
    """[N] opacity x product of the two largest scales: how much a Gaussian covers, view-independently."""
    two = np.sort(gaussians.log_scales, axis=1)[:, 1:].sum(1)
    return gaussians.opacities * np.exp(two)


@dataclass
class FrameParams:
    """Everything one frame needs besides the buffers."""

    viewmat: np.ndarray
    """[4, 4] world-to-camera (OpenCV)."""
    focal: tuple[float, float, float, float]
    """fx, fy, cx, cy in pixels of the target size."""
    size: tuple[int, int]
    """width, height in pixels."""
    mode: str = "rgb"
    highlight: bool = False
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)


class SplatRenderer:
    """The splatting program and its buffers; needs a current GL context."""

    def __init__(self) -> None:
        self.glsl = glsl_version()
        self.program = gloo.Program(load_shader("splat.vert", self.glsl), load_shader("splat.frag", self.glsl))
        self.count = 0
        self.index: gloo.IndexBuffer | None = None
        self.depth_range = (0.1, 10.0)
        self.max_radius = float(np.floor(gloo.gl.glGetParameter(gloo.gl.GL_ALIASED_POINT_SIZE_RANGE)[1] / 2))
        self._blit = gloo.Program(load_shader("blit.vert"), load_shader("blit.frag"))
        self._blit["a_position"] = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], np.float32)
        self._fbo: gloo.FrameBuffer | None = None
        self._fbo_tex: gloo.Texture2D | None = None
        self._buffers: dict[str, gloo.VertexBuffer] = {}
        self._composed: tuple[str, bool] | None = None
        self.lod_count = 0
        """Gaussians drawn by `draw(..., lod=True)`; 0 or >= count draws all."""
        self._rank = np.zeros(0, np.int64)
        self._order = np.zeros(0, np.uint32)
        self._lod_index: gloo.IndexBuffer | None = None
        self._lod_built = -1
        self.version = 0
        """Incremented by every method that changes what a frame shows (part of the frame cache's key)."""
        self._cache_fbo: gloo.FrameBuffer | None = None
        self._cache_tex: gloo.Texture2D | None = None
        self._cache_key: tuple | None = None

    # ------------------------------------------------------------ buffers
    def set_gaussians(self, gaussians: Gaussians, alt_colors: np.ndarray) -> None:
        """Upload a whole model (once per model change).

        Args:
            gaussians: N Gaussians.
            alt_colors: [N, 3] float32 segment (or feature) colours in [0, 1].
        """
        n = len(gaussians)
        self.version += 1
        self.count = n
        self._rgb = gaussians.colors
        self._opacity = gaussians.opacities
        self._alt = _f32(alt_colors)
        self._state = np.zeros(n, np.float32)
        self._composed = None
        if n == 0:
            self.index = None
            return
        cov = covariances_upper(gaussians)
        # What the buffers were computed from, to find the rows an edit moved or recoloured.
        self._source = {k: getattr(gaussians, k).copy() for k in (*_GEOMETRY, "sh_dc", "opacity_logits")}
        self._geometry = {"a_mean": _f32(gaussians.means), "a_cov_a": _f32(cov[:, :3]), "a_cov_b": _f32(cov[:, 3:])}
        self._buffers = {name: gloo.VertexBuffer(arr) for name, arr in self._geometry.items()}
        self._buffers["a_color"] = gloo.VertexBuffer(np.zeros((n, 4), np.float32))
        for name, buf in self._buffers.items():
            self.program[name] = buf
        self._order = np.arange(n, dtype=np.uint32)
        self.index = gloo.IndexBuffer(self._order)
        self._rank = np.empty(n, np.int64)
        self._rank[np.argsort(-importance(gaussians), kind="stable")] = np.arange(n)
        self._lod_built = -1

    def update_rows(self, gaussians: Gaussians, rows: np.ndarray) -> int:
        """Re-upload what an edit changed in the given rows (same N as the last upload).

        Geometry (means, covariances) is sent only for the rows whose values
        changed, as the contiguous span that holds them; a delete, a
        recolour or an assign sends none. Colours are recomposed at the
        next draw only when a row's DC colour or opacity changed (a
        transform drag's previews and an assign change neither). Both are
        found by comparing the rows with the values last uploaded
        (`app.viewport.compose.changed_rows`, no copies of the rows).
        Segment colours are updated apart (`update_alt_rows`, after an
        assign, merge or split).

        Args:
            gaussians: the model after the edit.
            rows: [M] row indices the edit touched.

        Returns:
            Number of rows whose geometry was uploaded.
        """
        self.version += 1
        if not len(rows):
            return 0
        rows = np.asarray(rows, np.int64)
        rows = unique_rows(rows, self.count)  # edits pass sorted rows; merged steps may not
        src = self._source
        recolored = rows[changed_rows(rows, (gaussians.sh_dc, gaussians.opacity_logits),
                                      (src["sh_dc"], src["opacity_logits"]))]
        if len(recolored):
            for name in ("sh_dc", "opacity_logits"):
                src[name][recolored] = getattr(gaussians, name)[recolored]
            self._rgb[recolored] = np.clip(sh_dc_to_rgb(gaussians.sh_dc[recolored]), 0.0, 1.0)
            self._opacity[recolored] = sigmoid(gaussians.opacity_logits[recolored])
            self._composed = None
        rows = rows[changed_rows(rows, tuple(getattr(gaussians, k) for k in _GEOMETRY),
                                 tuple(src[k] for k in _GEOMETRY))]
        if not len(rows):
            return 0
        new = {name: getattr(gaussians, name)[rows] for name in _GEOMETRY}
        for name, values in new.items():
            src[name][rows] = values
        cov = covariances_upper_of(new["quats"], new["log_scales"])
        for name, arr in (("a_mean", new["means"]), ("a_cov_a", cov[:, :3]), ("a_cov_b", cov[:, 3:])):
            self._geometry[name][rows] = _f32(arr)
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        for name, arr in self._geometry.items():
            self._buffers[name].set_subdata(arr[lo:hi], offset=lo)
        return hi - lo

    def update_alt_rows(self, rows: np.ndarray, colors: np.ndarray) -> None:
        """New segment or feature colours [M, 3] for some rows (an assign, merge or split)."""
        self._alt[np.asarray(rows, np.int64)] = colors
        self._composed = None
        self.version += 1

    def set_alt_colors(self, colors: np.ndarray) -> None:
        """[N, 3] segment or feature colours for the non-RGB modes."""
        self._alt = _f32(colors)
        self._composed = None
        self.version += 1

    def set_state(self, state: np.ndarray) -> None:
        """[N] float32 per-Gaussian state: 0 normal, 1 selected, 2 hidden (nothing to do when unchanged)."""
        state = _f32(state)
        if state.shape == self._state.shape and np.array_equal(state, self._state):
            return
        self._state = state
        self._composed = None
        self.version += 1

    def set_order(self, order: np.ndarray) -> None:
        """[N] uint32 draw order (first drawn first, i.e. back to front)."""
        if self.count and len(order) == self.count:
            self._order = np.asarray(order, np.uint32)
            self.index.set_data(self._order)
            self._lod_built = -1
            self.version += 1

    # ------------------------------------------------------------ drawing
    def _lod(self) -> gloo.IndexBuffer:
        """The draw order restricted to the `lod_count` most important Gaussians."""
        if self._lod_built != self.lod_count or self._lod_index is None:
            sub = self._order[self._rank[self._order] < self.lod_count]
            if self._lod_index is None:
                self._lod_index = gloo.IndexBuffer(sub)
            else:
                self._lod_index.set_data(sub)
            self._lod_built = self.lod_count
        return self._lod_index

    def draw(self, frame: FrameParams, lod: bool = False, program: gloo.Program | None = None) -> None:
        """Draw into the currently bound framebuffer of size `frame.size`.

        Args:
            frame: view, intrinsics, size and mode.
            lod: draw only the `lod_count` most important Gaussians.
            program: another program with the same attributes and uniforms to
                draw with instead of the splatting one (the benchmark's
                fragment counter, `app.benchmark`).
        """
        w, h = frame.size
        gloo.set_viewport(0, 0, w, h)
        gloo.set_state(blend=True, depth_test=False, cull_face=False)
        gloo.set_blend_func("one", "one_minus_src_alpha")
        gloo.set_clear_color((*frame.background, 1.0))
        gloo.clear(color=True, depth=True)
        if not self.count:
            return
        key = ("rgb" if frame.mode == "depth" else frame.mode, frame.highlight)
        if self._composed != key:
            self._buffers["a_color"].set_data(display_colors(key[0], self._rgb, self._alt, self._opacity,
                                                             self._state, frame.highlight))
            self._composed = key
        p = self.program if program is None else program
        if program is not None:
            for name, buf in self._buffers.items():
                p[name] = buf
        p["u_view"] = np.asarray(frame.viewmat, np.float32).T
        fx, fy, cx, cy = frame.focal
        p["u_focal"] = (fx, fy)
        p["u_principal"] = (cx, cy)
        p["u_size"] = (float(w), float(h))
        p["u_depth_mode"] = 1.0 if frame.mode == "depth" else 0.0
        p["u_depth_range"] = self.depth_range
        p["u_max_radius"] = self.max_radius
        p.draw("points", self._lod() if lod and 0 < self.lod_count < self.count else self.index)

    def draw_scaled(self, frame: FrameParams, scale: float, window_size: tuple[int, int], lod: bool = False) -> None:
        """Draw at `scale` x the resolution into a texture and stretch it over the window."""
        small = (max(1, int(frame.size[0] * scale)), max(1, int(frame.size[1] * scale)))
        fbo, tex = self._target(small)
        fx, fy, cx, cy = frame.focal
        sub = FrameParams(frame.viewmat, (fx * scale, fy * scale, cx * scale, cy * scale), small,
                          frame.mode, frame.highlight, frame.background)
        with fbo:
            self.draw(sub, lod)
        gloo.set_viewport(0, 0, *window_size)
        gloo.set_state(blend=False)
        self._blit["u_texture"] = tex
        self._blit.draw("triangle_strip")

    def frame_key(self, frame: FrameParams) -> tuple:
        """Everything a full `draw(frame)` shows depends on, `version` included (the frame cache's key)."""
        return (np.asarray(frame.viewmat, np.float64).tobytes(), tuple(map(float, frame.focal)),
                tuple(map(int, frame.size)), frame.mode, bool(frame.highlight),
                tuple(map(float, frame.background)), tuple(map(float, self.depth_range)),
                float(self.max_radius), self.version)

    def draw_cached(self, frame: FrameParams, window_size: tuple[int, int]) -> bool:
        """Show the full frame `draw(frame)` would draw, drawing the splats only when it changed.

        The frame is rendered into an RGBA8 texture of `frame.size` (nearest
        filtering; separate from the reduced-resolution target of
        `draw_scaled`) when `frame_key` differs from the cached one, then
        the texture is blitted over the `window_size` viewport of the bound
        framebuffer with blending off. With `window_size == frame.size` the
        pixels equal those of a direct `draw(frame)`.

        Returns:
            True on a cache hit (only the blit was drawn).
        """
        key = self.frame_key(frame)
        hit = key == self._cache_key
        if not hit:
            fbo, _tex = self._cache_target(frame.size)
            self._cache_key = None  # a draw that raises leaves no stale key
            with fbo:
                self.draw(frame)
            self._cache_key = key
        gloo.set_viewport(0, 0, *window_size)
        gloo.set_state(blend=False, depth_test=False, cull_face=False)
        self._blit["u_texture"] = self._cache_tex
        self._blit.draw("triangle_strip")
        return hit

    def invalidate_cache(self) -> None:
        """Make the next `draw_cached` draw the frame again (after a change its key does not see)."""
        self._cache_key = None

    def render_offscreen(self, frame: FrameParams) -> np.ndarray:
        """[H, W, 3] uint8 image of one frame, rendered into an offscreen buffer."""
        w, h = frame.size
        color = gloo.RenderBuffer((h, w, 4))
        fbo = gloo.FrameBuffer(color=color, depth=gloo.RenderBuffer((h, w)))
        with fbo:
            self.draw(frame)
            img = gloo.read_pixels((0, 0, w, h), alpha=False)
        return np.ascontiguousarray(img)

    def _target(self, size: tuple[int, int]) -> tuple[gloo.FrameBuffer, gloo.Texture2D]:
        if self._fbo is None or self._fbo_tex.shape[:2] != (size[1], size[0]):
            self._fbo_tex = gloo.Texture2D((size[1], size[0], 4), interpolation="linear")
            self._fbo = gloo.FrameBuffer(color=self._fbo_tex)
        return self._fbo, self._fbo_tex

    def _cache_target(self, size: tuple[int, int]) -> tuple[gloo.FrameBuffer, gloo.Texture2D]:
        """The at-rest frame cache: a framebuffer around an RGBA8 texture of `size`, nearest filtering."""
        if self._cache_fbo is None or self._cache_tex.shape[:2] != (size[1], size[0]):
            self._cache_tex = gloo.Texture2D((size[1], size[0], 4), interpolation="nearest",
                                             internalformat="rgba8")
            self._cache_fbo = gloo.FrameBuffer(color=self._cache_tex)
        return self._cache_fbo, self._cache_tex
