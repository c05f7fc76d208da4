"""The `inria` CUDA render backend: the official 3DGS rasteriser (diff-gaussian-rasterization).

Conventions mapped from ours (OpenCV world-to-camera ``viewmat``, pixel ``K``):

- ``viewmatrix`` = viewmat^T (the rasteriser reads row-major memory as GLM
  column-major matrices); ``projmatrix`` = (P viewmat)^T with the OpenGL-style
  P = [[2fx/W, 0, 2cx/W - 1, 0], [0, 2fy/H, 2cy/H - 1, 0],
  [0, 0, f/(f-n), -f n/(f-n)], [0, 0, 1, 0]] (znear 0.01, zfar 100, as 3DGS).
  The principal point term makes its pixel coordinate equal ours minus 0.5,
  which is exactly its integer-pixel-centre convention.
- tanfovx = W / (2 fx), tanfovy = H / (2 fy), so its focal lengths and the
  1.3 x FOV clamp equal ours; ``campos`` = camera centre for SH directions.

Limits of the official rasteriser, surfaced as clear errors or documented:
it is compiled for NUM_CHANNELS = 3, so only RGB (SH or [N, 3] channels) renders
(other channel counts raise ValueError); its near plane is fixed at 0.2;
it returns no alpha and no expected depth, so a second pass renders
colours (1, z, 0) with a black background: channel 0 is alpha, channel 1 the
blended z; and it reports no per-Gaussian pixel counts, so meta has no
"contrib" key on this backend. meta["means2d"] is a [(B,) N, 2] leaf in pixel
coordinates whose ``.grad`` receives dL/dmeans2d (the rasteriser's NDC-scaled
screen-space gradient, rescaled to pixels). For the same reason (no per-pixel
Gaussian ids or weights leave the rasteriser) meta["dominant"] is computed by
the CPU kernel on the same Gaussians and cameras; the rasterisers agree on
which Gaussians blend where (tests/test_render_cuda.py).
"""

from __future__ import annotations

import importlib.util

import torch

ZNEAR, ZFAR = 0.01, 100.0
NEAR_PLANE = 0.2


def available() -> bool:
    """True when diff_gaussian_rasterization is importable and a CUDA device is present."""
    return importlib.util.find_spec("diff_gaussian_rasterization") is not None and torch.cuda.is_available()


def projection_matrix(K: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """[4, 4] OpenGL-style projection (3DGS z convention) for pixel intrinsics K [3, 3]."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    P = torch.zeros(4, 4, dtype=K.dtype, device=K.device)
    P[0, 0] = 2 * fx / width
    P[0, 2] = 2 * cx / width - 1
    P[1, 1] = 2 * fy / height
    P[1, 2] = 2 * cy / height - 1
    P[2, 2] = ZFAR / (ZFAR - ZNEAR)
    P[2, 3] = -ZFAR * ZNEAR / (ZFAR - ZNEAR)
    P[3, 2] = 1.0
    return P


def _settings(dr, viewmat, K, width, height, background, sh_degree):
    """GaussianRasterizationSettings for one camera (fields filtered by the installed version)."""
    w2c = viewmat.to(torch.float32)
    values = {
        "image_height": int(height), "image_width": int(width),
        "tanfovx": float(width / (2 * K[0, 0])), "tanfovy": float(height / (2 * K[1, 1])),
        "bg": background.contiguous(), "scale_modifier": 1.0,
        "viewmatrix": w2c.T.contiguous(),
        "projmatrix": (projection_matrix(K.to(torch.float32), width, height) @ w2c).T.contiguous(),
        "sh_degree": int(sh_degree), "campos": (-w2c[:3, :3].T @ w2c[:3, 3]).contiguous(),
        "prefiltered": False, "debug": False, "antialiasing": False,
    }
    fields = dr.GaussianRasterizationSettings._fields
    return dr.GaussianRasterizationSettings(**{k: v for k, v in values.items() if k in fields})


def _one_camera(dr, means, quats, scales, opacities, colors, sh_degree, viewmat, K, width, height,
                background, means2d_px, render_depth):
    """Colour pass and (alpha, z) pass of one camera; returns (image, alpha, depth, radii)."""
    # The rasteriser writes dL/d(screen mean) in NDC-scaled units (pixel gradient * W / 2) into
    # its means2D argument; feeding it means2d_px * 2 / W makes means2d_px.grad the pixel gradient.
    scale = torch.tensor([2.0 / width, 2.0 / height], device=means.device)
    sink = torch.cat([means2d_px * scale, torch.zeros_like(means2d_px[:, :1])], 1)

    def rasterize(settings, **colour_kw):
        return dr.GaussianRasterizer(settings)(means3D=means, means2D=sink, opacities=opacities[:, None],
                                               scales=scales, rotations=quats, **colour_kw)

    if sh_degree is None:
        out = rasterize(_settings(dr, viewmat, K, width, height, background, 0), colors_precomp=colors)
    else:
        out = rasterize(_settings(dr, viewmat, K, width, height, background, sh_degree), shs=colors)
    image, radii = out[0], out[1]
    z = means @ viewmat[2, :3] + viewmat[2, 3]
    aux_colors = torch.stack([torch.ones_like(z), z, torch.zeros_like(z)], 1)
    aux = rasterize(_settings(dr, viewmat, K, width, height, torch.zeros_like(background), 0),
                    colors_precomp=aux_colors)[0]
    alpha = aux[0:1].permute(1, 2, 0)
    depth = (aux[1:2].permute(1, 2, 0) / alpha.clamp_min(1e-10)) if render_depth else None
    return image.permute(1, 2, 0), alpha, depth, radii, z


def _dominant_on_cpu(means, quats, scales, opacities, viewmats, Ks, width, height) -> torch.Tensor:
    """[(B,) H, W] int64 dominant Gaussians from the CPU kernel (see module docstring)."""
    from coseg.render.rasterize import rasterization

    with torch.no_grad():
        cpu = [x.detach().cpu() for x in (means, quats, scales, opacities, viewmats, Ks)]
        _, _, meta = rasterization(cpu[0], cpu[1], cpu[2], cpu[3], torch.zeros(len(cpu[0]), 1), cpu[4],
                                   cpu[5], width, height, render_dominant=True, backend="cpu")
    return meta["dominant"]


def rasterize(means, quats, scales, opacities, colors, viewmats, Ks, width, height, *,
              sh_degree=None, backgrounds=None, render_depth=False, render_dominant=False, near_plane=0.2,
              backend="inria"):
    """`coseg.render.rasterization` on the official 3DGS rasteriser (see module docstring).

    Raises:
        ValueError: a channel count other than 3, or a near plane other than 0.2.
    """
    del backend
    if sh_degree is None and colors.shape[1] != 3:
        raise ValueError(f"backend 'inria': diff-gaussian-rasterization is compiled for 3 channels "
                         f"(NUM_CHANNELS=3), got colors with {colors.shape[1]}; use backend='gsplat' "
                         "or 'cpu' for other channel counts")
    if near_plane != NEAR_PLANE:
        raise ValueError(f"backend 'inria': the near plane is fixed at {NEAR_PLANE}, got near_plane={near_plane}")
    import diff_gaussian_rasterization as dr

    out_device = means.device
    dev = means.device if means.device.type == "cuda" else torch.device("cuda")
    means, quats, scales, opacities, colors = (
        x.to(dev, torch.float32).contiguous() for x in (means, quats, scales, opacities, colors))
    batched = viewmats.dim() == 3
    vms = viewmats.reshape(-1, 4, 4).to(dev, torch.float32)
    ks = Ks.reshape(-1, 3, 3).to(dev, torch.float32)
    n_cams = vms.shape[0]
    bgs = (torch.zeros(n_cams, 3, device=dev) if backgrounds is None
           else backgrounds.reshape(-1, 3).expand(n_cams, 3).to(dev, torch.float32))
    with torch.no_grad():
        t = torch.einsum("bij,nj->bni", vms[:, :3, :3], means) + vms[:, None, :3, 3]
        px = torch.stack([ks[:, None, 0, 0] * t[..., 0] / t[..., 2] + ks[:, None, 0, 2],
                          ks[:, None, 1, 1] * t[..., 1] / t[..., 2] + ks[:, None, 1, 2]], -1)
    needs_grad = torch.is_grad_enabled() and any(
        x.requires_grad for x in (means, quats, scales, opacities, colors))
    # One leaf per call so that meta["means2d"] itself is upstream of every camera's pass.
    means2d = (px if batched else px[0]).nan_to_num(0.0).requires_grad_(needs_grad)
    outs = [_one_camera(dr, means, quats, scales, opacities, colors, sh_degree, vms[b], ks[b],
                        int(width), int(height), bgs[b], means2d[b] if batched else means2d, render_depth)
            for b in range(n_cams)]
    images = torch.stack([o[0] for o in outs]).to(out_device)
    alphas = torch.stack([o[1] for o in outs]).to(out_device)
    radii = torch.stack([o[3] for o in outs]).int().to(out_device)
    meta = {"radii": radii, "visible": radii > 0, "means2d": means2d,
            "depths": torch.stack([o[4] for o in outs]).to(out_device)}
    if render_depth:
        meta["depth"] = torch.stack([o[2] for o in outs]).to(out_device)
    if render_dominant:
        dominant = _dominant_on_cpu(means, quats, scales, opacities, viewmats, Ks, int(width), int(height))
        meta["dominant"] = dominant.reshape(n_cams, int(height), int(width)).to(out_device)
    if not batched:
        meta = {k: (v if k == "means2d" else v[0]) for k, v in meta.items()}
        return images[0], alphas[0], meta
    return images, alphas, meta
