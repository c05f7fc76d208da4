"""The Gaussian model: parameters of N 3D Gaussians as numpy arrays.

Storage follows the INRIA 3DGS PLY layout (raw, pre-activation values) so a
PLY round trip is bit-exact:

- ``means``      [N, 3] float32, world positions.
- ``quats``      [N, 4] float32, rotation as (w, x, y, z), unnormalised.
- ``log_scales`` [N, 3] float32, log of the per-axis standard deviations.
- ``opacity_logits`` [N] float32, logit of the opacity.
- ``sh_dc``      [N, 3] float32, degree-0 SH coefficient per colour channel.
- ``sh_rest``    [N, K, 3] float32, higher SH bands, K = (degree+1)^2 - 1
  (0, 3, 8 or 15), coefficient-major with RGB last.
- ``segments``   [N] int32 or None, the segment id of every Gaussian.
- ``extra``      name -> [N] float32 for PLY properties we do not interpret,
  kept so they survive a round trip.

Colour of a Gaussian seen from direction d is ``0.5 + SH(d)``; its DC-only
colour is ``0.5 + C0 * sh_dc`` with ``C0 = 0.28209479177387814``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

SH_C0 = 0.28209479177387814


def sh_degree_from_rest(k: int) -> int:
    """SH degree from the number of rest coefficients per channel (0, 3, 8, 15)."""
    for deg in range(4):
        if (deg + 1) ** 2 - 1 == k:
            return deg
    raise ValueError(f"{k} rest SH coefficients per channel is not a degree 0-3 layout")


def rgb_to_sh_dc(rgb: np.ndarray) -> np.ndarray:
    """Inverse of the DC colour mapping: rgb in [0, 1] -> DC coefficient."""
    return ((np.asarray(rgb, np.float32) - 0.5) / SH_C0).astype(np.float32)


def sh_dc_to_rgb(dc: np.ndarray) -> np.ndarray:
    """DC coefficient -> rgb (unclamped)."""
    return (0.5 + SH_C0 * np.asarray(dc, np.float32)).astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))).astype(np.float32)


def logit(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), eps, 1.0 - eps)
    return np.log(p / (1.0 - p)).astype(np.float32)


@dataclass
class Gaussians:
    """N Gaussians in the INRIA parameterisation (see module docstring)."""

    means: np.ndarray
    quats: np.ndarray
    log_scales: np.ndarray
    opacity_logits: np.ndarray
    sh_dc: np.ndarray
    sh_rest: np.ndarray
    segments: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        checks = {
            "means": (self.means, (n, 3)),
            "quats": (self.quats, (n, 4)),
            "log_scales": (self.log_scales, (n, 3)),
            "opacity_logits": (self.opacity_logits, (n,)),
            "sh_dc": (self.sh_dc, (n, 3)),
        }
        for name, (arr, shape) in checks.items():
            if arr.shape != shape:
                raise ValueError(f"Gaussians.{name} has shape {arr.shape}, expected {shape}")
        if self.sh_rest.ndim != 3 or self.sh_rest.shape[0] != n or self.sh_rest.shape[2] != 3:
            raise ValueError(f"Gaussians.sh_rest has shape {self.sh_rest.shape}, expected ({n}, K, 3)")
        sh_degree_from_rest(self.sh_rest.shape[1])
        if self.segments is not None and self.segments.shape != (n,):
            raise ValueError(f"Gaussians.segments has shape {self.segments.shape}, expected ({n},)")

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_rest(self.sh_rest.shape[1])

    @property
    def scales(self) -> np.ndarray:
        """[N, 3] linear scales (standard deviations)."""
        return np.exp(self.log_scales).astype(np.float32)

    @property
    def opacities(self) -> np.ndarray:
        """[N] opacities in (0, 1)."""
        return sigmoid(self.opacity_logits)

    @property
    def colors(self) -> np.ndarray:
        """[N, 3] view-independent (DC) colours, clipped to [0, 1]."""
        return np.clip(sh_dc_to_rgb(self.sh_dc), 0.0, 1.0)

    @property
    def sh_coeffs(self) -> np.ndarray:
        """[N, (deg+1)^2, 3] all SH coefficients, DC first."""
        return np.concatenate([self.sh_dc[:, None, :], self.sh_rest], axis=1)

    # ------------------------------------------------------------ building
    @classmethod
    def empty(cls, sh_degree: int = 0) -> "Gaussians":
        k = (sh_degree + 1) ** 2 - 1
        z = np.zeros
        return cls(z((0, 3), np.float32), z((0, 4), np.float32), z((0, 3), np.float32),
                   z((0,), np.float32), z((0, 3), np.float32), z((0, k, 3), np.float32))

    @classmethod
    def from_points(cls, xyz: np.ndarray, rgb: np.ndarray, scale: float | np.ndarray = 0.01,
                    opacity: float = 0.1, sh_degree: int = 0) -> "Gaussians":
        """Isotropic Gaussians at points with colours rgb in [0, 1]."""
        n = len(xyz)
        scale = np.broadcast_to(np.asarray(scale, np.float32).reshape(-1, 1), (n, 1))
        quats = np.zeros((n, 4), np.float32)
        quats[:, 0] = 1.0
        return cls(
            means=np.ascontiguousarray(xyz, dtype=np.float32),
            quats=quats,
            log_scales=np.repeat(np.log(np.maximum(scale, 1e-8)), 3, axis=1).astype(np.float32),
            opacity_logits=np.full(n, logit(np.array([opacity]))[0], np.float32),
            sh_dc=rgb_to_sh_dc(rgb),
            sh_rest=np.zeros((n, (sh_degree + 1) ** 2 - 1, 3), np.float32),
        )

    def subset(self, index: np.ndarray) -> "Gaussians":
        """A new model holding the Gaussians selected by a bool mask or index array."""
        return Gaussians(
            means=self.means[index], quats=self.quats[index], log_scales=self.log_scales[index],
            opacity_logits=self.opacity_logits[index], sh_dc=self.sh_dc[index],
            sh_rest=self.sh_rest[index],
            segments=None if self.segments is None else self.segments[index],
            extra={k: v[index] for k, v in self.extra.items()},
        )

    def copy(self) -> "Gaussians":
        return Gaussians(
            **{f.name: getattr(self, f.name).copy() for f in dataclasses.fields(self)
               if f.name not in ("segments", "extra")},
            segments=None if self.segments is None else self.segments.copy(),
            extra={k: v.copy() for k, v in self.extra.items()},
        )

    @staticmethod
    def concatenate(parts: list["Gaussians"]) -> "Gaussians":
        """Concatenate models with the same SH degree; segments kept if all have them."""
        if not parts:
            raise ValueError("nothing to concatenate")
        seg = None
        if all(p.segments is not None for p in parts):
            seg = np.concatenate([p.segments for p in parts])
        extra_keys = set.intersection(*(set(p.extra) for p in parts))
        return Gaussians(
            means=np.concatenate([p.means for p in parts]),
            quats=np.concatenate([p.quats for p in parts]),
            log_scales=np.concatenate([p.log_scales for p in parts]),
            opacity_logits=np.concatenate([p.opacity_logits for p in parts]),
            sh_dc=np.concatenate([p.sh_dc for p in parts]),
            sh_rest=np.concatenate([p.sh_rest for p in parts]),
            segments=seg,
            extra={k: np.concatenate([p.extra[k] for p in parts]) for k in sorted(extra_keys)},
        )

    def finite_mask(self) -> np.ndarray:
        """[N] bool: the Gaussians whose parameters are all finite (no NaN or inf)."""
        ok = np.ones(len(self), bool)
        for name in ("means", "quats", "log_scales", "sh_dc"):
            ok &= np.isfinite(getattr(self, name)).all(axis=1)
        ok &= np.isfinite(self.opacity_logits)
        if self.sh_rest.shape[1]:
            ok &= np.isfinite(self.sh_rest).all(axis=(1, 2))
        return ok

    def without_nonfinite(self, source: str = "Gaussians") -> "Gaussians":
        """The project's policy for NaN / inf parameters (docs/data-safety.md): drop those
        Gaussians, with one warning giving the count. Returns self when all are finite."""
        ok = self.finite_mask()
        if ok.all():
            return self
        log.warning("%s: dropped %d of %d Gaussians with NaN or inf parameters", source, int((~ok).sum()), len(ok))
        return self.subset(ok)

    def check_writable(self, path) -> None:
        """Writers never write NaN / inf: raise a one-line `CosegError` naming `path` if any is present."""
        bad = int((~self.finite_mask()).sum())
        if bad:
            from coseg.errors import CosegError

            raise CosegError(f"{path}: refusing to write {bad} of {len(self)} Gaussians with NaN or inf "
                             f"parameters (a diverged model?); drop them first (Gaussians.without_nonfinite)")
