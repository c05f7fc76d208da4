"""Edit operations on Gaussians, GUI-free.

Every operation takes a `Gaussians` model and the row indices it acts on and
returns the new values of those rows (or new rows to append); the document in
`coseg.edit.document` applies them and records what undo needs. Keeping the
maths here, as pure functions, lets the CLI, the studio and the tests share it.

Conventions:
- Rotation angles are degrees about the world x, y, z axes, applied in that
  order (R = Rz · Ry · Rx), about the centre of the selected Gaussians (the
  mean of their positions).
- Recolour is a tint that keeps shading: each Gaussian keeps its brightness
  relative to the selection's mean brightness; its DC colour becomes
  target · (own luminance / mean luminance) and its higher SH bands are scaled
  per channel by the same factor its DC colour changed by, so view-dependent
  highlights follow the new colour.
"""

from __future__ import annotations

import numpy as np

from coseg.edit.sh_rotation import rotate_sh_rest
from coseg.gaussians import SH_C0, Gaussians, rgb_to_sh_dc, sh_dc_to_rgb

_LUMA = np.array([0.2126, 0.7152, 0.0722])


def rotation_matrix_xyz(degrees: tuple[float, float, float]) -> np.ndarray:
    """[3, 3] rotation R = Rz·Ry·Rx for angles in degrees."""
    rx, ry, rz = np.deg2rad(np.asarray(degrees, np.float64))
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """[4] (w, x, y, z) unit quaternion of a rotation matrix."""
    m = np.asarray(R, np.float64)
    t = np.trace(m)
    if t > 0:
        s = np.sqrt(t + 1.0) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k]) * 2
        q = [0.0, 0.0, 0.0, 0.0]
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q = np.asarray(q)
    return q / np.linalg.norm(q)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a ⊗ b of (w, x, y, z) quaternions, broadcasting [..., 4]."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a, np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, np.float64), -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def translate(g: Gaussians, idx: np.ndarray, delta) -> dict[str, np.ndarray]:
    """New `means` rows of the Gaussians `idx` moved by `delta` [3]."""
    return {"means": (g.means[idx] + np.asarray(delta, np.float32)).astype(np.float32)}


def rotate(g: Gaussians, idx: np.ndarray, degrees, center=None) -> dict[str, np.ndarray]:
    """New means, quats and SH rest of `idx` rotated about their centre (or `center`)."""
    R = rotation_matrix_xyz(degrees)
    c = g.means[idx].astype(np.float64).mean(0) if center is None else np.asarray(center, np.float64)
    means = (g.means[idx].astype(np.float64) - c) @ R.T + c
    quats = quat_multiply(matrix_to_quat(R), g.quats[idx])
    return {
        "means": means.astype(np.float32),
        "quats": quats.astype(np.float32),
        "sh_rest": rotate_sh_rest(g.sh_rest[idx], R),
    }


def transform(g: Gaussians, idx: np.ndarray, pivot, rotation=(1.0, 0.0, 0.0, 0.0), scale: float = 1.0,
              translate=(0.0, 0.0, 0.0), with_sh: bool = True) -> dict[str, np.ndarray]:
    """New rows of `idx` under x -> pivot + scale * R (x - pivot) + translate.

    Orientations are pre-multiplied by R, log-scales shifted by log(scale)
    (a uniform scale keeps every Gaussian a scaled copy of itself), and the
    higher SH bands rotated by R so the colour seen from R d equals the old
    colour from d.

    Args:
        g: the model. idx: [M] rows.
        pivot: [3] fixed point of the rotation and scale.
        rotation: (w, x, y, z) quaternion of R (normalised here).
        scale: uniform factor > 0.
        translate: [3] applied after rotation and scale.
        with_sh: False leaves out sh_rest (a drag preview: the viewport draws
            SH degree 0, and the committed step computes it).

    Returns:
        Field name -> [M, ...] new values (means, quats, log_scales[, sh_rest]).
    """
    q = np.asarray(rotation, np.float64)
    q = q / np.linalg.norm(q)
    R = quat_to_matrix(q)
    if not scale > 0:
        raise ValueError(f"scale factor {scale} must be positive")
    c = np.asarray(pivot, np.float64)
    means = (g.means[idx].astype(np.float64) - c) @ (scale * R).T + c + np.asarray(translate, np.float64)
    out = {
        "means": means.astype(np.float32),
        "quats": quat_multiply(q, g.quats[idx]).astype(np.float32),
        "log_scales": (g.log_scales[idx].astype(np.float64) + np.log(scale)).astype(np.float32),
    }
    if with_sh:
        out["sh_rest"] = rotate_sh_rest(g.sh_rest[idx], R)
    return out


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """[3, 3] rotation matrix of a unit (w, x, y, z) quaternion."""
    w, x, y, z = np.asarray(q, np.float64)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def axis_angle_quat(axis, degrees: float) -> np.ndarray:
    """[4] (w, x, y, z) quaternion turning `degrees` about `axis` [3]."""
    a = np.asarray(axis, np.float64)
    a = a / max(np.linalg.norm(a), 1e-12)
    half = np.deg2rad(degrees) / 2
    return np.concatenate([[np.cos(half)], np.sin(half) * a])


def recolor(g: Gaussians, idx: np.ndarray, rgb) -> dict[str, np.ndarray]:
    """New sh_dc and sh_rest of `idx` tinted to `rgb` in [0, 1], keeping shading."""
    target = np.clip(np.asarray(rgb, np.float64), 0.0, 1.0)
    old = np.clip(sh_dc_to_rgb(g.sh_dc[idx]).astype(np.float64), 0.0, 1.0)
    lum = old @ _LUMA
    weights = 1.0 / (1.0 + np.exp(-g.opacity_logits[idx].astype(np.float64)))
    mean_lum = max(float((lum * weights).sum() / max(weights.sum(), 1e-12)), 1e-6)
    new = np.clip(target[None, :] * (lum / mean_lum)[:, None], 0.0, 1.0)
    factor = np.clip((new + 1e-3) / (old + 1e-3), 0.0, 4.0)
    return {
        "sh_dc": rgb_to_sh_dc(new),
        "sh_rest": (g.sh_rest[idx].astype(np.float64) * factor[:, None, :]).astype(np.float32),
    }


def duplicate(g: Gaussians, idx: np.ndarray, offset, new_segment: int | None) -> Gaussians:
    """Copies of the Gaussians `idx`, moved by `offset`, with segment id `new_segment`."""
    part = g.subset(idx)
    part.means = (part.means + np.asarray(offset, np.float32)).astype(np.float32)
    if part.segments is not None and new_segment is not None:
        part.segments = np.full(len(part), new_segment, np.int32)
    return part


def default_duplicate_offset(g: Gaussians, idx: np.ndarray, direction=(1.0, 0.0, 0.0)) -> np.ndarray:
    """Offset that places a copy beside the original along `direction` [3] (a unit vector).

    The copy moves by 1.1 x the extent of the central 98 % of the rows along
    that direction, so a few stray splats do not throw it far away. The
    studio passes the camera's right axis (beside the original on screen,
    at the same depth); the default is +x.
    """
    d = np.asarray(direction, np.float64)
    d = d / max(np.linalg.norm(d), 1e-12)
    if not len(idx):
        return np.zeros(3, np.float32)
    along = g.means[idx].astype(np.float64) @ d
    lo, hi = np.percentile(along, [1, 99])
    return (1.1 * max(float(hi - lo), 1e-3) * d).astype(np.float32)


def legacy_duplicate_offset(g: Gaussians, idx: np.ndarray) -> np.ndarray:
    """The offset of projects saved before duplicates recorded theirs: 1.2 x the x-extent along +x."""
    pts = g.means[idx]
    ext = float(pts[:, 0].max() - pts[:, 0].min()) if len(pts) else 0.0
    return np.array([1.2 * max(ext, 1e-3), 0.0, 0.0], np.float32)


def parse_color(text: str) -> np.ndarray:
    """'#rrggbb' or 'r,g,b' (0-1 or 0-255) -> [3] float in [0, 1]."""
    t = text.strip()
    if t.startswith("#") and len(t) == 7:
        try:
            return np.array([int(t[i:i + 2], 16) for i in (1, 3, 5)], np.float64) / 255.0
        except ValueError:
            pass
    else:
        try:
            vals = np.array([float(v) for v in t.split(",")], np.float64)
        except ValueError:
            vals = np.array([])
        if vals.shape == (3,) and (vals >= 0).all():
            return vals / 255.0 if vals.max() > 1.0 else vals
    raise ValueError(f"colour {text!r} is not '#rrggbb' or 'r,g,b'")


__all__ = ["translate", "rotate", "transform", "recolor", "duplicate", "rotation_matrix_xyz", "matrix_to_quat",
           "quat_multiply", "quat_to_matrix", "axis_angle_quat", "parse_color", "default_duplicate_offset",
           "SH_C0"]
