"""Numba kernels: EWA projection of 3D Gaussians to screen space, forward and backward.

Follows the math of `docs/rendering.md` (the official 3DGS rasteriser): camera
point t = R x + T, cull t.z <= near, Sigma = R(q) S S^T R(q)^T, the 2D covariance
J W Sigma W^T J^T + 0.3 I with the tangent clamp of 1.3 * half-FOV inside J only,
conic = inverse covariance, radius ceil(3 sqrt(lambda_max)), cull when the
radius box misses the image. All arithmetic is float64; outputs are float32.

The backward pass is the exact derivative of this forward (the clamped tangent
coordinate has zero gradient with respect to t.x/t.y where the clamp is active,
and the clamp's factor t.z keeps its gradient, as autograd through
``clamp(t.x / t.z) * t.z`` gives).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

_NB = dict(parallel=True, cache=True, nogil=True)


_CHUNK = 256


@nb.njit(inline="always")
def _mm(a, b, out):
    """out = a @ b for small matrices (no allocation, no BLAS)."""
    for r in range(a.shape[0]):
        for c in range(b.shape[1]):
            acc = 0.0
            for k in range(a.shape[1]):
                acc += a[r, k] * b[k, c]
            out[r, c] = acc


@nb.njit(inline="always")
def _mm_bt(a, b, out):
    """out = a @ b.T."""
    for r in range(a.shape[0]):
        for c in range(b.shape[0]):
            acc = 0.0
            for k in range(a.shape[1]):
                acc += a[r, k] * b[c, k]
            out[r, c] = acc


@nb.njit(inline="always")
def _mm_at(a, b, out):
    """out = a.T @ b."""
    for r in range(a.shape[1]):
        for c in range(b.shape[1]):
            acc = 0.0
            for k in range(a.shape[0]):
                acc += a[k, r] * b[k, c]
            out[r, c] = acc


@nb.njit(inline="always")
def _rotation(quats, i, qn, rot):
    """Normalised quaternion qn [4] and its rotation matrix rot [3, 3]; returns the norm."""
    norm = math.sqrt(quats[i, 0] ** 2 + quats[i, 1] ** 2 + quats[i, 2] ** 2 + quats[i, 3] ** 2)
    for k in range(4):
        qn[k] = quats[i, k] / norm
    w, x, y, z = qn[0], qn[1], qn[2], qn[3]
    rot[0, 0] = 1.0 - 2.0 * (y * y + z * z)
    rot[0, 1] = 2.0 * (x * y - w * z)
    rot[0, 2] = 2.0 * (x * z + w * y)
    rot[1, 0] = 2.0 * (x * y + w * z)
    rot[1, 1] = 1.0 - 2.0 * (x * x + z * z)
    rot[1, 2] = 2.0 * (y * z - w * x)
    rot[2, 0] = 2.0 * (x * z - w * y)
    rot[2, 1] = 2.0 * (y * z + w * x)
    rot[2, 2] = 1.0 - 2.0 * (x * x + y * y)
    return norm


@nb.njit(inline="always")
def _scratch():
    return (np.empty(3), np.empty(4), np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3)),
            np.zeros((2, 3)), np.empty((2, 3)), np.empty((2, 3)), np.empty((2, 2)))


@nb.njit(inline="always")
def _project_one(means, quats, scales, viewmat, wrot, i, fx, fy, lim_x, lim_y, s):
    """Camera point, rotation, M = R S, Sigma, J, T2 = J W and cov2d (+0.3) into scratch `s`.

    Returns (u_clamped, v_clamped, clamp_x, clamp_y).
    """
    t, qn, rot, m, sigma, jac, t2, tmp23, cov = s
    for r in range(3):
        t[r] = (viewmat[r, 0] * means[i, 0] + viewmat[r, 1] * means[i, 1]
                + viewmat[r, 2] * means[i, 2] + viewmat[r, 3])
    _rotation(quats, i, qn, rot)
    for r in range(3):
        for c in range(3):
            m[r, c] = rot[r, c] * scales[i, c]
    _mm_bt(m, m, sigma)
    u = t[0] / t[2]
    v = t[1] / t[2]
    uc = min(max(u, -lim_x), lim_x)
    vc = min(max(v, -lim_y), lim_y)
    jac[0, 0] = fx / t[2]
    jac[0, 2] = -fx * uc / t[2]
    jac[1, 1] = fy / t[2]
    jac[1, 2] = -fy * vc / t[2]
    _mm(jac, wrot, t2)
    _mm(t2, sigma, tmp23)
    _mm_bt(tmp23, t2, cov)
    cov[0, 0] += 0.3
    cov[1, 1] += 0.3
    return uc, vc, u < -lim_x or u > lim_x, v < -lim_y or v > lim_y


@nb.njit(**_NB)
def project_fwd(means, quats, scales, viewmat, intr, width, height, near,
                means2d, conics, depths, radii):
    """Project N Gaussians.

    Args:
        means, quats, scales: [N, 3], [N, 4], [N, 3] float32.
        viewmat: [4, 4] float64 world-to-camera. intr: [4] float64 (fx, fy, cx, cy).
        width, height: image size in pixels. near: near plane.
        means2d, conics, depths, radii: outputs [N, 2], [N, 3], [N] float32, [N] int32.
            Culled Gaussians get radius 0 and zero means2d/conics.
    """
    n = means.shape[0]
    fx, fy, cx, cy = intr[0], intr[1], intr[2], intr[3]
    lim_x = 1.3 * 0.5 * width / fx
    lim_y = 1.3 * 0.5 * height / fy
    wrot = viewmat[:3, :3].copy()
    for chunk in nb.prange((n + _CHUNK - 1) // _CHUNK):
        s = _scratch()
        t, cov = s[0], s[8]
        for i in range(chunk * _CHUNK, min(n, (chunk + 1) * _CHUNK)):
            radii[i] = 0
            means2d[i, 0] = 0.0
            means2d[i, 1] = 0.0
            conics[i, 0] = 0.0
            conics[i, 1] = 0.0
            conics[i, 2] = 0.0
            depths[i] = (viewmat[2, 0] * means[i, 0] + viewmat[2, 1] * means[i, 1]
                         + viewmat[2, 2] * means[i, 2] + viewmat[2, 3])
            if not depths[i] > near:
                continue
            _project_one(means, quats, scales, viewmat, wrot, i, fx, fy, lim_x, lim_y, s)
            a, b, c = cov[0, 0], cov[0, 1], cov[1, 1]
            det = a * c - b * b
            if not det > 0.0:
                continue
            mid = 0.5 * (a + c)
            lam = mid + math.sqrt(max(0.1, mid * mid - det))
            radius = math.ceil(3.0 * math.sqrt(lam))
            mx = fx * t[0] / t[2] + cx
            my = fy * t[1] / t[2] + cy
            if mx + radius <= 0.0 or mx - radius >= width or my + radius <= 0.0 or my - radius >= height:
                continue
            radii[i] = radius
            means2d[i, 0] = mx
            means2d[i, 1] = my
            conics[i, 0] = c / det
            conics[i, 1] = -b / det
            conics[i, 2] = a / det


@nb.njit(inline="always")
def _drot_dquat(w, x, y, z, g):
    """Gradient wrt the normalised quaternion (w, x, y, z) given dL/dR = g [3, 3]."""
    gw = 2.0 * (z * (g[1, 0] - g[0, 1]) + y * (g[0, 2] - g[2, 0]) + x * (g[2, 1] - g[1, 2]))
    gx = 2.0 * (y * (g[0, 1] + g[1, 0]) + z * (g[0, 2] + g[2, 0]) + w * (g[2, 1] - g[1, 2])) \
        - 4.0 * x * (g[1, 1] + g[2, 2])
    gy = 2.0 * (x * (g[0, 1] + g[1, 0]) + w * (g[0, 2] - g[2, 0]) + z * (g[1, 2] + g[2, 1])) \
        - 4.0 * y * (g[0, 0] + g[2, 2])
    gz = 2.0 * (w * (g[1, 0] - g[0, 1]) + x * (g[0, 2] + g[2, 0]) + y * (g[1, 2] + g[2, 1])) \
        - 4.0 * z * (g[0, 0] + g[1, 1])
    return gw, gx, gy, gz


@nb.njit(**_NB)
def project_bwd(means, quats, scales, viewmat, intr, width, height, radii,
                v_means2d, v_conics, v_depths, v_means, v_quats, v_scales):
    """Backward of `project_fwd`; Gaussians with radius 0 only get the depth gradient.

    Args:
        v_means2d, v_conics, v_depths: upstream gradients [N, 2], [N, 3], [N] float32.
        v_means, v_quats, v_scales: outputs [N, 3], [N, 4], [N, 3] float32 (overwritten).
    """
    n = means.shape[0]
    fx, fy = intr[0], intr[1]
    lim_x = 1.3 * 0.5 * width / fx
    lim_y = 1.3 * 0.5 * height / fy
    wrot = viewmat[:3, :3].copy()
    for chunk in nb.prange((n + _CHUNK - 1) // _CHUNK):
        s = _scratch()
        t, qn, rot, m, sigma, jac, t2, tmp23, cov = s
        ci = np.empty((2, 2))
        gcon = np.empty((2, 2))
        tmp22 = np.empty((2, 2))
        gcov = np.empty((2, 2))
        g_sigma = np.empty((3, 3))
        g_t2 = np.empty((2, 3))
        g_jac = np.empty((2, 3))
        g_m = np.empty((3, 3))
        g_rot = np.empty((3, 3))
        g_t = np.empty(3)
        for i in range(chunk * _CHUNK, min(n, (chunk + 1) * _CHUNK)):
            for k in range(3):
                v_means[i, k] = wrot[2, k] * v_depths[i]
                v_scales[i, k] = 0.0
            for k in range(4):
                v_quats[i, k] = 0.0
            if radii[i] <= 0:
                continue
            uc, vc, clamp_x, clamp_y = _project_one(means, quats, scales, viewmat, wrot, i,
                                                    fx, fy, lim_x, lim_y, s)
            a, b, c = cov[0, 0], cov[0, 1], cov[1, 1]
            det = a * c - b * b
            ci[0, 0] = c / det
            ci[0, 1] = -b / det
            ci[1, 0] = -b / det
            ci[1, 1] = a / det
            # dL/dconic as a symmetric matrix: the off-diagonal parameter appears twice.
            gcon[0, 0] = v_conics[i, 0]
            gcon[0, 1] = 0.5 * v_conics[i, 1]
            gcon[1, 0] = 0.5 * v_conics[i, 1]
            gcon[1, 1] = v_conics[i, 2]
            _mm(ci, gcon, tmp22)
            _mm(tmp22, ci, gcov)
            for r in range(2):
                for col in range(2):
                    gcov[r, col] = -gcov[r, col]
            # cov = T2 Sigma T2^T: dSigma = T2^T G T2, dT2 = 2 G T2 Sigma (G, Sigma symmetric).
            _mm(gcov, t2, g_t2)
            _mm_at(t2, g_t2, g_sigma)
            _mm(g_t2, sigma, tmp23)
            for r in range(2):
                for col in range(3):
                    tmp23[r, col] *= 2.0
            _mm_bt(tmp23, wrot, g_jac)
            # Sigma = M M^T, M = R S.
            _mm(g_sigma, m, g_m)
            for r in range(3):
                for col in range(3):
                    g_m[r, col] *= 2.0
                    g_rot[r, col] = g_m[r, col] * scales[i, col]
            for col in range(3):
                v_scales[i, col] = g_m[0, col] * rot[0, col] + g_m[1, col] * rot[1, col] + g_m[2, col] * rot[2, col]
            gw, gx, gy, gz = _drot_dquat(qn[0], qn[1], qn[2], qn[3], g_rot)
            norm = math.sqrt(quats[i, 0] ** 2 + quats[i, 1] ** 2 + quats[i, 2] ** 2 + quats[i, 3] ** 2)
            dot = gw * qn[0] + gx * qn[1] + gy * qn[2] + gz * qn[3]
            v_quats[i, 0] = (gw - qn[0] * dot) / norm
            v_quats[i, 1] = (gx - qn[1] * dot) / norm
            v_quats[i, 2] = (gy - qn[2] * dot) / norm
            v_quats[i, 3] = (gz - qn[3] * dot) / norm
            # J00 = fx/tz, J02 = -fx*uc/tz, J11 = fy/tz, J12 = -fy*vc/tz (uc = tx/tz unless clamped).
            tz = t[2]
            tz2 = tz * tz
            g_t[0] = fx / tz * v_means2d[i, 0]
            g_t[1] = fy / tz * v_means2d[i, 1]
            g_t[2] = (v_depths[i] - fx / tz2 * g_jac[0, 0] - fy / tz2 * g_jac[1, 1]
                      + fx * uc / tz2 * g_jac[0, 2] + fy * vc / tz2 * g_jac[1, 2]
                      - fx * t[0] / tz2 * v_means2d[i, 0] - fy * t[1] / tz2 * v_means2d[i, 1])
            if not clamp_x:
                g_u = -fx / tz * g_jac[0, 2]
                g_t[0] += g_u / tz
                g_t[2] -= g_u * t[0] / tz2
            if not clamp_y:
                g_v = -fy / tz * g_jac[1, 2]
                g_t[1] += g_v / tz
                g_t[2] -= g_v * t[1] / tz2
            for k in range(3):
                v_means[i, k] = wrot[0, k] * g_t[0] + wrot[1, k] * g_t[1] + wrot[2, k] * g_t[2]
