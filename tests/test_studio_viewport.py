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
    qtbot.wait(600)  # the first frame, the sort result and the at-rest refinement
    frames = []
    win.canvas.signals.frame_drawn.connect(lambda: frames.append(1))
    qtbot.wait(500)
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
