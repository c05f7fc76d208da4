"""Rotating spherical-harmonic colour coefficients (3DGS real SH basis, degrees 1-3).

A rotated Gaussian must look, from direction R·d, the way it looked from d:
f'(d) = f(Rᵀ d). Each SH band l is closed under rotation, so the new band
coefficients are a (2l+1)x(2l+1) linear map of the old ones. We obtain that
map exactly by evaluating the band's basis at a fixed set of directions d_k
and at Rᵀ d_k and solving the (overdetermined, full-rank) least-squares system
A·D = B; this avoids hand-deriving Wigner matrices for the 3DGS sign and
ordering conventions and is exact up to float rounding.
"""

from __future__ import annotations

import numpy as np

C1 = 0.4886025119029199
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005,
      -1.0925484305920792, 0.5462742152960396)
C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
      -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


def sh_basis(dirs: np.ndarray, degree: int) -> np.ndarray:
    """Real SH basis of the 3DGS code, bands 1..degree.

    Args:
        dirs: [P, 3] unit directions.
        degree: 1..3.

    Returns:
        [P, (degree+1)^2 - 1] basis values (DC excluded).
    """
    x, y, z = dirs[:, 0], dirs[:, 1], dirs[:, 2]
    cols = [-C1 * y, C1 * z, -C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        cols += [C2[0] * xy, C2[1] * yz, C2[2] * (2 * zz - xx - yy), C2[3] * xz, C2[4] * (xx - yy)]
    if degree >= 3:
        cols += [
            C3[0] * y * (3 * xx - yy),
            C3[1] * xy * z,
            C3[2] * y * (4 * zz - xx - yy),
            C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            C3[4] * x * (4 * zz - xx - yy),
            C3[5] * z * (xx - yy),
            C3[6] * x * (xx - 3 * yy),
        ]
    return np.stack(cols, axis=1)


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)


def sh_rotation_matrix(R: np.ndarray, degree: int) -> np.ndarray:
    """Block-diagonal map M with rest' = M @ rest (per colour channel).

    Args:
        R: [3, 3] rotation matrix applied to the Gaussian.
        degree: SH degree 0..3.

    Returns:
        [K, K] float64 with K = (degree+1)^2 - 1.
    """
    k = (degree + 1) ** 2 - 1
    if degree == 0:
        return np.zeros((0, 0))
    dirs = _fibonacci_sphere(64)
    R = np.asarray(R, np.float64)
    # f'(d) = f(R^T d): evaluate the basis at R^T d for each sample direction d.
    A = sh_basis(dirs, degree)                  # [P, K] basis at d
    B = sh_basis(dirs @ R, degree)              # [P, K] basis at R^T d (rows: d^T R = (R^T d)^T)
    M = np.zeros((k, k))
    start = 0
    for l in range(1, degree + 1):
        n = 2 * l + 1
        sl = slice(start, start + n)
        # A[:, sl] @ D = B[:, sl]  =>  c' = D @ c
        D, *_ = np.linalg.lstsq(A[:, sl], B[:, sl], rcond=None)
        M[sl, sl] = D
        start += n
    return M


def rotate_sh_rest(sh_rest: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Rotate higher-band SH coefficients [N, K, 3] of Gaussians rotated by R."""
    k = sh_rest.shape[1]
    if k == 0:
        return sh_rest.copy()
    degree = {3: 1, 8: 2, 15: 3}[k]
    M = sh_rotation_matrix(R, degree)
    return np.einsum("ij,njc->nic", M, sh_rest.astype(np.float64)).astype(sh_rest.dtype)
