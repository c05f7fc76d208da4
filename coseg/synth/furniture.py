"""Procedural furniture and small objects, each an `Item` in its own frame.

Every builder draws its dimensions and materials from `rng`, so instances of
a class differ in size, proportions and colour. Frames follow
`coseg.synth.geometry`: footprint centred on the origin, standing on z = 0,
front towards +y.
"""

from __future__ import annotations

import numpy as np

from coseg.synth.geometry import Item, Surface, box, cone, cylinder, sphere
from coseg.synth.textures import material


def _legs(w: float, d: float, h: float, t: float, mat) -> list:
    """Four square legs of side `t` and height `h` at the corners of a w x d footprint."""
    xs, ys = (w / 2 - t / 2 - 0.02), (d / 2 - t / 2 - 0.02)
    return [box((sx * xs, sy * ys, h / 2), (t, t, h), mat) for sx in (-1, 1) for sy in (-1, 1)]


def table(rng: np.random.Generator, low: bool = False) -> Item:
    """A table top on four legs (a coffee table when `low`)."""
    w, d = (rng.uniform(0.8, 1.1), rng.uniform(0.5, 0.6)) if low else (rng.uniform(1.1, 1.5), rng.uniform(0.75, 0.9))
    h = rng.uniform(0.4, 0.48) if low else rng.uniform(0.72, 0.78)
    mat = material("wood", rng)
    top = box((0, 0, h - 0.02), (w, d, 0.04), mat)
    return Item("table", [top, *_legs(w, d, h - 0.04, 0.05, mat)], w, d,
                [Surface((0.0, 0.0), (w / 2 - 0.06, d / 2 - 0.06), h)])


def chair(rng: np.random.Generator) -> Item:
    """A seat on four legs with a back rest at the back (-y) edge."""
    w, d, h = rng.uniform(0.42, 0.5), rng.uniform(0.42, 0.5), rng.uniform(0.43, 0.47)
    mat = material("wood" if rng.random() < 0.6 else "painted", rng)
    seat = box((0, 0, h - 0.02), (w, d, 0.04), mat)
    back_h = rng.uniform(0.35, 0.5)
    back = box((0, -d / 2 + 0.02, h + back_h / 2), (w, 0.04, back_h), mat)
    return Item("chair", [seat, back, *_legs(w, d, h - 0.04, 0.04, mat)], w, d)


def sofa(rng: np.random.Generator) -> Item:
    """A fabric sofa: base, back rest, two arm rests and a seat cushion."""
    w, d = rng.uniform(1.5, 2.1), rng.uniform(0.8, 0.95)
    mat = material("fabric", rng)
    arm = 0.16
    parts = [box((0, 0, 0.2), (w, d, 0.4), mat),
             box((0, -d / 2 + 0.1, 0.6), (w, 0.2, 0.4), mat),
             box((0, 0.1, 0.46), (w - 2 * arm - 0.02, d - 0.22, 0.12), mat)]
    parts += [box((s * (w / 2 - arm / 2), 0, 0.3), (arm, d, 0.6), mat) for s in (-1, 1)]
    return Item("sofa", parts, w, d)


def cabinet(rng: np.random.Generator) -> Item:
    """A cabinet body with two doors and handles, usable as a shelf top."""
    w, d, h = rng.uniform(0.6, 1.1), rng.uniform(0.4, 0.5), rng.choice([rng.uniform(0.7, 0.9), rng.uniform(1.4, 1.8)])
    body, door = material("painted", rng), material("wood", rng)
    parts = [box((0, 0, h / 2 + 0.04), (w, d, h - 0.08), body), box((0, 0, 0.02), (w - 0.04, d - 0.04, 0.04), body)]
    for s in (-1, 1):
        parts.append(box((s * w / 4, d / 2 + 0.01, h / 2 + 0.04), (w / 2 - 0.03, 0.02, h - 0.16), door))
        parts.append(box((s * 0.05, d / 2 + 0.03, h * 0.6), (0.02, 0.02, 0.1), material("metal", rng)))
    return Item("cabinet", parts, w, d, [Surface((0.0, 0.0), (w / 2 - 0.05, d / 2 - 0.05), h)])


def bed(rng: np.random.Generator) -> Item:
    """A bed frame, mattress, pillow and a headboard at the back."""
    w, d = rng.uniform(1.0, 1.5), rng.uniform(1.9, 2.1)
    frame, linen = material("wood", rng), material("linen", rng)
    parts = [box((0, 0, 0.15), (w, d, 0.3), frame),
             box((0, 0.02, 0.4), (w - 0.06, d - 0.1, 0.2), linen),
             box((0, -d / 2 + 0.3, 0.55), (w * 0.7, 0.35, 0.1), material("linen", rng)),
             box((0, -d / 2 + 0.03, 0.5), (w, 0.06, 1.0), frame)]
    return Item("bed", parts, w, d)


def lamp(rng: np.random.Generator) -> Item:
    """A floor lamp: base disc, pole and a drum shade."""
    h = rng.uniform(1.3, 1.6)
    r = rng.uniform(0.16, 0.22)
    metal = material("metal", rng)
    parts = [cylinder((0, 0, 0), 0.15, 0.03, metal), cylinder((0, 0, 0.03), 0.015, h - 0.3, metal),
             cylinder((0, 0, h - 0.3), r, 0.3, material("shade", rng))]
    return Item("lamp", parts, 2 * r, 2 * r)


def vase(rng: np.random.Generator) -> Item:
    """A bulbous ceramic vase with a neck."""
    r = rng.uniform(0.06, 0.1)
    mat = material("ceramic", rng)
    parts = [sphere((0, 0, r), r, mat), cylinder((0, 0, 1.6 * r), 0.45 * r, rng.uniform(1.0, 2.2) * r, mat)]
    return Item("vase", parts, 2 * r, 2 * r)


def book(rng: np.random.Generator) -> Item:
    """A closed book lying flat (its cover one colour, pages paper white)."""
    w, d, t = rng.uniform(0.15, 0.24), rng.uniform(0.2, 0.3), rng.uniform(0.025, 0.05)
    cover = material("cover", rng)
    parts = [box((0, 0, t / 2), (w, d, t), cover),
             box((0.006, 0, t / 2), (w - 0.01, d - 0.012, t * 0.8), material("linen", rng))]
    return Item("book", parts, w, d)


def plant(rng: np.random.Generator) -> Item:
    """A potted plant: a tapered pot and a cluster of foliage spheres."""
    r = rng.uniform(0.13, 0.2)
    ph = rng.uniform(0.25, 0.4)
    leaves = material("foliage", rng)
    parts = [cylinder((0, 0, 0), r, ph, material("terracotta", rng))]
    top = ph + rng.uniform(0.15, 0.5)
    parts.append(cylinder((0, 0, ph), 0.02, top - ph, leaves, 8))
    for k in range(int(rng.integers(3, 6))):
        a = k * 2.4 + rng.uniform(0, 0.5)
        off = rng.uniform(0.0, 0.8) * r
        parts.append(sphere((off * np.cos(a), off * np.sin(a), top + rng.uniform(-0.1, 0.15)),
                            r * rng.uniform(0.9, 1.3), leaves))
    reach = np.abs(np.concatenate([p.vertices[:, :2] for p in parts])).max(0)
    return Item("plant", parts, 2 * reach[0], 2 * reach[1])


def rug(rng: np.random.Generator) -> Item:
    """A thin striped rug lying on the floor."""
    w, d = rng.uniform(1.4, 2.2), rng.uniform(1.0, 1.6)
    return Item("rug", [box((0, 0, 0.006), (w, d, 0.012), material("rug", rng))], w, d)


def picture(rng: np.random.Generator) -> Item:
    """A framed painting, hanging with its back at y = -depth / 2.

    Its frame stands vertically in the x-z plane; z = 0 is the painting's
    bottom edge (the placement lifts it to wall height).
    """
    w, h = rng.uniform(0.5, 1.0), rng.uniform(0.4, 0.8)
    frame = material("wood", rng)
    parts = [box((0, 0, h / 2), (w, 0.03, h), frame),
             box((0, 0.01, h / 2), (w - 0.08, 0.025, h - 0.08), material("canvas", rng))]
    return Item("picture", parts, w, 0.04)


def storage_box(rng: np.random.Generator) -> Item:
    """A closed cardboard box with a lid."""
    w, d, h = rng.uniform(0.3, 0.55), rng.uniform(0.3, 0.5), rng.uniform(0.25, 0.45)
    mat = material("cardboard", rng)
    parts = [box((0, 0, h / 2 - 0.01), (w, d, h - 0.02), mat), box((0, 0, h - 0.015), (w + 0.01, d + 0.01, 0.03), mat)]
    return Item("box", parts, w + 0.01, d + 0.01, [Surface((0.0, 0.0), (w / 2 - 0.02, d / 2 - 0.02), h)])


def cone_shade_lamp(rng: np.random.Generator) -> Item:
    """A table lamp with a conical shade, for standing on furniture."""
    metal = material("metal", rng)
    h = rng.uniform(0.3, 0.45)
    parts = [cylinder((0, 0, 0), 0.07, 0.02, metal), cylinder((0, 0, 0.02), 0.012, h - 0.12, metal),
             cone((0, 0, h - 0.16), 0.12, 0.2, material("shade", rng))]
    return Item("lamp", parts, 0.24, 0.24)


#: Builders by class name.
BUILDERS = {"table": table, "chair": chair, "sofa": sofa, "cabinet": cabinet, "bed": bed, "lamp": lamp,
            "vase": vase, "book": book, "plant": plant, "rug": rug, "picture": picture, "box": storage_box}
