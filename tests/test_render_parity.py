"""Parity of the CPU render backend with the float64 PyTorch reference twin.

Seeds are fresh on every run (set ``COSEG_TEST_SEED`` to replay one: the seed
is part of each test id). The reference evaluates every Gaussian at every
pixel, so the scenes are small.
"""

from __future__ import annotations

import json
import math
import os
import time

import numba
import numpy as np
import pytest
import torch

from coseg.render import rasterization, unproject_features, visible_set
from coseg.render._reference import (ALPHA_MAX, ALPHA_MIN, T_MIN, TILE_SIZE, _project, _rasterization,
                                     _unproject_features, _visible_set)

BASE_SEED = int(os.environ.get("COSEG_TEST_SEED", time.time_ns() % 1_000_000))
SEEDS = [BASE_SEED + k for k in range(2)]

GROUPS = ("means", "quats", "scales", "opacities", "colors")


def _rotation(axis_angle: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(axis_angle))
    if angle == 0.0:
        return np.eye(3)
    k = axis_angle / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


def make_camera(rng: np.random.Generator, width: int, height: int):
    """A slightly rotated and shifted camera: (viewmat [4, 4], K [3, 3]) float32 tensors."""
    viewmat = np.eye(4)
    viewmat[:3, :3] = _rotation(rng.normal(0, 0.1, 3))
    viewmat[:3, 3] = rng.normal(0, 0.2, 3)
    f = max(width, height) * rng.uniform(0.8, 1.3)
    K = np.array([[f, 0, width / 2 + rng.uniform(-1, 1)],
                  [0, f * rng.uniform(0.9, 1.1), height / 2 + rng.uniform(-1, 1)], [0, 0, 1]])
    return torch.tensor(viewmat, dtype=torch.float32), torch.tensor(K, dtype=torch.float32)


def make_scene(seed: int, width: int, height: int, channels: int = 3, sh_degree: int | None = None,
               n: int = 40, opacity_range=(0.05, 0.99)):
    """Random Gaussians seen by a random camera, with every awkward kind mixed in.

    Besides ordinary Gaussians: some behind the camera, some straddling the near
    plane, huge ones (scale ~1), tiny ones (scale 1e-4), one far outside the view
    cone (exercises the 1.3 x FOV clamp) and opacities near 1 (the 0.99 clamp).

    Returns:
        dict of float32 tensors (means, quats, scales, opacities, colors) and the camera.
    """
    rng = np.random.default_rng(seed)
    viewmat, K = make_camera(rng, width, height)
    fx, fy = float(K[0, 0]), float(K[1, 1])
    z = rng.uniform(0.6, 4.0, n)
    z[:3] = rng.uniform(-2.0, -0.05, 3)  # behind the camera
    z[3:6] = rng.uniform(0.15, 0.25, 3)  # around the near plane
    cam = np.stack([rng.uniform(-0.6, 0.6, n) * z * width / fx,
                    rng.uniform(-0.6, 0.6, n) * z * height / fy, z], 1)
    cam[6] = [3.0 * z[6] * width / fx, 0.0, z[6]]  # outside the clamp cone
    log_scales = rng.normal(math.log(0.06), 0.6, (n, 3))
    log_scales[6:9] = rng.uniform(math.log(0.5), math.log(1.5), (3, 3))  # huge
    log_scales[9:12] = math.log(1e-4)  # tiny
    rot, trans = viewmat[:3, :3].double().numpy(), viewmat[:3, 3].double().numpy()
    means = (cam - trans) @ rot  # camera -> world: R^T (t - T)
    opacities = rng.uniform(*opacity_range, n)
    opacities[12:14] = 0.999
    if sh_degree is None:
        colors = rng.uniform(0, 1, (n, channels))
    else:
        colors = rng.normal(0, 0.4, (n, (sh_degree + 1) ** 2 + 1, 3))
    as_t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    return {"means": as_t(means), "quats": as_t(rng.normal(0, 1, (n, 4))),
            "scales": as_t(np.exp(log_scales)), "opacities": as_t(opacities),
            "colors": as_t(colors), "viewmat": viewmat, "K": K}


def render_both(scene, width, height, sh_degree=None, backgrounds=None, requires_grad=False):
    """Render with the CPU backend (float32) and the reference (float64 leaves)."""
    ours = {k: scene[k].clone().requires_grad_(requires_grad) for k in GROUPS}
    ref = {k: scene[k].double().requires_grad_(requires_grad) for k in GROUPS}
    kw = dict(sh_degree=sh_degree, backgrounds=backgrounds, render_depth=True)
    out = rasterization(*ours.values(), scene["viewmat"], scene["K"], width, height, backend="cpu", **kw)
    out_ref = _rasterization(*ref.values(), scene["viewmat"], scene["K"], width, height, **kw)
    return ours, out, ref, out_ref


def assert_forward_close(out, out_ref, atol=1e-4):
    (img, alpha, meta), (img_r, alpha_r, meta_r) = out, out_ref
    assert img.shape == img_r.shape and alpha.shape == alpha_r.shape
    for name, a, b in (("image", img, img_r), ("alpha", alpha, alpha_r),
                       ("depth", meta["depth"], meta_r["depth"])):
        err = (a.detach().double() - b.detach()).abs().max().item() if a.numel() else 0.0
        assert err <= atol, f"{name}: max abs error {err:.3g}"
    for key in ("radii", "visible", "contrib"):
        assert torch.equal(meta[key], meta_r[key]), f"meta[{key!r}] differs"
    vis = meta_r["visible"]
    torch.testing.assert_close(meta["means2d"].detach().double()[vis], meta_r["means2d"].detach()[vis],
                               rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(meta["depths"].detach().double(), meta_r["depths"].detach(),
                               rtol=1e-5, atol=1e-5)


FORWARD_CASES = [  # (width, height, channels, sh_degree)
    (17, 13, 3, None), (32, 32, 1, None), (33, 16, 17, None), (24, 20, 64, None),
    (1, 1, 3, None), (20, 18, 3, 0), (20, 18, 3, 1), (19, 17, 3, 2), (32, 17, 3, 3),
]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("width,height,channels,sh_degree", FORWARD_CASES)
def test_forward_matches_reference(seed, width, height, channels, sh_degree):
    scene = make_scene(seed, width, height, channels, sh_degree)
    bg = torch.rand(channels, generator=torch.Generator().manual_seed(seed))
    _, out, _, out_ref = render_both(scene, width, height, sh_degree, bg)
    assert_forward_close(out, out_ref)
    assert out_ref[2]["visible"].any() or width == 1, "scene should show some Gaussians"


@pytest.mark.parametrize("seed", SEEDS)
def test_forward_dense_scene_reaches_termination(seed):
    """Opaque layers: pixels stop at T < 1e-4, and the stopping rule must agree."""
    scene = make_scene(seed, 32, 32, n=90, opacity_range=(0.7, 0.99))
    scene["scales"] = scene["scales"] * 3
    _, out, _, out_ref = render_both(scene, 32, 32)
    assert (1 - out_ref[1]).min() < 1e-3, "no pixel got near full opacity; the test lost its point"
    assert_forward_close(out, out_ref)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / max(||b||, 1e-8), in float64."""
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / max(float(b.norm()), 1e-8))


BACKWARD_CASES = [(17, 13, 3, None), (32, 32, 17, None), (20, 18, 3, 3), (24, 16, 3, 1)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("width,height,channels,sh_degree", BACKWARD_CASES)
def test_backward_matches_reference_autograd(seed, width, height, channels, sh_degree):
    scene = make_scene(seed, width, height, channels, sh_degree)
    ours, out, ref, out_ref = render_both(scene, width, height, sh_degree, requires_grad=True)
    assert_forward_close(out, out_ref)
    gen = torch.Generator().manual_seed(seed + 1)
    ups = [torch.randn(out[0].shape, generator=gen), torch.randn(out[1].shape, generator=gen),
           torch.randn(out[2]["depth"].shape, generator=gen)]
    grads = torch.autograd.grad([out[0], out[1], out[2]["depth"]],
                                [*ours.values(), out[2]["means2d"]], ups)
    grads_ref = torch.autograd.grad([out_ref[0], out_ref[1], out_ref[2]["depth"]],
                                    [*ref.values(), out_ref[2]["means2d"]], [u.double() for u in ups])
    for name, g, g_ref in zip((*GROUPS, "means2d"), grads, grads_ref):
        assert g_ref.norm() > 0, f"{name}: reference gradient is zero; the scene lost its point"
        err = relative_error(g, g_ref)
        assert err <= 1e-3, f"{name}: relative gradient error {err:.3g}"


@pytest.mark.parametrize("seed", SEEDS[:1])
def test_batched_cameras_match_reference(seed):
    w, h, c = 20, 16, 5
    scene = make_scene(seed, w, h, c)
    rng = np.random.default_rng(seed + 7)
    cams = [make_camera(rng, w, h) for _ in range(2)] + [(scene["viewmat"], scene["K"])]
    viewmats = torch.stack([v for v, _ in cams])
    Ks = torch.stack([k for _, k in cams])
    bgs = torch.rand(3, c)
    args = [scene[k] for k in GROUPS]
    out = rasterization(*args, viewmats, Ks, w, h, backgrounds=bgs, render_depth=True, backend="cpu")
    out_ref = _rasterization(*args, viewmats, Ks, w, h, backgrounds=bgs, render_depth=True)
    assert out[0].shape == (3, h, w, c) and out[1].shape == (3, h, w, 1)
    assert out[2]["radii"].shape == (3, len(args[0]))
    assert_forward_close(out, out_ref)


@pytest.mark.parametrize("case", ["empty", "all_culled", "single_pixel"])
def test_degenerate_scenes(case):
    scene = make_scene(BASE_SEED, 16, 12, 4)
    w, h = 16, 12
    if case == "empty":
        scene.update({k: scene[k][:0] for k in GROUPS})
    elif case == "all_culled":
        rot, trans = scene["viewmat"][:3, :3], scene["viewmat"][:3, 3]
        scene["means"] = (torch.tensor([0.0, 0.0, -1.0]) - trans) @ rot + 0.01 * torch.randn_like(scene["means"])
    else:
        w = h = 1
        scene["K"] = torch.tensor([[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1]])
    bg = torch.tensor([0.1, 0.2, 0.3, 0.4])
    _, out, _, out_ref = render_both(scene, w, h, None, bg)
    assert_forward_close(out, out_ref)
    if case != "single_pixel":
        assert torch.equal(out[0], bg.expand(h, w, 4)) and not out[1].any()
        assert not out[2]["visible"].any() and out[2]["contrib"].sum() == 0


def _run_with_threads(n_threads, scene, w, h):
    previous = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        ours = {k: scene[k].clone().requires_grad_(True) for k in GROUPS}
        img, alpha, meta = rasterization(*ours.values(), scene["viewmat"], scene["K"], w, h,
                                         render_depth=True, backend="cpu")
        loss = (img * torch.linspace(-1, 1, img.numel()).reshape(img.shape)).sum() + alpha.sum() \
            + meta["depth"].sum()
        grads = torch.autograd.grad(loss, list(ours.values()))
        return [img, alpha, meta["depth"], meta["contrib"], *grads]
    finally:
        numba.set_num_threads(previous)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba limited to one thread")
def test_deterministic_across_thread_counts():
    scene = make_scene(BASE_SEED, 48, 40, 8, n=300)
    one = _run_with_threads(1, scene, 48, 40)
    two = _run_with_threads(2, scene, 48, 40)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def test_bad_inputs_name_the_argument():
    scene = make_scene(BASE_SEED, 8, 8)
    good = {k: scene[k] for k in GROUPS}
    bad_cases = {
        "means": good["means"].clone().index_fill_(0, torch.tensor([0]), float("nan")),
        "scales": -good["scales"],
        "quats": good["quats"].clone().index_fill_(0, torch.tensor([1]), 0.0),
        "opacities": good["opacities"].clone().index_fill_(0, torch.tensor([2]), float("inf")),
        "colors": good["colors"][:-1],
    }
    for name, value in bad_cases.items():
        with pytest.raises(ValueError, match=name):
            rasterization(**{**good, name: value}, viewmats=scene["viewmat"], Ks=scene["K"],
                          width=8, height=8, backend="cpu")
    bad_K = scene["K"].clone()
    bad_K[0, 0] = 0.0
    with pytest.raises(ValueError, match="Ks"):
        rasterization(**good, viewmats=scene["viewmat"], Ks=bad_K, width=8, height=8, backend="cpu")
    with pytest.raises(ValueError, match="viewmats"):
        rasterization(**good, viewmats=scene["viewmat"][:3], Ks=scene["K"], width=8, height=8,
                      backend="cpu")


def test_reference_projection_is_independent_of_tiles():
    """The reference's cull-by-image rule: a Gaussian whose box lies right of the
    image but inside the last partial tile is culled."""
    means = torch.tensor([[0.0, 0.0, 2.0]], dtype=torch.float64)
    K = torch.tensor([[10.0, 0, 20.0], [0, 10.0, 6.5], [0, 0, 1]], dtype=torch.float64)
    proj = _project(means, torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64),
                    torch.full((1, 3), 0.05, dtype=torch.float64), torch.eye(4, dtype=torch.float64),
                    K, 17, 13, 0.2)
    assert proj["index"].numel() == 0
    K[0, 2] = 10.0
    proj = _project(means, torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64),
                    torch.full((1, 3), 0.05, dtype=torch.float64), torch.eye(4, dtype=torch.float64),
                    K, 17, 13, 0.2)
    assert proj["index"].tolist() == [0]


def _bilinear(fmap: np.ndarray, x: float, y: float, width: int, height: int) -> np.ndarray:
    """F at image point (x, y): pixel centre mapped into the feature grid, edges clamped."""
    fh, fw = fmap.shape[:2]
    u = min(max(x * fw / width - 0.5, 0.0), fw - 1.0)
    v = min(max(y * fh / height - 0.5, 0.0), fh - 1.0)
    q0, r0 = int(u), int(v)
    q1, r1 = min(q0 + 1, fw - 1), min(r0 + 1, fh - 1)
    fu, fv = u - q0, v - r0
    top = fmap[r0, q0] * (1 - fu) + fmap[r0, q1] * fu
    return top * (1 - fv) + (fmap[r1, q0] * (1 - fu) + fmap[r1, q1] * fu) * fv


def brute_force_unprojection(scene_views, geometry, width, height, feature_maps):
    """Algorithm 1 as a scalar loop over pixels and Gaussians (projection from the reference)."""
    n = geometry["means"].shape[0]
    buffer = np.zeros((n, feature_maps[0].shape[2]))
    counts = np.zeros(n, np.int64)
    g64 = {k: v.double() for k, v in geometry.items()}
    for (viewmat, K), fmap in zip(scene_views, feature_maps):
        proj = _project(g64["means"], g64["quats"], g64["scales"], viewmat.double(), K.double(),
                        width, height, 0.2)
        index = proj["index"].tolist()
        depth = proj["depths"].tolist()
        order = sorted(range(len(index)), key=lambda k: (depth[index[k]], index[k]))
        for j in range(height):
            for i in range(width):
                trans = 1.0
                for k in order:
                    g = index[k]
                    x0, x1, y0, y1 = proj["tiles"][k].tolist()
                    if not (x0 <= i // TILE_SIZE < x1 and y0 <= j // TILE_SIZE < y1):
                        continue
                    mx, my = proj["means2d"][g].tolist()
                    ca, cb, cc = proj["conics"][k].tolist()
                    dx, dy = mx - (i + 0.5), my - (j + 0.5)
                    power = -0.5 * (ca * dx * dx + cc * dy * dy) - cb * dx * dy
                    alpha = min(ALPHA_MAX, float(g64["opacities"][g]) * math.exp(power))
                    if power > 0 or alpha < ALPHA_MIN:
                        continue
                    if trans * (1 - alpha) < T_MIN:
                        break
                    buffer[g] += alpha * trans * _bilinear(fmap, i + 0.5, j + 0.5, width, height)
                    counts[g] += 1
                    trans *= 1 - alpha
    return buffer / (counts[:, None] + 1e-8), counts


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("feature_size", [(10, 12), (4, 5), (13, 17)])
def test_unprojection_matches_brute_force_and_reference(seed, feature_size):
    w, h, c = 12, 10, 6
    scene = make_scene(seed, w, h, n=25, opacity_range=(0.3, 0.99))
    rng = np.random.default_rng(seed + 3)
    views = [(scene["viewmat"], scene["K"]), make_camera(rng, w, h)]
    maps = [rng.normal(0, 1, (*feature_size, c)).astype(np.float32) for _ in views]
    geometry = {k: scene[k] for k in ("means", "quats", "scales", "opacities")}
    viewmats = torch.stack([v for v, _ in views])
    Ks = torch.stack([k for _, k in views])
    feats, counts = unproject_features(*geometry.values(), viewmats, Ks, w, h, iter(maps))
    feats_ref, counts_ref = _unproject_features(*geometry.values(), viewmats, Ks, w, h, maps)
    feats_bf, counts_bf = brute_force_unprojection(views, geometry, w, h, maps)
    assert counts.dtype == np.int64 and feats.dtype == np.float32 and feats.shape == (25, c)
    assert counts_bf.sum() > 0
    np.testing.assert_array_equal(counts_ref, counts_bf)
    np.testing.assert_allclose(feats_ref, feats_bf, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(counts, counts_bf)
    np.testing.assert_allclose(feats, feats_bf, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_visible_set_matches_reference(seed):
    scene = make_scene(seed, 40, 24, n=60)
    args = [scene[k] for k in ("means", "quats", "scales", "opacities")]
    ours = visible_set(*args, scene["viewmat"], scene["K"], 40, 24)
    ref = _visible_set(*args, scene["viewmat"], scene["K"], 40, 24)
    np.testing.assert_array_equal(np.asarray(ours), ref.numpy())
    _, _, meta = _rasterization(*args, scene["colors"], scene["viewmat"], scene["K"], 40, 24)
    np.testing.assert_array_equal(ref.numpy(), np.flatnonzero(meta["contrib"].numpy() > 0))


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba limited to one thread")
def test_unprojection_deterministic_across_thread_counts():
    scene = make_scene(BASE_SEED, 48, 40, n=300)
    fmap = np.random.default_rng(BASE_SEED).normal(0, 1, (20, 24, 64)).astype(np.float32)
    args = [scene[k] for k in ("means", "quats", "scales", "opacities")]
    results = []
    previous = numba.get_num_threads()
    try:
        for n_threads in (1, 2):
            numba.set_num_threads(n_threads)
            results.append(unproject_features(*args, scene["viewmat"], scene["K"], 48, 40, [fmap]))
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_unprojection_bad_input():
    scene = make_scene(BASE_SEED, 8, 8)
    args = [scene[k] for k in ("means", "quats", "scales", "opacities")]
    good = np.zeros((8, 8, 4), np.float32)
    with pytest.raises(ValueError, match="scales"):
        unproject_features(args[0], args[1], -args[2], args[3], scene["viewmat"], scene["K"], 8, 8, [good])
    with pytest.raises(ValueError, match=r"feature.map"):
        unproject_features(*args, scene["viewmat"], scene["K"], 8, 8, [np.full((8, 8, 4), np.nan, np.float32)])
    with pytest.raises(ValueError, match=r"feature.map"):
        unproject_features(*args, scene["viewmat"], scene["K"], 8, 8, [good, good])


def test_bench_quick_mode_table_and_json(capsys, tmp_path):
    from coseg.bench import format_table
    from coseg.cli import main

    assert main(["bench", "--quick", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    rows = {(r["backend"], r["width"], r["height"], r["channels"]) for r in results["rows"]}
    assert rows == {("cpu", 32, 24, 3), ("cpu", 32, 24, 64), ("reference", 16, 16, 3),
                    ("reference", 16, 16, 64), ("cpu", 16, 16, 3), ("cpu", 16, 16, 64)}
    for r in results["rows"]:
        times = [r[k] for k in ("forward_ms", "backward_ms", "forward_backward_ms", "unproject_ms",
                                "forward_cpu_ms", "forward_backward_cpu_ms", "unproject_cpu_ms")]
        assert all(math.isfinite(t) and t > 0 for t in times)
    assert [s["channels"] for s in results["speedups"]] == [3, 64]
    assert results["machine"]["numba_threads"] >= 1 and results["machine"]["cores"] >= 1
    table = format_table(results).splitlines()
    assert sum(line.startswith(("cpu ", "reference ")) for line in table) == 6
    assert sum("speed-up cpu vs reference" in line for line in table) == 2
    assert any("no --run RUN given" in line for line in table)
    assert main(["bench", "--quick", "--run", str(tmp_path)]) == 1
    assert "not a run folder" in capsys.readouterr().err
