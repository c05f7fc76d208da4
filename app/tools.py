"""Viewport tools: splat selection shapes and the transform gizmo, with SuperSplat's habits.

One tool is active at a time (toolbar and keys, docs/studio.md):

- pick (V): click selects the segment under the cursor (Shift adds, Ctrl
  removes), drag orbits, Ctrl+drag moves the selection in the screen plane;
- rectangle (R), lasso (L), polygon (P), brush (B): left drag (polygon:
  clicks, closed by a double click, Enter or a click on its first vertex;
  Esc drops it) selects the splats whose centres fall inside, through the
  model (`coseg.edit.selection`); Shift adds, Ctrl removes, no modifier
  replaces; the right button orbits meanwhile. The brush's radius is set
  with [ and ] or the spin box in the selection panel;
- volume (O): the sphere or box of the selection panel, drawn as a wireframe,
  selects in world space from the panel's buttons;
- move (T), rotate (Y), scale (U): the gizmo (`app.viewport.gizmo`) on the
  selection's centre; a drag on a handle previews the transform
  (`coseg.edit.document.TransformDrag`) and is one undo step when released.

Every selection is timed; the status bar shows the count and milliseconds.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.viewport import gizmo
from app.viewport.canvas import PointerEvent
from app.viewport.overlay import Polyline, circle
from coseg.edit import selection as sel

if TYPE_CHECKING:
    from app.main_window import MainWindow

SELECT_TOOLS = ("rect", "lasso", "polygon", "brush")
GIZMO_TOOLS = {"move": "translate", "rotate": "rotate", "scale": "scale"}
TOOLS = ("pick", *SELECT_TOOLS, "volume", *GIZMO_TOOLS)
SHAPE_COLOR = (1.0, 0.85, 0.0, 0.95)
VOLUME_COLOR = (0.3, 0.85, 1.0, 0.9)
CLOSE_PX = 8.0


class ViewportTools(QObject):
    """The active viewport tool and its state (see module docstring)."""

    tool_changed = Signal(str)
    selected = Signal(int, float)
    """After a selection tool: selected splat count, milliseconds it took."""

    def __init__(self, win: "MainWindow") -> None:
        super().__init__(win)
        self.win = win
        self.tool = "pick"
        self.brush_radius = 24.0
        """Brush radius in logical pixels."""
        self.volume: dict = {"shape": "sphere", "centre": np.zeros(3), "radius": 0.5, "half": np.full(3, 0.5)}
        self._path: list[tuple[float, float]] = []
        self._how = "replace"
        self._hover: tuple[float, float] | None = None
        self._handle: str | None = None
        self._drag = None
        self._drag_start: tuple[float, float] | None = None
        self._last_transform = None

    # ------------------------------------------------------------ tool choice
    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        self.cancel()
        self.tool = tool
        self.tool_changed.emit(tool)
        self.win.canvas.update()

    @property
    def right_button_orbits(self) -> bool:
        return self.tool in SELECT_TOOLS

    def cancel(self) -> bool:
        """Drop a shape or drag in progress; True when there was one."""
        had = bool(self._path) or self._drag is not None
        if self._drag is not None:
            self._drag.cancel()
            self._drag = None
        self._path = []
        self.win.canvas.update()
        return had

    def resize_brush(self, factor: float) -> None:
        self.brush_radius = float(np.clip(self.brush_radius * factor, 2.0, 400.0))
        self.win.canvas.update()

    # ------------------------------------------------------------ pointer
    def press(self, ev: PointerEvent) -> bool:
        """A button went down; True when the tool takes the drag."""
        if not self.win.doc.is_open or ev.button != 1:
            return False
        if self.tool in ("rect", "lasso", "brush"):
            self._how, self._path = ev.how, [ev.pos]
            return True
        if self.tool == "polygon":
            if ev.double and len(self._path) >= 3:
                self._finish_polygon()
            elif not self._path:
                self._how = ev.how
            return True
        if self.tool in GIZMO_TOOLS:
            return self._begin_gizmo(ev)
        return False

    def drag(self, ev: PointerEvent) -> None:
        if self._drag is not None:
            self._gizmo_move(ev)
        elif self.tool in ("rect",) and self._path:
            self._path = [self._path[0], ev.pos]
        elif self.tool in ("lasso", "brush") and self._path:
            last = self._path[-1]
            if abs(ev.pos[0] - last[0]) + abs(ev.pos[1] - last[1]) >= 2:
                self._path.append(ev.pos)
        self._hover = ev.pos
        self.win.canvas.update()

    def release(self, ev: PointerEvent) -> None:
        if self._drag is not None:
            self._gizmo_end(ev)
            return
        if self.tool == "polygon":
            self._polygon_click(ev.pos)
            return
        path, self._path = self._path + [ev.pos], []
        tiny = max(abs(p[0] - path[0][0]) + abs(p[1] - path[0][1]) for p in path) < 3
        if tiny and self.tool != "brush":
            self.win.pick_at(int(ev.pos[0]), int(ev.pos[1]), {"add": "shift", "remove": "ctrl"}.get(self._how, ""))
        elif self.tool == "rect":
            (x0, y0), (x1, y1) = path[0], path[-1]
            self.select_screen(lambda xy, z, r: sel.in_rect(xy, z, x0 * r, y0 * r, x1 * r, y1 * r), self._how)
        elif self.tool == "lasso":
            self.select_screen(lambda xy, z, r: sel.in_polygon(xy, z, np.asarray(path) * r, self._size()), self._how)
        elif self.tool == "brush":
            radius = self.brush_radius
            self.select_screen(lambda xy, z, r: sel.in_stroke(xy, z, np.asarray(path) * r, radius * r,
                                                               self._size()), self._how)
        self.win.canvas.update()

    def hover(self, ev: PointerEvent) -> None:
        self._hover = ev.pos
        if self.tool in GIZMO_TOOLS and self._drag is None:
            pivot = self.pivot()
            handle = None if pivot is None else gizmo.hit(GIZMO_TOOLS[self.tool], self._view(), pivot, ev.pos)
            if handle != self._handle:
                self._handle = handle
                self.win.canvas.update()
        elif self.tool in ("brush", "polygon"):
            self.win.canvas.update()

    def key(self, name: str) -> bool:
        if self.tool == "polygon" and name in ("Enter", "Return") and len(self._path) >= 3:
            self._finish_polygon()
            return True
        return False

    # ------------------------------------------------------------ selecting
    def _size(self) -> tuple[int, int]:
        return tuple(int(v) for v in self.win.canvas.physical_size)

    def _view(self) -> gizmo.View:
        """The camera with intrinsics in logical pixels (the units of pointer events)."""
        canvas = self.win.canvas
        w, h = canvas.physical_size
        r = canvas.pixel_scale
        fx, fy, cx, cy = canvas.camera.focal(w, h)
        return gizmo.View(canvas.camera.viewmat(), (fx / r, fy / r, cx / r, cy / r))

    def select_screen(self, test, how: str) -> int:
        """Apply a screen-space test `test(xy, z, pixel_ratio) -> [N] bool` to the projected centres."""
        doc, canvas = self.win.doc, self.win.canvas
        t0 = time.perf_counter()
        w, h = canvas.physical_size
        xy, z = sel.project(doc.gaussians.means, canvas.camera.viewmat(), canvas.camera.focal(w, h))
        doc.state.apply(test(xy, z, canvas.pixel_scale), how)
        return self._report(t0)

    def select_volume(self, how: str) -> int:
        """Select with the panel's sphere or box."""
        doc, v = self.win.doc, self.volume
        if not doc.is_open:
            return 0
        t0 = time.perf_counter()
        means = doc.gaussians.means
        picked = (sel.in_sphere(means, v["centre"], v["radius"]) if v["shape"] == "sphere"
                  else sel.in_box(means, v["centre"], v["half"]))
        doc.state.apply(picked, how)
        return self._report(t0)

    def _report(self, t0: float) -> int:
        count = int(self.win.doc.state.selection.sum())
        ms = 1000 * (time.perf_counter() - t0)
        self.selected.emit(count, ms)
        return count

    def _polygon_click(self, pos) -> None:
        if len(self._path) >= 3 and np.hypot(pos[0] - self._path[0][0], pos[1] - self._path[0][1]) < CLOSE_PX:
            self._finish_polygon()
        else:
            self._path.append(pos)
        self.win.canvas.update()

    def _finish_polygon(self) -> None:
        path, self._path = list(self._path), []
        self.select_screen(lambda xy, z, r: sel.in_polygon(xy, z, np.asarray(path) * r, self._size()), self._how)
        self.win.canvas.update()

    # ------------------------------------------------------------ gizmo
    def pivot(self) -> np.ndarray | None:
        """The gizmo's pivot: the centre of the editable selection (None without one)."""
        doc = self.win.doc
        rows = doc.editable_rows() if doc.is_open else np.zeros(0, np.int64)
        if not len(rows):
            return None
        return doc.gaussians.means[rows].astype(np.float64).mean(0)

    def _begin_gizmo(self, ev: PointerEvent) -> bool:
        pivot = self.pivot()
        if pivot is None:
            return False
        handle = gizmo.hit(GIZMO_TOOLS[self.tool], self._view(), pivot, ev.pos)
        if handle is None:
            return False
        self._handle, self._drag_start, self._pivot = handle, ev.pos, pivot
        self._drag = self.win.doc.edits.begin_transform(self.win.doc.editable_rows())
        self._last_transform = None
        return True

    def _gizmo_move(self, ev: PointerEvent) -> None:
        q, s, t = gizmo.drag_transform(GIZMO_TOOLS[self.tool], self._handle, self._view(), self._pivot,
                                       self._drag_start, ev.pos)
        self._last_transform = (q, s, t)
        self._drag.preview(q, s, t)

    def _gizmo_end(self, ev: PointerEvent) -> None:
        drag, self._drag = self._drag, None
        q, s, t = gizmo.drag_transform(GIZMO_TOOLS[self.tool], self._handle, self._view(), self._pivot,
                                       self._drag_start, ev.pos)
        drag.commit(q, s, t)
        self.win.canvas.update()

    # ------------------------------------------------------------ overlay
    def overlay_lines(self) -> list[Polyline]:
        """What to draw over the splats now (logical pixels)."""
        lines: list[Polyline] = []
        if self.tool == "rect" and len(self._path) >= 2:
            (x0, y0), (x1, y1) = self._path[0], self._path[-1]
            lines.append(Polyline(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), SHAPE_COLOR, closed=True))
        elif self.tool == "lasso" and len(self._path) >= 2:
            lines.append(Polyline(np.asarray(self._path), SHAPE_COLOR, closed=True))
        elif self.tool == "polygon" and self._path:
            pts = self._path + ([self._hover] if self._hover is not None else [])
            lines.append(Polyline(np.asarray(pts), SHAPE_COLOR))
        elif self.tool == "brush":
            if len(self._path) >= 2:
                lines.append(Polyline(np.asarray(self._path), SHAPE_COLOR))
            if self._hover is not None:
                lines.append(Polyline(circle(self._hover, self.brush_radius), SHAPE_COLOR, closed=True))
        elif self.tool == "volume" and self.win.doc.is_open:
            lines += self._volume_lines()
        elif self.tool in GIZMO_TOOLS:
            pivot = self._pivot if self._drag is not None else self.pivot()
            if pivot is not None:
                lines += gizmo.overlay(GIZMO_TOOLS[self.tool], self._view(), pivot, self._handle)
        return lines

    def _volume_lines(self) -> list[Polyline]:
        view, v = self._view(), self.volume
        c = np.asarray(v["centre"], np.float64)
        if v["shape"] == "sphere":
            t = np.linspace(0, 2 * np.pi, 65)
            rings = []
            for i in range(3):
                u, w = gizmo.AXES[(i + 1) % 3], gizmo.AXES[(i + 2) % 3]
                rings.append(c + v["radius"] * (np.cos(t)[:, None] * u + np.sin(t)[:, None] * w))
            return [Polyline(view.project(r), VOLUME_COLOR) for r in rings if self._in_front(view, r)]
        h = np.asarray(v["half"], np.float64)
        corners = c + h * np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        if not self._in_front(view, corners):
            return []
        edges = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]
        return [Polyline(view.project(corners[[a, b]]), VOLUME_COLOR) for a, b in edges]

    @staticmethod
    def _in_front(view: gizmo.View, pts: np.ndarray) -> bool:
        return bool(np.all(pts @ view.viewmat[2, :3] + view.viewmat[2, 3] > 0.2))
