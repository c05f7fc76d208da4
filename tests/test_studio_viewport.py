"""The studio viewport against the engine's CPU render: colours where they belong, picking."""

from pathlib import Path

import numpy as np
import pytest
import torch

from coseg.gaussians import Gaussians, logit
from coseg.scene import Camera

pytestmark = pytest.mark.gui
W, H = 160, 120


def _scene() -> Gaussians:
    """Five big anisotropic Gaussians of segments 3, 5, 7, 11, 13 at different depths."""
    means = np.array([[-0.6, -0.3, 0.2], [0.5, -0.2, 0.0], [0.0, 0.35, -0.3], [-0.2, 0.0, 0.6], [0.6, 0.4, 0.4]],
                     np.float32)
    g = Gaussians.from_points(means, np.full((5, 3), 0.5), scale=0.2, opacity=0.9)
    g.log_scales = np.log(np.array([[0.25, 0.12, 0.2], [0.15, 0.3, 0.1], [0.3, 0.15, 0.15],
                                    [0.1, 0.1, 0.1], [0.2, 0.1, 0.25]], np.float32))
    rng = np.random.default_rng(1)
    g.quats = rng.normal(size=(5, 4)).astype(np.float32)
    g.opacity_logits = logit(np.array([0.95, 0.9, 0.97, 0.8, 0.9]))
    g.segments = np.array([3, 5, 7, 11, 13], np.int32)
    return g


def _camera() -> Camera:
    w2c = np.eye(4)
    w2c[2, 3] = 3.0
    return Camera("view", Path("view.png"), W, H, fx=150.0, fy=150.0, cx=W / 2 + 3.0, cy=H / 2 - 2.0,
                  world_to_camera=w2c)


def _cpu_render(g, colors, viewmat, K, w, h):
    from coseg.render import rasterization

    img, alpha, _ = rasterization(torch.from_numpy(g.means), torch.from_numpy(g.quats),
                                  torch.from_numpy(g.scales), torch.from_numpy(g.opacities),
                                  torch.as_tensor(colors, dtype=torch.float32),
                                  torch.as_tensor(viewmat, dtype=torch.float32),
                                  torch.as_tensor(K, dtype=torch.float32), w, h, backend="cpu")
    return img.numpy(), alpha.numpy()[..., 0]


def _open(win, g):
    from app.loading import LoadedModel

    win.set_loaded(LoadedModel(Path("mem.ply"), "ply", g))


def test_segmentation_screenshot_matches_cpu_render(make_main_window):
    from app.palette import segment_colors
    from coseg.sort import depth_order

    win = make_main_window()
    g = _scene()
    _open(win, g)
    win.set_mode("segmentation")
    cam = _camera()
    win.canvas.camera.snap_to(cam)
    win.canvas.set_current()
    win.canvas.renderer.set_order(depth_order(g.means, cam.world_to_camera))
    gpu = win.canvas.render_image((W, H)).astype(np.float32) / 255
    cpu, alpha = _cpu_render(g, segment_colors(g.segments), cam.world_to_camera, cam.K, W, H)
    assert alpha.max() > 0.9 and (alpha < 0.01).any()
    err = np.abs(gpu - cpu).max(axis=2)
    assert np.mean(err > 0.08) < 0.02, f"{np.mean(err > 0.08):.3f} of pixels differ"
    assert err.mean() < 0.01
    # Each segment's own hue shows where the CPU render gives it most weight
    # (the brightness is the weight: premultiplied over a black background).
    weights, _ = _cpu_render(g, np.eye(5, dtype=np.float32), cam.world_to_camera, cam.K, W, H)
    for k in range(5):
        strong = weights[..., k] > 0.5
        assert strong.sum() > 20
        ref = segment_colors(g.segments[k:k + 1])[0]
        cos = gpu[strong] @ ref / (np.linalg.norm(gpu[strong], axis=1) * np.linalg.norm(ref) + 1e-9)
        assert np.median(cos) > 0.97


def test_rgb_and_depth_screenshots_are_not_blank(make_main_window):
    win = make_main_window()
    _open(win, _scene())
    for mode in ("rgb", "depth", "overlay"):
        win.set_mode(mode)
        img = win.canvas.render_image((W, H))
        assert img.shape == (H, W, 3)
        assert img.std() > 5 and (img.max(axis=2) > 40).mean() > 0.1, mode


def test_click_selects_the_segment_the_cpu_render_shows(make_main_window, qtbot):
    from PySide6.QtCore import QPoint, Qt

    win = make_main_window()
    g = _scene()
    _open(win, g)
    canvas = win.canvas
    w, h = canvas.physical_size
    fx, fy, cx, cy = canvas.camera.focal(w, h)
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    weights, _ = _cpu_render(g, np.eye(5, dtype=np.float32), canvas.camera.viewmat(), K, w, h)
    ratio = canvas.pixel_scale
    picked = set()
    for k in range(5):
        ys, xs = np.nonzero((weights.argmax(axis=2) == k) & (weights.max(axis=2) > 0.5))
        if not len(xs):
            continue
        i = len(xs) // 2
        qtbot.mouseClick(canvas.native, Qt.LeftButton, pos=QPoint(int(xs[i] / ratio), int(ys[i] / ratio)))
        assert win.doc.selection == {int(g.segments[k])}
        picked.add(k)
    assert len(picked) >= 3
    # Shift adds, Ctrl toggles, background clears.
    win.doc.select([3])
    ys, xs = np.nonzero((weights.argmax(axis=2) == 1) & (weights.max(axis=2) > 0.5))
    qtbot.mouseClick(canvas.native, Qt.LeftButton, Qt.ShiftModifier, QPoint(int(xs[0] / ratio), int(ys[0] / ratio)))
    assert win.doc.selection == {3, 5}
    qtbot.mouseClick(canvas.native, Qt.LeftButton, Qt.ControlModifier, QPoint(int(xs[0] / ratio), int(ys[0] / ratio)))
    assert win.doc.selection == {3}
    ys, xs = np.nonzero(weights.max(axis=2) < 0.01)
    # Not pixel (0, 0): QTest clicks the widget centre for a null QPoint.
    qtbot.mouseClick(canvas.native, Qt.LeftButton, pos=QPoint(int(xs[-1] / ratio), int(ys[-1] / ratio)))
    assert win.doc.selection == set()


def test_pixel_weights_and_candidates_match_the_cpu_render():
    from coseg.sort import pick_candidates, pixel_weights

    rng = np.random.default_rng(4)
    n = 200
    g = Gaussians.from_points(rng.uniform(-1.5, 1.5, (n, 3)), rng.uniform(size=(n, 3)), opacity=0.8)
    g.log_scales = rng.uniform(np.log(0.01), np.log(0.3), (n, 3)).astype(np.float32)
    g.quats = rng.normal(size=(n, 4)).astype(np.float32)
    g.opacity_logits = rng.uniform(-2, 4, n).astype(np.float32)
    cam = _camera()
    focal = (cam.fx, cam.fy, cam.cx, cam.cy)
    full, _ = _cpu_render(g, np.eye(n, dtype=np.float32), cam.world_to_camera, cam.K, W, H)
    for x, y in [(80.2, 60.7), (10.5, 100.1), (150.9, 5.0), (0.1, 0.2), (47.5, 33.3)]:
        expected = full[int(y), int(x)]
        np.testing.assert_allclose(pixel_weights(g, cam.world_to_camera, focal, (W, H), x, y), expected,
                                   atol=2e-5)
        rows = pick_candidates(g.means, g.scales.max(1), cam.world_to_camera, focal, x, y)
        assert len(rows) < n
        assert set(np.flatnonzero(expected > 0)) <= set(rows.tolist())


def test_low_opacity_splats_keep_every_pixel_of_the_cpu_render(make_main_window):
    """The opacity-aware sprite radius shrinks faint splats without losing pixels above 1/255."""
    from coseg.sort import depth_order

    win = make_main_window()
    g = _scene()
    g.opacity_logits = logit(np.array([0.02, 0.05, 0.1, 0.2, 0.5]))
    _open(win, g)
    cam = _camera()
    win.canvas.camera.snap_to(cam)
    win.canvas.set_current()
    win.canvas.renderer.set_order(depth_order(g.means, cam.world_to_camera))
    white = np.ones((5, 3), np.float32)
    g.sh_dc[:] = (1.0 - 0.5) / 0.28209479177387814
    win.canvas.renderer.set_gaussians(g, white)
    gpu = win.canvas.render_image((W, H)).astype(np.float32) / 255
    cpu, alpha = _cpu_render(g, white, cam.world_to_camera, cam.K, W, H)
    assert (alpha > 0.02).mean() > 0.1
    err = np.abs(gpu - cpu).max(axis=2)
    assert err.max() < 4 / 255 and err.mean() < 1 / 255


def test_the_viewport_draws_once_at_rest(make_main_window, qtbot):
    win = make_main_window()
    _open(win, _scene())
    frames = []
    win.canvas.signals.frame_drawn.connect(lambda: frames.append(1))
    # The first frame, the sort result and the at-rest refinement come first (later on a loaded
    # machine); then a whole 500 ms must pass without a frame.
    for _ in range(10):
        frames.clear()
        qtbot.wait(500)
        if not frames:
            break
    assert not frames
    win.doc.select([5])
    win.editor.recolor([1.0, 0.0, 0.0])
    qtbot.waitUntil(lambda: len(frames) >= 1, timeout=3000)


def test_benchmark_fragment_count_is_the_sprite_area(make_main_window):
    """The benchmark's fragment counter sees exactly one sprite square of side 6 sqrt(lambda)."""
    from app.benchmark import _frame_profile

    win = make_main_window()
    g = Gaussians.from_points(np.zeros((1, 3), np.float32), np.full((1, 3), 0.5), scale=0.05, opacity=0.999)
    _open(win, g)
    win.canvas.camera.snap_to(_camera())
    frame = win.canvas.frame_params()
    fx, fy, cx, cy = frame.focal
    assert 30 < cx < frame.size[0] - 30 and 30 < cy < frame.size[1] - 30
    # On the optical axis the projected covariance is isotropic: (f s / z)^2 + 0.3 on the diagonal.
    side = 6 * np.sqrt(max(fx, fy) ** 2 * 0.05 ** 2 / 9.0 + 0.3)
    rows = dict(_frame_profile(win, repeats=1))
    count = float(rows["fragments rasterised per full frame"].split()[0].replace(",", ""))
    assert count == pytest.approx(side ** 2, abs=2 * side + 1)  # pixel centres in the square
    for key in ("full frame, vertex stage only: wall / CPU", "full frame: wall / CPU"):
        assert rows[key].endswith(" ms")


def test_sprite_of_a_diagonal_needle_is_its_ellipse_bounding_square(make_main_window):
    """A splat elongated along the image diagonal gets the square of its ellipse's bounding box
    (half side 3 sqrt(max(Sigma'xx, Sigma'yy)), about half the area of the 3 sqrt(lambda_max) square)
    and still draws every pixel the CPU render has."""
    from app.benchmark import _frame_profile
    from coseg.sort import depth_order

    g = Gaussians.from_points(np.zeros((1, 3), np.float32), np.full((1, 3), 0.5), scale=0.01, opacity=0.9)
    g.log_scales = np.log(np.array([[0.2, 0.01, 0.01]], np.float32))
    g.quats = np.array([[np.cos(np.pi / 8), 0.0, 0.0, np.sin(np.pi / 8)]], np.float32)  # 45 deg about z
    g.sh_dc[:] = (1.0 - 0.5) / 0.28209479177387814
    win = make_main_window()
    _open(win, g)
    cam = _camera()
    win.canvas.camera.snap_to(cam)
    win.canvas.set_current()
    win.canvas.renderer.set_order(depth_order(g.means, cam.world_to_camera))
    # On the optical axis at depth 3 the 2D covariance is (f / 3)^2 Sigma_xy + 0.3 I.
    fx, fy = win.canvas.frame_params().focal[:2]
    assert fx == fy
    f2 = (fx / 3.0) ** 2
    diag = f2 * (0.2 ** 2 + 0.01 ** 2) / 2 + 0.3
    lam_max = f2 * 0.2 ** 2 + 0.3
    count = float(dict(_frame_profile(win, repeats=1))["fragments rasterised per full frame"].split()[0].replace(",", ""))
    side = 6 * np.sqrt(diag)
    assert count == pytest.approx(side ** 2, abs=2 * side + 1)
    assert count < 0.6 * 36 * lam_max
    white = np.ones((1, 3), np.float32)
    gpu = win.canvas.render_image((W, H)).astype(np.float32) / 255
    cpu, alpha = _cpu_render(g, white, cam.world_to_camera, cam.K, W, H)
    assert (alpha > 0.05).sum() > 100
    err = np.abs(gpu - cpu).max(axis=2)
    assert err.max() < 4 / 255 and err.mean() < 1 / 255


def test_glsl_120_fallback_draws_the_same_image(make_main_window):
    """Contexts without GLSL 1.30 get the splat shaders with plain varyings and the same picture."""
    from vispy import gloo

    from app.viewport.splats import for_glsl, glsl_version, load_shader
    from coseg.sort import depth_order

    old = load_shader("splat.frag", (1, 20))
    assert old.startswith("#version 120") and "flat" not in old and "varying vec3 v_conic;" in old
    assert for_glsl("void main() {}", (1, 20)) == "void main() {}"
    win = make_main_window()
    g = _scene()
    _open(win, g)
    cam = _camera()
    win.canvas.camera.snap_to(cam)
    win.canvas.set_current()
    r = win.canvas.renderer
    assert glsl_version() == r.glsl >= (1, 30)  # Mesa llvmpipe offers 4.50
    r.set_order(depth_order(g.means, cam.world_to_camera))
    frame = win.canvas.frame_params((W, H))
    legacy = gloo.Program(load_shader("splat.vert", (1, 20)), old)
    images = []
    for program in (None, legacy):
        with gloo.FrameBuffer(color=gloo.RenderBuffer((H, W, 4))):
            r.draw(frame, program=program)
            images.append(gloo.read_pixels((0, 0, W, H), alpha=False).astype(int))
    assert images[0].std() > 5
    assert np.abs(images[0] - images[1]).max() <= 1


# ------------------------------------------------------------ the at-rest frame cache
_ATTACHMENT_SIZES = (0x8212, 0x8213, 0x8214, 0x8215)  # GL_FRAMEBUFFER_ATTACHMENT_{RED,GREEN,BLUE,ALPHA}_SIZE


def _rest_canvas(make_main_window, qtbot):
    """A window on `_scene()` seen through `_camera()`, its sort done and its paint events off.

    The tests below paint by calling the canvas's own at-rest path, so
    nothing else (a paint event, a sort result, the refine timer) may paint
    or change the buffers between their steps.
    """
    from coseg.sort import depth_order

    win = make_main_window()
    g = _scene()
    _open(win, g)
    qtbot.wait(600)  # the first frame, the sort result and the at-rest refinement
    canvas = win.canvas
    canvas.native.setUpdatesEnabled(False)
    canvas.camera.snap_to(_camera())
    canvas.set_current()
    canvas.renderer.set_order(depth_order(g.means, canvas.camera.viewmat()))
    return win, canvas


def _paint(canvas) -> tuple[bool, np.ndarray]:
    """One at-rest paint through `SplatCanvas.on_draw`: (cache hit?, [H, W, 4] window pixels).

    The window is cleared to magenta first, so a paint that draws nothing
    cannot pass for the previous picture.
    """
    from vispy import gloo

    canvas.set_current()
    w, h = canvas.physical_size
    gloo.set_viewport(0, 0, w, h)
    gloo.set_state(blend=False)
    gloo.clear(color=(1.0, 0.0, 1.0, 1.0))
    canvas._moved_since_draw = False
    canvas.on_draw(None)
    return canvas.last_frame_cached, gloo.read_pixels((0, 0, w, h), alpha=True)


def _direct(canvas) -> np.ndarray:
    """[H, W, 4] window pixels of a direct `SplatRenderer.draw` of the canvas's current frame."""
    from vispy import gloo

    canvas.set_current()
    frame = canvas.frame_params()
    canvas.renderer.draw(frame)
    return gloo.read_pixels((0, 0, *frame.size), alpha=True)


def test_cached_at_rest_frame_is_the_direct_frame_pixel_for_pixel(make_main_window, qtbot):
    """The at-rest paint (full frame into an RGBA8 texture, blitted) shows exactly what a direct draw shows."""
    from vispy import gloo

    win, canvas = _rest_canvas(make_main_window, qtbot)
    # The window's framebuffer (QOpenGLWidget's FBO) is 8 bits per channel like the cache texture.
    gl = gloo.gl
    gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, canvas.native.defaultFramebufferObject())
    bits = [gl.glGetFramebufferAttachmentParameter(gl.GL_FRAMEBUFFER, gl.GL_COLOR_ATTACHMENT0, p)
            for p in _ATTACHMENT_SIZES]
    assert bits == [8, 8, 8, 8]
    win.doc.select([5, 11])
    for mode, highlight in [("rgb", False), ("segmentation", False), ("overlay", False), ("depth", False),
                            ("segmentation", True)]:
        win.set_mode(mode)
        canvas.highlight = highlight
        direct = _direct(canvas)
        assert direct[..., :3].std() > 5, mode
        hit, cached = _paint(canvas)
        assert not hit, mode
        np.testing.assert_array_equal(cached, direct, err_msg=mode)
        hit, again = _paint(canvas)
        assert hit, mode
        np.testing.assert_array_equal(again, direct, err_msg=mode)


def test_every_change_to_the_picture_misses_the_at_rest_cache(make_main_window, qtbot):
    """Nothing changed: the next paint only blits. Each change below: the next paint draws again and shows it."""
    from PySide6.QtWidgets import QApplication

    win, canvas = _rest_canvas(make_main_window, qtbot)
    r = canvas.renderer
    shown = {}

    def check(name: str, changed: bool = True) -> np.ndarray:
        before = shown.get("last")
        hit, img = _paint(canvas)
        assert not hit, f"{name}: the paint after the change was a cache hit"
        np.testing.assert_array_equal(img, _direct(canvas), err_msg=name)
        if changed:
            assert before is None or before.shape != img.shape or (before != img).any(), f"{name}: same picture"
        hit, again = _paint(canvas)
        assert hit, f"{name}: the second paint with nothing changed drew again"
        np.testing.assert_array_equal(again, img, err_msg=name)
        shown["last"] = img
        return img

    first = check("first paint")
    assert first[..., :3].std() > 5
    # Nothing changed since: a hit, whatever else asked for the repaint.
    canvas.update()
    assert _paint(canvas)[0]

    n = r.count
    state = win.doc.state_array()
    r.set_state(np.full(n, 2.0, np.float32))  # every Gaussian hidden
    hidden = check("set_state: all hidden")
    assert (hidden[..., :3] == 0).all()  # the black background only
    r.set_state(state)
    np.testing.assert_array_equal(check("set_state: shown again"), first)

    order = r._order.copy()
    r.set_order(order[::-1].copy())  # front to back: the overlaps blend the other way round
    check("set_order: reversed")
    r.set_order(order)
    np.testing.assert_array_equal(check("set_order: back"), first)

    g = win.doc.gaussians.subset(np.arange(n))
    g.sh_dc[1:3] = (np.array([0.1, 0.9, 0.1]) - 0.5) / 0.28209479177387814
    r.update_rows(g, np.array([1, 2]))  # a recolour: no geometry
    check("update_rows: recolour")
    g.means[3] += np.array([0.15, 0.0, 0.0], np.float32)
    assert r.update_rows(g, np.array([3])) == 1  # a move: geometry uploaded
    check("update_rows: move")

    win.set_mode("segmentation")
    check("mode: segmentation")
    r.set_alt_colors(np.roll(win.doc.segment_colors(), 1, axis=0))
    check("set_alt_colors")
    win.doc.select([5])  # the app's path: selection_changed -> set_state
    canvas.highlight = True
    check("selection and highlight")
    canvas.highlight = False
    check("highlight off")

    win.set_mode("depth")
    check("mode: depth")
    near, far = r.depth_range
    canvas.set_depth_range(near, 0.5 * (near + far))
    check("depth range (depth mode)")
    win.set_mode("rgb")
    check("mode: rgb")

    canvas.camera.orbit(0.2, 0.0)
    check("camera: orbit")
    canvas.camera.zoom(0.8)
    check("camera: zoom")

    win.editor.recolor([1.0, 0.0, 0.0])  # the app's edit path: rows_changed -> update_rows, set_state
    check("editor: recolour the selection")

    size = tuple(canvas.physical_size)
    win.resize(win.width() + 40, win.height() + 20)  # the window, whose layout sizes the viewport
    QApplication.processEvents()
    assert tuple(canvas.physical_size) != size
    check("window resize")

    other = _scene()
    other.means[:, 1] += 0.2
    canvas.set_current()
    r.set_gaussians(other, np.ones((len(other), 3), np.float32))  # on its own: no set_state after it
    check("set_gaussians alone")
    _open(win, _scene().subset(np.array([0, 2, 4])))  # the app's path: set_model -> set_gaussians, set_state
    canvas.set_current()
    check("the app opens another model")
