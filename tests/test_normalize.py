"""The working frame (coseg.normalize): similarity algebra, renders that do not change with the
frame, the canonical frame of scaled and moved captures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coseg.edit.ops import rotation_matrix_xyz
from coseg.gaussians import Gaussians
from coseg.normalize import (Similarity, align_similarity, canonical_frame, recorded_frame, run_frame,
                             to_input_frame, working_inputs)
from coseg.scene import Camera, Scene
from coseg.synth.cameras import look_at


def _random_gaussians(n: int, rng: np.random.Generator, sh_degree: int = 3) -> Gaussians:
    k = (sh_degree + 1) ** 2 - 1
    return Gaussians(
        means=rng.uniform(-0.6, 0.6, (n, 3)).astype(np.float32),
        quats=rng.normal(size=(n, 4)).astype(np.float32),
        log_scales=np.log(rng.uniform(0.02, 0.08, (n, 3))).astype(np.float32),
        opacity_logits=rng.normal(0.5, 1.0, n).astype(np.float32),
        sh_dc=rng.normal(0, 0.8, (n, 3)).astype(np.float32),
        sh_rest=rng.normal(0, 0.15, (n, k, 3)).astype(np.float32),
    )


def _ring_cameras(n: int = 8, radius: float = 2.5, size=(64, 48)) -> list[Camera]:
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n
        eye = np.array([radius * np.cos(a), radius * np.sin(a), 0.8])
        c2w = look_at(eye, np.zeros(3))
        cams.append(Camera(f"v{i}", image_path=None, width=size[0], height=size[1], fx=60.0, fy=60.0,
                           cx=size[0] / 2, cy=size[1] / 2, world_to_camera=np.linalg.inv(c2w)))
    return cams


def _some_similarity(scale: float = 100.0) -> Similarity:
    return Similarity(scale, rotation_matrix_xyz((20.0, -35.0, 110.0)), np.array([350.0, -1200.0, 42.0]))


def _render(g: Gaussians, cam: Camera) -> torch.Tensor:
    from coseg.render import camera_tensors, gaussian_tensors, rasterization

    t = gaussian_tensors(g)
    viewmat, K = camera_tensors(cam)
    img, _, _ = rasterization(t["means"], t["quats"], t["scales"], t["opacities"], t["sh"], viewmat, K,
                              cam.width, cam.height, sh_degree=g.sh_degree, backend="cpu")
    return img


def test_similarity_inverse_compose_and_dict_round_trip():
    s = _some_similarity()
    x = np.random.default_rng(0).normal(size=(20, 3))
    np.testing.assert_allclose(s.inverse().apply_points(s.apply_points(x)), x, atol=1e-9)
    np.testing.assert_allclose(s.compose(s.inverse()).matrix, np.eye(4), atol=1e-9)
    back = Similarity.from_dict(s.to_dict())
    np.testing.assert_allclose(back.matrix, s.matrix)
    assert Similarity.identity().is_identity and not s.is_identity


def test_align_similarity_recovers_a_known_similarity():
    s = _some_similarity(0.37)
    x = np.random.default_rng(1).normal(size=(30, 3))
    est = align_similarity(x, s.apply_points(x))
    np.testing.assert_allclose(est.matrix, s.matrix, atol=1e-8)


def test_renders_do_not_change_when_gaussians_and_camera_move_together():
    """Positions, log-scales, quaternions and SH bands all follow the similarity (degree-3 SH)."""
    rng = np.random.default_rng(2)
    g = _random_gaussians(300, rng)
    cam = _ring_cameras()[1]
    s = Similarity(3.0, rotation_matrix_xyz((30.0, 10.0, -70.0)), np.array([1.0, -2.0, 0.5]))
    a = _render(g, cam)
    b = _render(s.apply_gaussians(g), s.apply_camera(cam))
    torch.testing.assert_close(b, a, atol=2e-4, rtol=1e-3)
    assert float(a.std()) > 0.05  # the view is not empty


def test_gaussians_round_trip_to_the_input_frame():
    g = _random_gaussians(50, np.random.default_rng(3))
    s = _some_similarity()
    back = s.inverse().apply_gaussians(s.apply_gaussians(g))
    np.testing.assert_allclose(back.means, g.means, atol=1e-3)  # float32 at coordinates ~1e3
    np.testing.assert_allclose(back.log_scales, g.log_scales, atol=1e-5)
    np.testing.assert_allclose(back.sh_rest, g.sh_rest, atol=1e-5)
    q0 = g.quats / np.linalg.norm(g.quats, axis=1, keepdims=True)
    q1 = back.quats / np.linalg.norm(back.quats, axis=1, keepdims=True)
    np.testing.assert_allclose(np.abs((q0 * q1).sum(1)), 1.0, atol=1e-5)


def test_canonical_frame_is_the_same_for_a_scaled_and_moved_capture():
    cams = _ring_cameras()
    s = _some_similarity(100.0)
    moved = [s.apply_camera(c) for c in cams]
    f0, f1 = canonical_frame(cams), canonical_frame(moved)
    for a, b in zip(cams, moved):
        np.testing.assert_allclose(f1.apply_camera(b).world_to_camera, f0.apply_camera(a).world_to_camera,
                                   atol=1e-9)
    centres = np.stack([f0.apply_camera(c).center for c in cams])
    np.testing.assert_allclose(np.linalg.norm(centres - centres.mean(0), axis=1).max(), 1.0)
    # Upright cameras (world z up in look_at): the working frame's up is +z as well.
    up = np.stack([f1.apply_camera(c).camera_to_world[:3, :3] @ [0, -1, 0] for c in moved]).mean(0)
    assert up[2] > 0.9


def test_camera_depth_follows_the_scale():
    cam = _ring_cameras()[0]
    s = _some_similarity(100.0)
    p = np.array([[0.1, 0.2, 0.3]])
    z0 = (cam.world_to_camera[:3, :3] @ p[0] + cam.world_to_camera[:3, 3])[2]
    c1 = s.apply_camera(cam)
    z1 = (c1.world_to_camera[:3, :3] @ s.apply_points(p)[0] + c1.world_to_camera[:3, 3])[2]
    assert z1 == pytest.approx(100.0 * z0)
    assert c1.depth_scale == pytest.approx(100.0 * cam.depth_scale)


def test_run_frame_is_recorded_once_and_results_go_back_to_the_input_frame(tmp_path):
    from coseg.run import RunDir

    run = RunDir.create(tmp_path / "run")
    assert recorded_frame(run).is_identity  # a run made before the working frame existed
    cams = [_some_similarity(100.0).apply_camera(c) for c in _ring_cameras()]
    scene = Scene(root=tmp_path, format="test", cameras=cams)
    g = _random_gaussians(20, np.random.default_rng(4))
    scene_w, g_w, frame = working_inputs(run, scene, g)
    assert run.read_config()["frame"]["scale"] == pytest.approx(frame.scale)
    assert run_frame(run, scene).to_dict() == frame.to_dict()
    assert abs(np.log10(frame.scale) + 2 + np.log10(2.5)) < 0.01  # radius 2.5 * 100 -> 1
    np.testing.assert_allclose(to_input_frame(run, g_w).means, g.means, atol=1e-3)
    assert scene_w.cameras[0].name == cams[0].name
