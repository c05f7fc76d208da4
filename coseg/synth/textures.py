"""Procedural solid textures: an albedo computed from the 3D hit point.

Textures are functions of the world position only, so every view sees the
same colour at the same surface point (view-independent, which a 3DGS
reconstruction can reproduce exactly). Patterns are deliberately coarse
(periods of centimetres to decimetres) so the 320x240 renders are not
dominated by aliasing. An optional fine detail layer (`detail_layer`, off in
the demo) adds blob-like value noise with cells of `DETAIL_CELL` metres, a
few pixels wide at room distances, so feature matchers (SIFT in `coseg
poses`) find enough keypoints; the coarse patterns alone give only ~150-400
SIFT features per 320x240 view, too few for structure from motion.
"""

from __future__ import annotations

import functools

import numpy as np

from coseg.synth.geometry import Material

#: Pattern names, in the order of their integer codes.
PATTERNS = ("plain", "wood", "tiles", "plaster", "fabric", "stripes", "canvas", "foliage")

# Per surface kind: (pattern, base colours to choose from, second-colour factor, period in m).
_PALETTES: dict[str, tuple[str, list[tuple[float, float, float]], float, float]] = {
    "floor_tiles": ("tiles", [(0.78, 0.76, 0.70), (0.62, 0.64, 0.66), (0.80, 0.72, 0.60)], 0.75, 0.5),
    "wood": ("wood", [(0.55, 0.36, 0.20), (0.68, 0.50, 0.32), (0.40, 0.26, 0.16), (0.75, 0.60, 0.42)], 0.7, 0.05),
    "painted": ("plain", [(0.85, 0.85, 0.82), (0.20, 0.22, 0.25), (0.55, 0.15, 0.12), (0.25, 0.40, 0.55)], 0.9, 0.3),
    "plaster": ("plaster", [(0.88, 0.86, 0.80), (0.80, 0.84, 0.86), (0.86, 0.80, 0.74), (0.74, 0.80, 0.72)], 0.9, 0.4),
    "ceiling": ("plaster", [(0.93, 0.93, 0.91)], 0.95, 0.6),
    "fabric": ("fabric", [(0.30, 0.35, 0.55), (0.55, 0.25, 0.22), (0.35, 0.45, 0.30), (0.50, 0.48, 0.45), (0.65, 0.55, 0.35)], 0.8, 0.04),
    "linen": ("fabric", [(0.90, 0.90, 0.88), (0.85, 0.88, 0.92)], 0.9, 0.03),
    "rug": ("stripes", [(0.60, 0.20, 0.18), (0.20, 0.30, 0.45), (0.70, 0.60, 0.35), (0.30, 0.45, 0.40)], 0.55, 0.15),
    "metal": ("plain", [(0.25, 0.25, 0.27), (0.70, 0.70, 0.72), (0.60, 0.50, 0.30)], 0.95, 0.2),
    "shade": ("fabric", [(0.95, 0.90, 0.75), (0.90, 0.88, 0.85)], 0.92, 0.02),
    "ceramic": ("stripes", [(0.20, 0.45, 0.65), (0.80, 0.30, 0.20), (0.90, 0.88, 0.80), (0.30, 0.55, 0.35), (0.75, 0.65, 0.20)], 0.6, 0.04),
    "cover": ("plain", [(0.70, 0.10, 0.10), (0.10, 0.30, 0.60), (0.10, 0.50, 0.25), (0.85, 0.70, 0.10), (0.45, 0.20, 0.50), (0.90, 0.45, 0.10)], 0.85, 0.1),
    "foliage": ("foliage", [(0.20, 0.45, 0.15), (0.30, 0.55, 0.20), (0.15, 0.35, 0.20)], 0.5, 0.06),
    "terracotta": ("plain", [(0.70, 0.38, 0.24), (0.50, 0.50, 0.52)], 0.9, 0.1),
    "canvas": ("canvas", [(0.80, 0.30, 0.20), (0.20, 0.40, 0.70), (0.90, 0.80, 0.30), (0.30, 0.60, 0.40)], 0.0, 0.08),
    "cardboard": ("plaster", [(0.66, 0.50, 0.32), (0.72, 0.58, 0.40)], 0.85, 0.05),
}


def material(kind: str, rng: np.random.Generator) -> Material:
    """A random material of a surface kind (a key of the palette table).

    The base colour is drawn from the kind's palette and jittered per call, so
    instances of one class differ slightly in colour.
    """
    pattern, colours, factor, period = _PALETTES[kind]
    base = np.asarray(colours[rng.integers(len(colours))]) * rng.uniform(0.9, 1.1, 3)
    base = np.clip(base, 0.02, 0.98)
    if pattern == "canvas":  # a painting blends two unrelated colours
        second = np.asarray(colours[rng.integers(len(colours))])[::-1]
    else:
        second = base * factor
    return Material(pattern, tuple(float(c) for c in base), tuple(float(c) for c in second),
                    float(period * rng.uniform(0.85, 1.15)), int(rng.integers(1 << 30)))


_LATTICE = 64
#: Cell size (metres) of the optional detail layer: ~5 px at 1.5 m with the 70-degree 320 px demo camera.
DETAIL_CELL = 0.03


@functools.cache
def _lattice() -> np.ndarray:
    """[64^3] fixed pseudo-random values in [0, 1): the noise lattice (periodic every 64 cells)."""
    return np.random.default_rng(20240901).random(_LATTICE ** 3)


def lattice_value(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """[N] pseudo-random values in [0, 1) at integer lattice points, shifted per seed."""
    m = _LATTICE - 1
    ix, iy, iz = ix + seed * 13, iy + seed * 29, iz + seed * 7
    return _lattice()[((ix & m) * _LATTICE + (iy & m)) * _LATTICE + (iz & m)]


def value_noise(p: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Smooth 3D value noise in [0, 1] (trilinear with smoothstep weights).

    Args:
        p: [N, 3] positions in noise-cell units.
        seed: [N] integer seeds.

    Returns:
        [N] float64.
    """
    i = np.floor(p)
    f = p - i
    u = f * f * (3.0 - 2.0 * f)
    m = _LATTICE - 1
    i = i.astype(np.int64) + (seed[:, None] * np.array([13, 29, 7]))
    x0, y0, z0 = (i[:, k] & m for k in range(3))
    x1, y1, z1 = (x0 + 1) & m, (y0 + 1) & m, (z0 + 1) & m
    table = _lattice()
    xs = (x0 * (_LATTICE * _LATTICE), x1 * (_LATTICE * _LATTICE))
    ys = (y0 * _LATTICE, y1 * _LATTICE)
    ux, uy, uz = u[:, 0], u[:, 1], u[:, 2]
    out = np.zeros(len(p))
    for a, wx in ((xs[0], 1.0 - ux), (xs[1], ux)):
        for b, wy in ((ys[0], 1.0 - uy), (ys[1], uy)):
            base = a + b
            out += wx * wy * (table[base + z0] * (1.0 - uz) + table[base + z1] * uz)
    return out


def fbm(p: np.ndarray, seed: np.ndarray, octaves: int = 2) -> np.ndarray:
    """[N] fractal sum of `octaves` value-noise layers, normalised to [0, 1]."""
    total, amp, norm = np.zeros(len(p)), 1.0, 0.0
    for o in range(octaves):
        total += amp * value_noise(p * (2.0 ** o), seed + 7919 * o)
        norm += amp
        amp *= 0.5
    return total / norm


def albedo(points: np.ndarray, pattern: np.ndarray, color_a: np.ndarray, color_b: np.ndarray,
           scale: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Evaluate the materials at surface points.

    Args:
        points: [N, 3] world positions.
        pattern: [N] pattern codes (indices into PATTERNS).
        color_a, color_b: [N, 3] the materials' two colours.
        scale: [N] pattern periods in metres.
        seed: [N] integer noise seeds.

    Returns:
        [N, 3] float64 albedo in [0, 1].
    """
    out = np.empty((len(points), 3))
    for code, name in enumerate(PATTERNS):
        sel = np.flatnonzero(pattern == code)
        if sel.size == 0:
            continue
        p, s, sd = points[sel], scale[sel][:, None], seed[sel]
        a, b = color_a[sel], color_b[sel]
        w = _PATTERN_FUNCS[name](p / s, sd)
        out[sel] = a + (b - a) * w
        out[sel] *= (0.94 + 0.06 * value_noise(p / (4.0 * s), sd + 17))[:, None]
    return np.clip(out, 0.0, 1.0)


def detail_layer(points: np.ndarray, seed: np.ndarray, strength: float) -> np.ndarray:
    """[N] albedo factor of the fine detail layer: 1 - strength/2 .. 1 + strength/2.

    Args:
        points: [N, 3] world positions.
        seed: [N] integer noise seeds (of the surfaces' materials).
        strength: contrast of the layer, 0 (off) to 1.
    """
    return 1.0 + strength * (value_noise(points / DETAIL_CELL, seed + 101) - 0.5)


def _plain(q, sd):
    return (0.3 * value_noise(q, sd))[:, None]


def _wood(q, sd):
    ang = sd.astype(np.float64) * 2.399963
    along = q[:, 0] * np.cos(ang) + q[:, 1] * np.sin(ang) + 0.3 * q[:, 2]
    rings = 0.5 + 0.5 * np.sin(2 * np.pi * along + 5.0 * fbm(q * 0.15, sd))
    return (rings ** 3)[:, None]


def _tiles(q, sd):
    cx, cy = np.floor(q[:, 0]), np.floor(q[:, 1])
    checker = (cx + cy) % 2
    shade = 0.25 * lattice_value(cx.astype(np.int64), cy.astype(np.int64), np.zeros_like(sd), sd)
    fx, fy = q[:, 0] - cx, q[:, 1] - cy
    grout = (np.minimum(np.minimum(fx, 1 - fx), np.minimum(fy, 1 - fy)) < 0.03).astype(np.float64)
    return np.clip(0.8 * checker + shade + 1.5 * grout, 0.0, 1.5)[:, None]


def _plaster(q, sd):
    return (0.6 * fbm(q, sd, 3))[:, None]


def _fabric(q, sd):
    weave = np.sin(2 * np.pi * (q[:, 0] + q[:, 1])) * np.sin(2 * np.pi * (q[:, 2] + q[:, 0] - q[:, 1]))
    return (0.35 + 0.35 * weave + 0.3 * value_noise(q * 0.2, sd))[:, None]


def _stripes(q, sd):
    axis = sd % 3
    coord = q[np.arange(len(q)), axis]
    return (np.floor(coord) % 2 * 0.9 + 0.1 * value_noise(q, sd))[:, None]


def _canvas(q, sd):
    return np.clip((fbm(q * 0.5, sd, 3) - 0.3) * 2.5, 0.0, 1.0)[:, None]


def _foliage(q, sd):
    return fbm(q, sd, 3)[:, None] ** 1.5


_PATTERN_FUNCS = {"plain": _plain, "wood": _wood, "tiles": _tiles, "plaster": _plaster,
                  "fabric": _fabric, "stripes": _stripes, "canvas": _canvas, "foliage": _foliage}
