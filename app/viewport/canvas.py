"""The interactive splat viewport: a vispy canvas with cameras, sorting and FPS.

Controls (also in docs/studio.md):
- left drag: orbit (fly mode: look around); right or middle drag, or Shift +
  left drag: pan; wheel: zoom; click: pick (Shift adds, Ctrl removes).
- Ctrl + left drag: `edit_drag` signals (the window moves the selection).
- An active tool (`tools`, `app.tools.ViewportTools`: selection shapes, the
  gizmo) sees every press first and keeps the drag when it takes it; with
  a selection tool the right button orbits. Its overlay lines are drawn
  over the splats after every frame.
- W A S D move, Q E down / up while fly mode is on (or with any mode held
  down on the canvas); F frames the selection (handled by the window).

The draw order is refreshed only when the view has turned by more than
`resort_angle_deg` or moved by more than `resort_fraction` of the scene radius;
the sort runs on `DepthSorter`'s thread and the frame keeps the previous order
until it arrives. While the camera moves, frames render at `moving_scale` of
the resolution and only the renderer's `lod_count` most important Gaussians,
both adapted after every moving frame to keep it near `target_fps` (software
GL is bound by fragments and by about 1 us per vertex), and a full frame
follows once the camera has rested for 200 ms. The first frame after an edit
is drawn the same quick way, so the change shows at once.

At rest the splats are not redrawn until something changes: frames that are
not moving go through `SplatRenderer.draw_cached`, which renders the full
frame into a texture only when its key (view, intrinsics, size, mode,
highlight, background, depth range, the renderer's `version`) changed and
otherwise only blits it, so a repaint the view did not ask for (window
expose, a dock resized, the FPS label) costs one textured quad instead of a
full splat pass. Every path that changes the picture goes through the key:
the camera and the window size through the frame, `mode` and `highlight`
directly, the buffers (model, edits, selection and visibility, colours,
sort order) through the renderer's methods, which bump `version`.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from vispy import app as vispy_app
from vispy import gloo

from app.viewport.camera import ViewCamera
from app.viewport.overlay import OverlayRenderer
from app.viewport.sorter import DepthSorter
from app.viewport.splats import FrameParams, SplatRenderer

_FLY_KEYS = {"W": (0, 0, 1), "S": (0, 0, -1), "A": (-1, 0, 0), "D": (1, 0, 0), "Q": (0, 1, 0), "E": (0, -1, 0)}


@dataclass
class PointerEvent:
    """A mouse event as tools see it: logical pixels, button 1 left / 2 right / 3 middle."""

    pos: tuple[float, float]
    button: int
    modifiers: frozenset[str]
    double: bool = False

    @property
    def how(self) -> str:
        """The selection habit of the modifiers: Shift adds, Ctrl removes, none replaces."""
        if "Shift" in self.modifiers:
            return "add"
        if "Control" in self.modifiers or "Meta" in self.modifiers:
            return "remove"
        return "replace"


def _pointer(event, double: bool = False) -> PointerEvent:
    button = event.button if getattr(event, "button", None) else (event.buttons[0] if event.buttons else 1)
    return PointerEvent((float(event.pos[0]), float(event.pos[1])), int(button or 1),
                        frozenset(m.name for m in event.modifiers), double)


class ViewportSignals(QObject):
    """Qt signals of the viewport (vispy's canvas is not a QObject we own)."""

    picked = Signal(int, int, str)
    """x, y in logical pixels, modifier: "" | "shift" | "ctrl" (add / remove)."""
    fps_changed = Signal(float)
    edit_drag = Signal(str, float, float)
    """Ctrl + left drag: phase "start" | "move" | "end", dx, dy in logical pixels."""
    frame_drawn = Signal()


class SplatCanvas(vispy_app.Canvas):
    """A vispy canvas that splats Gaussians; embed `canvas.native` in a layout."""

    resort_angle_deg = 2.0
    resort_fraction = 0.02
    target_fps = 15.0
    min_scale = 0.25
    min_lod = 5_000
    start_lod = 50_000

    def __init__(self, parent=None, size: tuple[int, int] = (1280, 720)) -> None:
        super().__init__(app="pyside6", keys=None, vsync=False, size=size, parent=parent, show=False)
        self.signals = ViewportSignals()
        self.camera = ViewCamera()
        self.mode = "rgb"
        self.highlight = False
        self.reduce_while_moving = True
        self.scene_radius = 1.0
        self.moving_scale = 0.5
        self._means = np.zeros((0, 3), np.float32)
        self._generation = 0
        self._sorted_view: np.ndarray | None = None
        self._press: tuple[float, float] | None = None
        self._dragged = False
        self._edit_dragging = False
        self._moved_since_draw = False
        self.last_frame_cached = False
        """Whether the last paint was an at-rest cache hit (only the cached frame blitted)."""
        self._frames: deque[float] = deque(maxlen=120)
        self.fly_mode = False
        self._held: set[str] = set()
        self.tools = None
        """The active tool controller (`app.tools.ViewportTools`), or None."""
        self._tool_drag = False
        self.set_current()
        self.renderer = SplatRenderer()
        self.overlay = OverlayRenderer()
        self.sorter = DepthSorter()
        self.sorter.ready.connect(self._on_sorted)
        self._refine = QTimer(singleShot=True, interval=200)
        self._refine.timeout.connect(self.update)
        self._fly_timer = QTimer(interval=16)
        self._fly_timer.timeout.connect(self._fly_step)
        self._fly_clock = time.perf_counter()

    # ------------------------------------------------------------ model
    def set_model(self, means: np.ndarray, upload) -> None:
        """Replace the drawn model.

        Args:
            means: [N, 3] float32 centres (kept for sorting).
            upload: callable(renderer) that fills the GPU buffers.
        """
        self.set_current()
        upload(self.renderer)
        self.renderer.lod_count = min(self.renderer.count, max(self.start_lod, self.renderer.lod_count))
        self._means = np.ascontiguousarray(means, np.float32)
        self._generation += 1
        self._sorted_view = None
        self.request_sort(force=True)
        self.update()

    def set_means(self, means: np.ndarray) -> None:
        """[N, 3] centres after an edit moved some (same N): the next sort uses them."""
        self._means = np.ascontiguousarray(means, np.float32)

    def set_depth_range(self, near: float, far: float) -> None:
        self.renderer.depth_range = (float(near), float(far))

    def request_sort(self, force: bool = False) -> None:
        """Start a background sort if the view moved enough since the last one."""
        if not len(self._means):
            return
        view = self.camera.viewmat()
        if not force and self._sorted_view is not None and not self._needs_sort(view):
            return
        self._sorted_view = view
        self.sorter.request(self._generation, self._means, view)

    def _needs_sort(self, view: np.ndarray) -> bool:
        old = self._sorted_view
        cos = float(np.clip(old[2, :3] @ view[2, :3], -1.0, 1.0))
        if math.degrees(math.acos(cos)) > self.resort_angle_deg:
            return True
        pos_old = -old[:3, :3].T @ old[:3, 3]
        pos_new = -view[:3, :3].T @ view[:3, 3]
        return float(np.linalg.norm(pos_new - pos_old)) > self.resort_fraction * self.scene_radius

    def _on_sorted(self, generation: int, order: np.ndarray, _view: np.ndarray) -> None:
        if generation != self._generation:
            return
        self.set_current()
        self.renderer.set_order(order)
        self.update()

    # ------------------------------------------------------------ drawing
    def frame_params(self, size: tuple[int, int] | None = None) -> FrameParams:
        w, h = size or tuple(self.physical_size)
        return FrameParams(self.camera.viewmat(), self.camera.focal(w, h), (w, h), self.mode, self.highlight)

    def on_draw(self, _event) -> None:
        frame = self.frame_params()
        moving = self.reduce_while_moving and self._moved_since_draw
        self._moved_since_draw = False
        now = time.perf_counter()
        if moving:
            self.renderer.draw_scaled(frame, self.moving_scale, frame.size, lod=True)
            # Finish so the adaptation sees the real cost of this frame, not mouse-event gaps.
            gloo.gl.glFinish()
            self.adapt_scale(time.perf_counter() - now)
            self._refine.start()
            self.last_frame_cached = False
        else:
            self.last_frame_cached = self.renderer.draw_cached(frame, frame.size)
        if self.tools is not None:
            ratio = self.pixel_scale
            lines = self.tools.overlay_lines()
            for line in lines:
                line.points = np.asarray(line.points, np.float32) * ratio
            self.overlay.draw(lines, frame.size)
        self._frames.append(now)
        recent = [t for t in self._frames if now - t < 1.0]
        if len(recent) > 1:
            self.signals.fps_changed.emit((len(recent) - 1) / (recent[-1] - recent[0]))
        self.signals.frame_drawn.emit()

    def adapt_scale(self, frame_seconds: float) -> None:
        """Move `moving_scale` and the LOD count towards what draws at `target_fps`."""
        budget = 1.0 / self.target_fps
        r = self.renderer
        if frame_seconds > budget:
            self.moving_scale = max(self.min_scale, self.moving_scale * 0.8)
            r.lod_count = min(r.count, max(self.min_lod, int(r.lod_count * 0.8)))
        elif frame_seconds < 0.6 * budget:
            self.moving_scale = min(1.0, self.moving_scale * 1.15)
            r.lod_count = min(r.count, int(r.lod_count * 1.15) + 1)

    def show_edit(self, moved: bool) -> None:
        """An edit changed the buffers: draw a quick frame now (re-sorting if centres moved), refine at rest."""
        if moved:
            self.request_sort(force=True)
        self._moved_since_draw = True
        self.update()

    def on_resize(self, _event) -> None:
        self.update()

    def render_image(self, size: tuple[int, int]) -> np.ndarray:
        """[H, W, 3] uint8 full-resolution frame of the current view at `size`."""
        self.set_current()
        return self.renderer.render_offscreen(self.frame_params(size))

    def camera_changed(self) -> None:
        """Call after any camera change: marks motion, maybe re-sorts, redraws."""
        self._moved_since_draw = True
        self.request_sort()
        self.update()

    # ------------------------------------------------------------ input
    def on_mouse_press(self, event) -> None:
        self._press = tuple(event.pos)
        self._dragged = False
        self._tool_drag = self.tools is not None and self.tools.press(_pointer(event))

    def on_mouse_double_click(self, event) -> None:
        if self.tools is not None:
            self.tools.press(_pointer(event, double=True))

    def on_mouse_move(self, event) -> None:
        if self._tool_drag:
            self.tools.drag(_pointer(event))
            return
        if self.tools is not None and (self._press is None or not event.is_dragging):
            self.tools.hover(_pointer(event))
        if self._press is None or event.last_event is None or not event.is_dragging:
            return
        x0, y0 = event.last_event.pos
        x1, y1 = event.pos
        dx, dy = x1 - x0, y1 - y0
        if abs(x1 - self._press[0]) + abs(y1 - self._press[1]) > 3:
            self._dragged = True
        mods = {m.name for m in event.modifiers}
        button = event.buttons[0] if event.buttons else 1
        if button == 1 and "Control" in mods and not self._edit_dragging:
            if not self._dragged:
                return
            # The first few pixels (before it counted as a drag) move the selection too.
            self._edit_dragging = True
            self.signals.edit_drag.emit("start", 0.0, 0.0)
            dx, dy = x1 - self._press[0], y1 - self._press[1]
        if self._edit_dragging:
            self.signals.edit_drag.emit("move", float(dx), float(dy))
            return
        right_orbits = self.tools is not None and self.tools.right_button_orbits
        if button == 3 or (button == 2 and not right_orbits) or (button == 1 and "Shift" in mods):
            self.camera.pan(dx, dy, self.size[1])
        elif self.fly_mode:
            self.camera.look(dx * 0.005, dy * 0.005)
        else:
            self.camera.orbit(dx * 0.008, dy * 0.008)
        self.camera_changed()

    def on_mouse_release(self, event) -> None:
        if self._tool_drag:
            self._tool_drag = False
            self._press = None
            self.tools.release(_pointer(event))
            return
        if self._edit_dragging:
            self._edit_dragging = False
            self.signals.edit_drag.emit("end", 0.0, 0.0)
        if self._press is not None and not self._dragged and event.button == 1:
            mods = {m.name for m in event.modifiers}
            modifier = "shift" if "Shift" in mods else "ctrl" if ("Control" in mods or "Meta" in mods) else ""
            self.signals.picked.emit(int(event.pos[0]), int(event.pos[1]), modifier)
        self._press = None

    def on_mouse_wheel(self, event) -> None:
        self.camera.zoom(0.85 ** event.delta[1])
        self.camera_changed()

    def on_key_press(self, event) -> None:
        name = getattr(event.key, "name", "")
        if self.tools is not None and self.tools.key(name):
            return
        if name in _FLY_KEYS and not event.modifiers:
            self._held.add(name)
            if not self._fly_timer.isActive():
                self._fly_clock = time.perf_counter()
                self._fly_timer.start()

    def on_key_release(self, event) -> None:
        self._held.discard(getattr(event.key, "name", ""))
        if not self._held:
            self._fly_timer.stop()

    def _fly_step(self) -> None:
        now = time.perf_counter()
        dt, self._fly_clock = now - self._fly_clock, now
        step = np.sum([_FLY_KEYS[k] for k in self._held], axis=0) if self._held else np.zeros(3)
        self.camera.fly(*(step * self.scene_radius * 0.6 * dt))
        self.camera_changed()

    def close_viewport(self) -> None:
        """Stop timers and the sort thread; call before the canvas is destroyed."""
        self._refine.stop()
        self._fly_timer.stop()
        self.sorter.shutdown()
