"""`coseg-studio PATH --benchmark`: viewport FPS, pick latency and startup time.

Rows printed (a table on stdout):
- orbit, full resolution: the camera turns 360 deg over the frames around the
  model; the draw order is re-sorted in the background as in the app (frames
  do not wait for it);
- orbit, reduced resolution: the same at 0.5x resolution, and with the
  viewport's adaptive moving frames (resolution >= 0.25x and the most
  important Gaussians only, aiming at 15 FPS) as the app draws them;
- at rest: the same view drawn again at full resolution, all Gaussians, no
  re-sort (the app draws such a frame once after the camera stops and then
  only on a change; this row measures that draw);
- at-rest repaint: the canvas's own paint at rest (`SplatCanvas.on_draw`
  with the camera still), i.e. the cached full frame blitted to the window
  (`SplatRenderer.draw_cached`), what any repaint costs while nothing
  changes; the row also gives the first, cache-filling paint (a full frame
  into the cache texture plus the blit) next to a direct full frame;
- edit latency: recolour, then delete one segment through the app's path
  (edit, changed rows to the GPU, the quick frame the viewport shows first),
  and the full-resolution frame that follows;
- selection and segment fixes: a lasso (a 64-vertex ellipse over the
  middle of the viewport) through the app's tool path (projection, mask,
  selection state, the viewport's colour update and its quick frame) on an
  empty selection (cleared, untimed, before each repeat), then
  assigning those splats to a segment (the edit, the changed rows' segment
  colours to the GPU, the quick frame), each as median milliseconds;
- gizmo drag: frames per second of a rotate drag on the selected segment
  and on the lasso's splats through the app's path (an unrecorded preview
  of the transform, the moved rows' covariances to the GPU, the adaptive
  moving frame), and the commit that makes it one undo step;
- naive baseline: fixed-size point sprites with a full `np.argsort` of the
  depths every frame (what the viewport is measured against);
- pick latency: median of clicks at pixels on the model;
- startup to the first rendered frame;
- where a full frame's time goes (`_frame_profile`): the vertex stage alone
  (every splat projected, none rasterised), with point setup (every splat
  shrunk to 2x2 px), the whole frame, each as median wall and process CPU
  time (llvmpipe's threads included), and the fragments rasterised per frame
  counted on the GPU (additive blending into a float target).
Every frame ends with glFinish, so a frame is counted when it is drawn.
"""

from __future__ import annotations

import math
import time

import numpy as np
from vispy import gloo

from app.picking import warm_up
from app.viewport.splats import FrameParams, for_glsl, load_shader

_COUNT_FRAG = "#version 130\nvoid main() { gl_FragColor = vec4(1.0, 0.0, 0.0, 0.0); }"
"""Adds 1 to red per rasterised fragment under the viewport's (ONE, ONE_MINUS_SRC_ALPHA) blending."""


def upsampled(loaded, n: int, seed: int = 0):
    """`loaded` with N Gaussians drawn from its own: a benchmark model with a trained scene's statistics.

    Each new Gaussian copies a random source Gaussian, moved by a normal
    offset of its own mean scale, with scales shrunk by sqrt(N0 / N) so the
    surfaces stay covered about as densely as in the source (a denser
    training run would also have smaller splats). Colours, opacities,
    orientations and segments are copied. With N <= N0 it is a random subset.
    """
    from app.loading import LoadedModel

    g0 = loaded.gaussians
    rng = np.random.default_rng(seed)
    if n <= len(g0):
        g = g0.subset(np.sort(rng.choice(len(g0), n, replace=False)))
    else:
        g = g0.subset(rng.integers(0, len(g0), n))
        sigma = np.exp(g.log_scales.mean(1, keepdims=True))
        g.means = (g.means + rng.normal(size=g.means.shape) * sigma).astype(np.float32)
        g.log_scales = (g.log_scales + 0.5 * np.log(len(g0) / n)).astype(np.float32)
    return LoadedModel(loaded.path, loaded.kind, g, scene=loaded.scene, classes=loaded.classes,
                       note=f"{loaded.path.name} resampled to {n:,} Gaussians")


def _orbit(win, frames: int, scale: float | str | None, app) -> float:
    """Orbit FPS; scale None = full resolution, a number = fixed, "adaptive" = the app's rule."""
    canvas = win.canvas
    step = 2 * math.pi / frames
    t0 = last = time.perf_counter()
    for _ in range(frames):
        canvas.camera.orbit(step, 0.0)
        canvas.request_sort()
        app.processEvents()
        _draw(canvas, canvas.moving_scale if scale == "adaptive" else scale, lod=scale == "adaptive")
        now = time.perf_counter()
        if scale == "adaptive":
            canvas.adapt_scale(now - last)
        last = now
    return frames / (time.perf_counter() - t0)


def _draw(canvas, scale: float | None, lod: bool = False) -> None:
    canvas.set_current()
    frame = canvas.frame_params()
    if scale is None:
        canvas.renderer.draw(frame)
    else:
        canvas.renderer.draw_scaled(frame, scale, frame.size, lod)
    gloo.gl.glFinish()


def _rest_repaint(canvas, frames: int, direct_ms: float) -> str:
    """The app's at-rest paint `frames` times after one cache-filling paint: FPS, CPU, first paint."""
    canvas.set_current()
    canvas.renderer.invalidate_cache()

    def paint() -> None:
        canvas._moved_since_draw = False
        canvas.on_draw(None)
        gloo.gl.glFinish()

    t0 = time.perf_counter()
    paint()
    first_ms = 1000 * (time.perf_counter() - t0)
    filled = not canvas.last_frame_cached
    t0, c0 = time.perf_counter(), time.process_time()
    hits = 0
    for _ in range(frames):
        paint()
        hits += canvas.last_frame_cached
    fps = frames / (time.perf_counter() - t0)
    cpu_ms = 1000 * (time.process_time() - c0) / frames
    note = "" if filled and hits == frames else f"; {hits} of {frames} cache hits, first paint filled: {filled}"
    return (f"{fps:.1f} (CPU {cpu_ms:.1f} ms per frame; first, cache-filling paint {first_ms:.0f} ms "
            f"vs {direct_ms:.0f} ms per direct full frame{note})")


def _edit_latency(win, app) -> list[tuple[str, str]]:
    """Milliseconds from an edit to its first (quick) frame, and to the full frame after it."""
    canvas, doc = win.canvas, win.doc
    rows = []
    for name, edit in (("recolour", lambda: win.editor.recolor([1.0, 0.2, 0.2])), ("delete", win.editor.delete)):
        sid = doc.segment_ids()[len(doc.segment_ids()) // 2]
        doc.select([sid])
        count = len(doc.edits.rows_of(sid))
        t0 = time.perf_counter()
        edit()
        uploaded = time.perf_counter()
        _draw(canvas, canvas.moving_scale, lod=True)
        quick = time.perf_counter()
        _draw(canvas, None)
        full = time.perf_counter()
        rows.append((f"{name} one segment ({count:,} rows): "
                     "edit+upload / quick frame / full frame",
                     f"{1000 * (uploaded - t0):.0f} / {1000 * (quick - t0):.0f} / {1000 * (full - t0):.0f} ms"))
        app.processEvents()
    return rows


def _median_ms(fn, repeats: int = 5, after=None) -> str:
    """Median wall and process-CPU milliseconds of `fn` (then `after`, untimed) over `repeats` runs."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if after is not None:
            after()
    return f"{1000 * np.median(wall):.0f} ms (CPU {1000 * np.median(cpu):.0f} ms)"


def _lasso_and_assign(win, app) -> list[tuple[str, str]]:
    """Median ms of a lasso selection and of assigning its splats to a segment, each with its quick frame."""
    from coseg.edit import selection as sel

    canvas, doc = win.canvas, win.doc
    w, h = canvas.size
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    lasso = np.stack([w / 2 + 0.3 * w * np.cos(t), h / 2 + 0.3 * h * np.sin(t)], 1)
    win.tools.set_tool("lasso")

    def select() -> None:
        win.tools.select_screen(lambda xy, z, r: sel.in_polygon(xy, z, lasso * r, win.tools._size()), "replace")
        _draw(canvas, canvas.moving_scale, lod=True)

    # Each lasso starts from an empty selection; clearing it (another user action) is not timed.
    doc.select_none()
    lasso_ms = _median_ms(select, after=doc.select_none)
    select()
    count = int(doc.state.selection.sum())
    target = doc.segment_ids()[0]

    def assign() -> None:
        win.editor.assign(target)
        _draw(canvas, canvas.moving_scale, lod=True)

    assign_ms = _median_ms(assign, after=doc.undo)
    app.processEvents()
    return [(f"lasso select, 64 vertices ({count:,} splats): select + colour update + quick frame",
             lasso_ms),
            (f"assign {count:,} splats to segment {target}: edit + colour upload + quick frame",
             assign_ms)]


def _gizmo_drag(win, app, frames: int) -> list[tuple[str, str]]:
    """Frame rate of a rotate-gizmo drag through the app's path, on one segment and on the lasso's splats."""
    from coseg.edit.ops import axis_angle_quat

    canvas, doc = win.canvas, win.doc
    rows_out = []
    lassoed = doc.state.selection.copy()
    sid = doc.segment_ids()[len(doc.segment_ids()) // 2]
    for label, pick in ((f"segment {sid}", lambda: doc.select([sid])), ("the lasso's splats",
                                                                       lambda: doc.state.set_selection(lassoed))):
        pick()
        rows = doc.editable_rows()
        drag = doc.edits.begin_transform(rows)
        t0, c0 = time.perf_counter(), time.process_time()
        for k in range(frames):
            drag.preview(axis_angle_quat((0, 0, 1), 30.0 * (k + 1) / frames))
            t1 = time.perf_counter()
            _draw(canvas, canvas.moving_scale, lod=True)
            canvas.adapt_scale(time.perf_counter() - t1)
        fps = frames / (time.perf_counter() - t0)
        cpu_ms = 1000 * (time.process_time() - c0) / frames
        t0 = time.perf_counter()
        drag.commit(axis_angle_quat((0, 0, 1), 30.0))
        commit_ms = 1000 * (time.perf_counter() - t0)
        doc.undo()
        app.processEvents()
        rows_out.append((f"gizmo rotate drag on {label} ({len(rows):,} splats): FPS / commit",
                         f"{fps:.1f} (CPU {cpu_ms:.0f} ms per frame) / {commit_ms:.0f} ms"))
    return rows_out


def _naive(win, frames: int) -> float:
    canvas = win.canvas
    canvas.set_current()
    g = win.doc.gaussians
    prog = gloo.Program(load_shader("naive.vert"), load_shader("naive.frag"))
    prog["a_mean"] = np.ascontiguousarray(g.means, np.float32)
    prog["a_color"] = np.ascontiguousarray(np.concatenate([g.colors, g.opacities[:, None]], 1), np.float32)
    index = gloo.IndexBuffer(np.arange(len(g), dtype=np.uint32))
    step = 2 * math.pi / frames
    t0 = time.perf_counter()
    for _ in range(frames):
        canvas.camera.orbit(step, 0.0)
        view = canvas.camera.viewmat()
        w, h = canvas.physical_size
        fx, fy, cx, cy = canvas.camera.focal(w, h)
        depth = g.means @ view[2, :3] + view[2, 3]
        index.set_data(np.argsort(-depth).astype(np.uint32))
        gloo.set_viewport(0, 0, w, h)
        gloo.set_state(blend=True, depth_test=False)
        gloo.set_blend_func("one", "one_minus_src_alpha")
        gloo.clear(color=(0, 0, 0, 1))
        prog["u_view"] = view.astype(np.float32).T
        prog["u_focal"] = (fx, fy)
        prog["u_principal"] = (cx, cy)
        prog["u_size"] = (float(w), float(h))
        prog.draw("points", index)
        gloo.gl.glFinish()
    return frames / (time.perf_counter() - t0)


def _pick_latency(win, clicks: int = 10) -> float:
    canvas = win.canvas
    w, h = canvas.physical_size
    rng = np.random.default_rng(0)
    times = []
    for _ in range(clicks):
        x, y = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
        t0 = time.perf_counter()
        win.picker.pick(canvas.camera.viewmat(), canvas.camera.focal(w, h), (w, h), x, y)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def _timed(draw, repeats: int) -> str:
    """Median wall / process CPU milliseconds of `draw` followed by glFinish."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        draw()
        gloo.gl.glFinish()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return f"{1000 * np.median(wall):.0f} / {1000 * np.median(cpu):.0f} ms"


def _frame_profile(win, repeats: int = 5) -> list[tuple[str, str]]:
    """Rows splitting one full frame into vertex stage, point setup and fill."""
    canvas = win.canvas
    canvas.set_current()
    r = canvas.renderer
    frame = canvas.frame_params()
    w, h = frame.size
    # A 4x4 viewport: every sprite is projected and then clipped away, none is rasterised.
    clipped = FrameParams(frame.viewmat, frame.focal, (4, 4), frame.mode)
    rows = [("full frame, vertex stage only: wall / CPU", _timed(lambda: r.draw(clipped), repeats))]
    cap = r.max_radius
    r.max_radius = 1.0
    try:
        rows.append(("full frame, splats shrunk to 2x2 px: wall / CPU", _timed(lambda: r.draw(frame), repeats)))
    finally:
        r.max_radius = cap
    rows.append(("full frame: wall / CPU", _timed(lambda: r.draw(frame), repeats)))
    counter = gloo.Program(load_shader("splat.vert", r.glsl), for_glsl(_COUNT_FRAG, r.glsl))
    target = gloo.Texture2D((h, w, 4), format="rgba", internalformat="rgba32f")
    with gloo.FrameBuffer(color=target):
        r.draw(frame, program=counter)
        counts = gloo.read_pixels((0, 0, w, h), alpha=True, out_type=np.float32)[..., 0]
    rows.append(("fragments rasterised per full frame",
                 f"{counts.sum():,.0f} ({counts.sum() / (w * h):.1f} per pixel)"))
    return rows


def run_benchmark(win, app, frames: int, startup_s: float) -> str:
    """Run every row on the opened model; returns the table."""
    warm_up()  # load the compiled pick kernels before timing picks
    # Only the benchmark's own draws: no paint events from sort results or the refine timer.
    win.canvas.native.setUpdatesEnabled(False)
    rows = [("Gaussians", f"{len(win.doc.gaussians):,}"),
            ("viewport", "%dx%d" % tuple(win.canvas.physical_size)),
            ("startup to first frame", f"{startup_s:.2f} s")]
    rows.append(("orbit FPS (full res, re-sorting)", f"{_orbit(win, frames, None, app):.1f}"))
    rows.append(("orbit FPS (0.5x res while moving, all Gaussians)", f"{_orbit(win, frames, 0.5, app):.1f}"))
    fps = _orbit(win, frames, "adaptive", app)
    rows.append((f"orbit FPS (adaptive, REDUCED moving frames: ended at {win.canvas.moving_scale:.2f}x res, "
                 f"{win.canvas.renderer.lod_count:,} of {win.canvas.renderer.count:,} Gaussians)", f"{fps:.1f}"))
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(frames):
        _draw(win.canvas, None)
    rest_fps = frames / (time.perf_counter() - t0)
    rows.append(("at-rest FPS (no re-sort; full res, all Gaussians, every frame drawn)",
                 f"{rest_fps:.1f} (CPU {1000 * (time.process_time() - c0) / frames:.0f} ms per frame)"))
    rows.append(("at-rest repaint FPS (the app's paint at rest: cached full frame blitted)",
                 _rest_repaint(win.canvas, frames, 1000 / rest_fps)))
    rows.append(("naive point sprites + argsort FPS", f"{_naive(win, frames):.1f}"))
    rows.append(("pick latency (median of 10)", f"{_pick_latency(win):.0f} ms"))
    rows.extend(_frame_profile(win))
    rows.extend(_lasso_and_assign(win, app))
    rows.extend(_gizmo_drag(win, app, max(10, frames // 4)))
    rows.extend(_edit_latency(win, app))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
