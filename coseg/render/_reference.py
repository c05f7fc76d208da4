"""Plain-PyTorch float64 reference twin of the render engine.

Slow, dense and obviously correct: every Gaussian is evaluated at every pixel
([M, H*W] tensors), so it is for tests and `coseg bench` only, at small sizes.
It is the render contract (docs of `coseg.render`, the 3DGS rasteriser rules)
made executable, and autograd gives its backward pass:

- t = R x + T; cull t.z <= near_plane. Sigma = R S S^T R^T from the normalised
  quaternion (w, x, y, z). EWA: J uses tx = clamp(t.x / t.z, +-1.3 W / (2 fx)) * t.z
  (likewise ty), differentiated by plain autograd (the clamped ratio has zero
  gradient where the clamp is active, the factor t.z keeps its gradient);
  cov2d = J W Sigma W^T J^T + 0.3 I.
- Cull det(cov2d) <= 0; radius = ceil(3 sqrt(lambda_max)) with
  lambda_max = mid + sqrt(max(0.1, mid^2 - det)); cull when the box
  mean2d +- radius misses the image rectangle [0, W] x [0, H].
- Tiles of 16x16 pixels: a Gaussian is binned into tiles
  floor((m - r) / 16) <= k < ceil((m + r) / 16) per axis (clamped to the grid)
  and only affects pixels of those tiles.
- Per pixel (centre (i + 0.5, j + 0.5)), front to back by depth (ties by
  index): power > 0 or alpha < 1/255 is skipped, alpha = min(0.99, o exp(power)),
  the first Gaussian that would bring T below 1e-4 stops the pixel unblended.

Branch decisions (skips, termination, binning) are boolean masks, so autograd
treats them as constants exactly like the hand-written kernels do.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

TILE_SIZE = 16
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
T_MIN = 1e-4
EPS_2D = 0.3
FRUSTUM_SLACK = 1.3

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005,
         -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
         -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


def _quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """[N, 4] (w, x, y, z), any norm -> [N, 3, 3] rotation matrices."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, -1).reshape(-1, 3, 3)


def _eval_sh(coeffs: torch.Tensor, dirs: torch.Tensor, degree: int) -> torch.Tensor:
    """3DGS SH colours: [N, K, 3] coefficients, [N, 3] unit directions -> [N, 3], clamped at 0."""
    sh = coeffs.unbind(1)
    out = SH_C0 * sh[0]
    if degree > 0:
        x, y, z = (d[:, None] for d in dirs.unbind(-1))
        out = out - SH_C1 * y * sh[1] + SH_C1 * z * sh[2] - SH_C1 * x * sh[3]
        if degree > 1:
            xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
            out = (out + SH_C2[0] * xy * sh[4] + SH_C2[1] * yz * sh[5]
                   + SH_C2[2] * (2 * zz - xx - yy) * sh[6] + SH_C2[3] * xz * sh[7]
                   + SH_C2[4] * (xx - yy) * sh[8])
            if degree > 2:
                out = (out + SH_C3[0] * y * (3 * xx - yy) * sh[9] + SH_C3[1] * xy * z * sh[10]
                       + SH_C3[2] * y * (4 * zz - xx - yy) * sh[11]
                       + SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * sh[12]
                       + SH_C3[4] * x * (4 * zz - xx - yy) * sh[13]
                       + SH_C3[5] * z * (xx - yy) * sh[14] + SH_C3[6] * x * (xx - 3 * yy) * sh[15])
    return torch.clamp_min(out + 0.5, 0.0)


def _project(means, quats, scales, viewmat, K, width, height, near_plane):
    """Project N Gaussians into one camera.

    Returns:
        dict with ``depths`` [N] camera z, ``means2d`` [N, 2] (zero where culled by
        the near plane), ``conics`` [M, 3] (a, b, c of the inverse 2D covariance) and
        ``radii`` [M] for the ``index`` [M] of Gaussians that pass every cull,
        plus ``tiles`` [M, 4] (x0, x1, y0, y1) tile ranges, end exclusive.
    """
    n = means.shape[0]
    rot, trans = viewmat[:3, :3], viewmat[:3, 3]
    t_all = means @ rot.T + trans
    depths = t_all[:, 2]
    front = torch.nonzero(depths > near_plane).squeeze(1)
    t = t_all[front]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    m2d_front = torch.stack([fx * t[:, 0] / t[:, 2] + cx, fy * t[:, 1] / t[:, 2] + cy], -1)
    means2d = torch.zeros(n, 2, dtype=means.dtype).index_put((front,), m2d_front)

    lim_x = FRUSTUM_SLACK * 0.5 * width / float(fx)
    lim_y = FRUSTUM_SLACK * 0.5 * height / float(fy)
    tx = torch.clamp(t[:, 0] / t[:, 2], -lim_x, lim_x) * t[:, 2]
    ty = torch.clamp(t[:, 1] / t[:, 2], -lim_y, lim_y) * t[:, 2]
    zeros = torch.zeros_like(tx)
    jac = torch.stack([
        torch.stack([fx / t[:, 2], zeros, -fx * tx / t[:, 2] ** 2], -1),
        torch.stack([zeros, fy / t[:, 2], -fy * ty / t[:, 2] ** 2], -1),
    ], 1)  # [M', 2, 3]
    m = _quat_to_rotmat(quats[front]) * scales[front][:, None, :]  # R S
    sigma = m @ m.transpose(1, 2)
    jw = jac @ rot
    cov2d = jw @ sigma @ jw.transpose(1, 2)
    a = cov2d[:, 0, 0] + EPS_2D
    b = cov2d[:, 0, 1]
    c = cov2d[:, 1, 1] + EPS_2D
    det = a * c - b * b

    mid = 0.5 * (a + c)
    lam = mid + torch.sqrt(torch.clamp_min(mid * mid - det, 0.1))
    radius = torch.ceil(3.0 * torch.sqrt(lam)).detach()
    m2d = m2d_front.detach()
    grid_w, grid_h = math.ceil(width / TILE_SIZE), math.ceil(height / TILE_SIZE)
    x0 = torch.floor((m2d[:, 0] - radius) / TILE_SIZE).clamp(0, grid_w)
    x1 = torch.ceil((m2d[:, 0] + radius) / TILE_SIZE).clamp(0, grid_w)
    y0 = torch.floor((m2d[:, 1] - radius) / TILE_SIZE).clamp(0, grid_h)
    y1 = torch.ceil((m2d[:, 1] + radius) / TILE_SIZE).clamp(0, grid_h)
    on_image = ((m2d[:, 0] + radius > 0) & (m2d[:, 0] - radius < width)
                & (m2d[:, 1] + radius > 0) & (m2d[:, 1] - radius < height))
    keep = torch.nonzero((det > 0) & on_image).squeeze(1)

    a, b, c, det = a[keep], b[keep], c[keep], det[keep]
    conics = torch.stack([c / det, -b / det, a / det], -1)
    return {
        "depths": depths, "means2d": means2d, "index": front[keep], "conics": conics,
        "radii": radius[keep].long(),
        "tiles": torch.stack([x0, x1, y0, y1], -1)[keep].long(),
    }


def _blend(proj, opacities, width, height):
    """Front-to-back blending weights of the projected Gaussians at every pixel.

    Returns:
        (order [M] Gaussian indices front to back, weights [M, H*W] alpha * T,
        blended [M, H*W] bool, transmittance [H*W] after the last Gaussian).
    """
    index = proj["index"]
    order = torch.sort(proj["depths"][index].detach(), stable=True).indices
    index, conics, tiles = index[order], proj["conics"][order], proj["tiles"][order]
    dtype = proj["means2d"].dtype
    jj, ii = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    px = (ii.reshape(-1) + 0.5).to(dtype)
    py = (jj.reshape(-1) + 0.5).to(dtype)
    tile_x, tile_y = ii.reshape(-1) // TILE_SIZE, jj.reshape(-1) // TILE_SIZE
    in_tiles = ((tiles[:, 0:1] <= tile_x) & (tile_x < tiles[:, 1:2])
                & (tiles[:, 2:3] <= tile_y) & (tile_y < tiles[:, 3:4]))

    m2d = proj["means2d"][index]
    dx = m2d[:, 0:1] - px
    dy = m2d[:, 1:2] - py
    power = -0.5 * (conics[:, 0:1] * dx * dx + conics[:, 2:3] * dy * dy) - conics[:, 1:2] * dx * dy
    alpha = torch.clamp_max(opacities[index][:, None] * torch.exp(power), ALPHA_MAX)
    valid = in_tiles & (power <= 0) & (alpha >= ALPHA_MIN)

    a = torch.where(valid, alpha, torch.zeros_like(alpha))
    t_before = _exclusive_cumprod(1 - a)
    stops = valid & (t_before * (1 - a) < T_MIN)
    blended = valid & (torch.cumsum(stops.int(), 0) == 0)
    a = torch.where(blended, alpha, torch.zeros_like(alpha))
    t_before = _exclusive_cumprod(1 - a)
    weights = a * t_before
    transmittance = torch.prod(1 - a, 0)
    return index, weights, blended, transmittance


def _exclusive_cumprod(x: torch.Tensor) -> torch.Tensor:
    """Cumulative product along dim 0 shifted by one (first row ones)."""
    return torch.cat([torch.ones_like(x[:1]), torch.cumprod(x, 0)[:-1]], 0)


def _render_one(means, quats, scales, opacities, colors, viewmat, K, width, height,
                sh_degree, background, render_depth, near_plane, render_dominant=False):
    """One camera: (image [H, W, C], alpha [H, W, 1], meta) in float64."""
    n = means.shape[0]
    proj = _project(means, quats, scales, viewmat, K, width, height, near_plane)
    order, weights, blended, transmittance = _blend(proj, opacities, width, height)
    if sh_degree is None:
        feats = colors[order]
    else:
        campos = -viewmat[:3, :3].T @ viewmat[:3, 3]
        dirs = F.normalize(means[order] - campos, dim=-1)
        feats = _eval_sh(colors[order][:, : (sh_degree + 1) ** 2], dirs, sh_degree)
    image = weights.T @ feats + transmittance[:, None] * background
    alpha = 1 - transmittance
    radii = torch.zeros(n, dtype=torch.int32)
    radii[proj["index"]] = proj["radii"].int()
    contrib = torch.zeros(n, dtype=torch.int32)
    contrib[order] = blended.sum(1).int()
    meta = {"radii": radii, "visible": radii > 0, "contrib": contrib,
            "means2d": proj["means2d"], "depths": proj["depths"]}
    if render_depth:
        depth = weights.T @ proj["depths"][order] / torch.clamp_min(alpha, 1e-10)
        meta["depth"] = depth.reshape(height, width, 1)
    if render_dominant:
        meta["dominant"] = _dominant(order, weights).reshape(height, width)
    return image.reshape(height, width, -1), alpha.reshape(height, width, 1), meta


def _dominant(order: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """[H*W] int64: per pixel the Gaussian with the largest weight (first front to back), -1 = none."""
    if weights.shape[0] == 0:
        return torch.full((weights.shape[1],), -1, dtype=torch.int64)
    # torch.argmax returns the first maximum, i.e. the front-most Gaussian on a tie.
    best = torch.argmax(weights.detach(), 0)
    return torch.where(weights.detach().amax(0) > 0, order[best], torch.full_like(best, -1))


def _rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, *,
                   sh_degree=None, backgrounds=None, render_depth=False, render_dominant=False,
                   near_plane=0.2, backend="auto"):
    """Reference of `coseg.render.rasterization` (same arguments; ``backend`` is ignored).

    Args:
        means: [N, 3]. quats: [N, 4] (w, x, y, z). scales: [N, 3]. opacities: [N].
        colors: [N, C] channels, or [N, K, 3] SH coefficients when ``sh_degree`` is set.
        viewmats: [4, 4] or [B, 4, 4] OpenCV world-to-camera. Ks: [3, 3] or [B, 3, 3].
        width, height: image size in pixels.
        sh_degree: SH degree 0-3, or None for per-Gaussian channels.
        backgrounds: [C] or [B, C]; zeros by default.
        render_depth: also return meta["depth"] [.., H, W, 1], the expected z.
        render_dominant: also return meta["dominant"] [.., H, W] int64, the Gaussian with the
            largest weight alpha * T per pixel (the front-most on a tie), -1 where none blends.
        near_plane: cull Gaussians with camera z <= near_plane.

    Returns:
        (images [.., H, W, C], alphas [.., H, W, 1], meta) in float64, differentiable
        by autograd; meta as in `coseg.render.rasterization`.
    """
    del backend
    f64 = torch.float64
    means, quats, scales, opacities, colors = (
        x.to(f64) for x in (means, quats, scales, opacities, colors))
    batched = viewmats.dim() == 3
    viewmats = viewmats.to(f64).reshape(-1, 4, 4)
    Ks = Ks.to(f64).reshape(-1, 3, 3)
    channels = 3 if sh_degree is not None else colors.shape[1]
    if backgrounds is None:
        backgrounds = torch.zeros(channels, dtype=f64)
    backgrounds = backgrounds.to(f64).reshape(-1, channels).expand(viewmats.shape[0], channels)
    outs = [_render_one(means, quats, scales, opacities, colors, viewmats[b], Ks[b], width,
                        height, sh_degree, backgrounds[b], render_depth, near_plane, render_dominant)
            for b in range(viewmats.shape[0])]
    if not batched:
        return outs[0]
    meta = {k: torch.stack([o[2][k] for o in outs]) for k in outs[0][2]}
    return torch.stack([o[0] for o in outs]), torch.stack([o[1] for o in outs]), meta


def _feature_map_at_pixels(feature_map: np.ndarray, width: int, height: int) -> torch.Tensor:
    """[h, w, C] map -> [H*W, C] float64: bilinear samples at the image's pixel centres.

    Pixel centre (i + 0.5) maps to feature coordinate (i + 0.5) * w / W, borders
    clamped (torch ``interpolate(mode="bilinear", align_corners=False)``).
    """
    fmap = torch.as_tensor(np.asarray(feature_map), dtype=torch.float64)
    if fmap.shape[:2] != (height, width):
        fmap = F.interpolate(fmap.permute(2, 0, 1)[None], size=(height, width), mode="bilinear",
                             align_corners=False)[0].permute(1, 2, 0)
    return fmap.reshape(height * width, -1)


@torch.no_grad()
def _unproject_features(means, quats, scales, opacities, viewmats, Ks, width, height,
                        feature_maps, *, eps=1e-8):
    """Reference of `coseg.render.unproject_features` (paper Algorithm 1), float64.

    Returns:
        (features [N, C] float32 numpy = sum alpha T F / (count + eps),
        counts [N] int64 numpy pixels where each Gaussian was blended).
    """
    f64 = torch.float64
    means, quats, scales, opacities = (x.to(f64) for x in (means, quats, scales, opacities))
    viewmats = viewmats.to(f64).reshape(-1, 4, 4)
    Ks = Ks.to(f64).reshape(-1, 3, 3)
    n = means.shape[0]
    buffer, counts = None, torch.zeros(n, dtype=torch.int64)
    for v, fmap in enumerate(feature_maps):
        feats = _feature_map_at_pixels(fmap, width, height)
        if buffer is None:
            buffer = torch.zeros(n, feats.shape[1], dtype=f64)
        proj = _project(means, quats, scales, viewmats[v], Ks[v], width, height, 0.2)
        order, weights, blended, _ = _blend(proj, opacities, width, height)
        buffer[order] += weights @ feats
        counts[order] += blended.sum(1)
    if buffer is None:
        raise ValueError("feature_maps is empty")
    features = buffer / (counts[:, None].to(f64) + eps)
    return features.float().numpy(), counts.numpy()


@torch.no_grad()
def _visible_set(means, quats, scales, opacities, viewmat, K, width, height):
    """Reference of `coseg.render.visible_set`: int64 [M] sorted indices of the
    Gaussians that pass culling and are blended into at least one pixel."""
    f64 = torch.float64
    proj = _project(means.to(f64), quats.to(f64), scales.to(f64), viewmat.to(f64), K.to(f64),
                    width, height, 0.2)
    order, _, blended, _ = _blend(proj, opacities.to(f64), width, height)
    return torch.sort(order[blended.any(1)]).values
