"""Scene layouts: a furnished room, an isolated object group, or that group outdoors.

`build_layout(kind, rng)` places procedural items (`coseg.synth.furniture`)
without overlaps (rejection sampling of footprints; deterministic for an rng
state) and returns a flat list of mesh pieces with their semantic class and
instance ids, the lights and the scene bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from coseg.synth import furniture
from coseg.synth.geometry import Item, Piece, Placed, box, footprint, overlaps
from coseg.synth.textures import material

ROOM_CLASSES = ("floor", "wall", "ceiling", "table", "chair", "sofa", "cabinet", "bed", "lamp",
                "vase", "book", "plant", "rug", "picture", "box")
OBJECT_CLASSES = ("background", "table", "chair", "vase", "book", "lamp", "plant")
OUTDOOR_CLASSES = ("sky", "ground", "table", "chair", "vase", "book", "lamp", "plant")
#: Sky colours (linear RGB) at and below the horizon and at the zenith (`Layout.sky_color`).
SKY_HORIZON = (0.96, 0.96, 0.94)
SKY_ZENITH = (0.55, 0.70, 0.92)

# Room furniture standing against a wall: (class, min count, max count).
_WALL_ITEMS = (("bed", 2, 2), ("sofa", 2, 2), ("cabinet", 3, 4), ("lamp", 2, 3), ("plant", 2, 3), ("box", 3, 4))
# Small objects standing on tables, cabinets and boxes.
_SMALL_ITEMS = (("vase", 3, 4), ("book", 6, 8))


@dataclass
class Light:
    """A point light; irradiance falls off as power / (1 + (distance / falloff)^2)."""

    position: np.ndarray
    power: float
    falloff: float


@dataclass
class Layout:
    """Everything the renderer and the label simulator need about a scene."""

    kind: str
    classes: dict[int, str]
    pieces: list[Piece]
    piece_instance: np.ndarray
    """[P] int32 instance id of every piece."""
    instance_class: np.ndarray
    """[I] int32 class id of every instance."""
    instance_boxes: np.ndarray
    """[I, 2, 3] float64 world bounds (min, max) of every instance."""
    bounds: np.ndarray
    """[2, 3] the room interior (or the object group's bounds)."""
    lights: list[Light]
    ambient: float
    background_class: int | None = None
    """Class of pixels that hit nothing (None: every ray hits the room)."""
    sky: str | None = None
    """Colour of rays that hit nothing: None (black), "white" or "gradient" (`sky_color`)."""

    def sky_color(self, directions: np.ndarray) -> np.ndarray:
        """[R, 3] colour of rays along world `directions` [R, 3] that hit nothing.

        "gradient": SKY_HORIZON at and below the horizon, towards SKY_ZENITH with
        elevation (a function of the direction only, as a sky at infinity is).
        """
        if self.sky is None:
            return np.zeros((len(directions), 3))
        horizon = np.broadcast_to(np.asarray(SKY_HORIZON), (len(directions), 3))
        if self.sky == "white":
            return np.ones((len(directions), 3))
        up = np.clip(directions[:, 2] / np.linalg.norm(directions, axis=1), 0.0, 1.0) ** 0.6
        return horizon + (np.asarray(SKY_ZENITH) - horizon) * up[:, None]

    def class_of(self, name: str) -> int:
        return next(k for k, v in self.classes.items() if v == name)


@dataclass
class _Assembler:
    classes: tuple[str, ...]
    pieces: list[Piece] = field(default_factory=list)
    piece_instance: list[int] = field(default_factory=list)
    instance_class: list[int] = field(default_factory=list)

    def add(self, class_name: str, pieces: list[Piece]) -> None:
        inst = len(self.instance_class)
        self.instance_class.append(self.classes.index(class_name))
        self.pieces += pieces
        self.piece_instance += [inst] * len(pieces)

    def layout(self, kind: str, bounds, lights, ambient, background) -> Layout:
        inst = np.asarray(self.piece_instance, np.int32)
        boxes = np.zeros((len(self.instance_class), 2, 3))
        boxes[:, 0], boxes[:, 1] = np.inf, -np.inf
        for p, i in zip(self.pieces, inst):
            boxes[i, 0] = np.minimum(boxes[i, 0], p.vertices.min(0))
            boxes[i, 1] = np.maximum(boxes[i, 1], p.vertices.max(0))
        return Layout(kind, dict(enumerate(self.classes)), self.pieces, inst,
                      np.asarray(self.instance_class, np.int32), boxes, np.asarray(bounds, np.float64),
                      lights, ambient, background)


def build_layout(kind: str, rng: np.random.Generator, sky: str = "gradient") -> Layout:
    """Build the scene of `kind` ("room", "object" or "outdoor"; `sky` only for "outdoor")."""
    if kind == "room":
        return _room(rng)
    if kind == "object":
        return _object_group(rng)
    if kind == "outdoor":
        return _outdoor(rng, sky)
    raise ValueError(f"unknown scene kind {kind!r}")


def _room(rng: np.random.Generator) -> Layout:
    W, D, H = rng.uniform(6.5, 7.5), rng.uniform(5.5, 6.5), rng.uniform(2.6, 2.8)
    asm = _Assembler(ROOM_CLASSES)
    asm.add("floor", [box((0, 0, -0.05), (W + 0.2, D + 0.2, 0.1), material("floor_tiles", rng))])
    plaster = material("plaster", rng)
    accent = int(rng.integers(4))
    for k, (c, s) in enumerate((((0, -D / 2 - 0.05), (W + 0.2, 0.1)), ((W / 2 + 0.05, 0), (0.1, D + 0.2)),
                                ((0, D / 2 + 0.05), (W + 0.2, 0.1)), ((-W / 2 - 0.05, 0), (0.1, D + 0.2)))):
        mat = material("plaster", rng) if k == accent else plaster
        asm.add("wall", [box((c[0], c[1], H / 2), (s[0], s[1], H), mat)])
    asm.add("ceiling", [box((0, 0, H + 0.05), (W + 0.2, D + 0.2, 0.1), material("ceiling", rng))])

    taken: list[tuple[np.ndarray, float]] = []  # (footprint, height) of floor-standing items
    surfaces = []
    for name, lo, hi in _WALL_ITEMS:
        for _ in range(int(rng.integers(lo, hi + 1))):
            placed = _against_wall(furniture.BUILDERS[name](rng), W, D, rng, taken, 0.0)
            if placed is not None:
                asm.add(name, placed.pieces())
                surfaces += _with_used(placed)
    for group in (_dining_group(rng), [furniture.table(rng, low=True)]):
        for placed in _in_middle(group, W, D, rng, taken):
            asm.add(placed.item.class_name, placed.pieces())
            surfaces += _with_used(placed)
    rugs: list[tuple[np.ndarray, float]] = []
    for _ in range(2):
        for placed in _in_middle([furniture.rug(rng)], W, D, rng, rugs):
            asm.add("rug", placed.pieces())
    pictures = [(fp, 0.0) for fp, h in taken if h > 1.05]  # pictures hang above 1.1 m
    for _ in range(int(rng.integers(3, 5))):
        item = furniture.picture(rng)
        placed = _against_wall(item, W, D, rng, pictures, 0.3)
        if placed is not None:
            placed.position[2] = rng.uniform(1.15, H - 0.3 - item.height)
            asm.add("picture", placed.pieces())
    for name, lo, hi in _SMALL_ITEMS:
        for _ in range(int(rng.integers(lo, hi + 1))):
            _on_surface(asm, furniture.BUILDERS[name](rng), surfaces, rng)
    _on_surface(asm, furniture.cone_shade_lamp(rng), surfaces, rng)
    lights = [Light(np.array([sx * W / 4, sy * D / 6, H - 0.3]), 0.55, 2.5) for sx, sy in ((-1, -1), (1, 1))]
    return asm.layout("room", [[-W / 2, -D / 2, 0.0], [W / 2, D / 2, H]], lights, 0.38, None)


def _against_wall(item: Item, W: float, D: float, rng, taken: list, margin: float) -> Placed | None:
    """Place `item` with its back to a random wall; None when 100 tries overlap."""
    for _ in range(100):
        k = int(rng.integers(4))
        theta = k * np.pi / 2
        inward = np.array([-np.sin(theta), np.cos(theta)])
        tangent = np.array([np.cos(theta), np.sin(theta)])
        half_normal, length = (D / 2, W) if k % 2 == 0 else (W / 2, D)
        s = rng.uniform(-length / 2 + item.width / 2 + 0.05, length / 2 - item.width / 2 - 0.05)
        c = -inward * half_normal + inward * (item.depth / 2 + 0.01) + tangent * s
        fp = footprint(item.width, item.depth, theta, c)
        if not any(overlaps(fp, t, 0.1 + margin) for t, _ in taken):
            taken.append((fp, item.height))
            return Placed(item, theta, np.array([c[0], c[1], 0.0]))
    return None


def _dining_group(rng) -> list[Item]:
    """A table followed by 2-4 chairs."""
    return [furniture.table(rng)] + [furniture.chair(rng) for _ in range(int(rng.integers(2, 5)))]


def _group_size(group: list[Item]) -> tuple[float, float]:
    """Footprint (width, depth) of a table with its chairs along its long sides."""
    chairs = group[1:]
    return group[0].width, group[0].depth + 2 * max((ch.depth + 0.02 for ch in chairs), default=0.0)


def _arrange(group: list[Item], theta: float, center) -> list[Placed]:
    """Place a table (first item) at `center`, rotated by `theta`, chairs facing it."""
    tab = group[0]
    R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    out = [Placed(tab, theta, np.array([center[0], center[1], 0.0]))]
    for k, ch in enumerate(group[1:]):
        side = -1 if k % 2 == 0 else 1
        x = 0.0 if len(group) <= 3 else (-1) ** (k // 2) * tab.width / 4
        p = np.asarray(center[:2]) + R @ np.array([x, side * (tab.depth / 2 + ch.depth / 2 + 0.02)])
        out.append(Placed(ch, theta + (0.0 if side < 0 else np.pi), np.array([p[0], p[1], 0.0])))
    return out


def _in_middle(group: list[Item], W: float, D: float, rng, taken: list) -> list[Placed]:
    """Place a table group (or a single item) at a random free spot of the room; [] if none."""
    gw, gd = _group_size(group)
    for _ in range(200):
        theta = rng.uniform(0, 2 * np.pi)
        half = footprint(gw, gd, theta, (0, 0))[2:]
        if half[0] > W / 2 - 0.3 or half[1] > D / 2 - 0.3:
            continue
        c = np.array([rng.uniform(-W / 2 + half[0] + 0.2, W / 2 - half[0] - 0.2),
                      rng.uniform(-D / 2 + half[1] + 0.2, D / 2 - half[1] - 0.2)])
        fp = footprint(gw, gd, theta, c)
        if not any(overlaps(fp, t, 0.15) for t, _ in taken):
            taken.append((fp, max(it.height for it in group)))
            return _arrange(group, theta, c)
    return []


def _object_group(rng: np.random.Generator, asm: _Assembler | None = None) -> Layout:
    """A dining table with chairs, things on it and a plant beside it, on nothing."""
    asm = asm or _Assembler(OBJECT_CLASSES)
    group = [furniture.table(rng), furniture.chair(rng), furniture.chair(rng)]
    surfaces = []
    for placed in _arrange(group, 0.0, (0.0, 0.0)):
        asm.add(placed.item.class_name, placed.pieces())
        surfaces += _with_used(placed)
    for item in (furniture.vase(rng), furniture.book(rng), furniture.book(rng), furniture.cone_shade_lamp(rng)):
        _on_surface(asm, item, surfaces, rng)
    pot = furniture.plant(rng)
    asm.add("plant", Placed(pot, 0.0, np.array([group[0].width / 2 + pot.width / 2 + 0.15, 0.0, 0.0])).pieces())
    layout = asm.layout("object", np.zeros((2, 3)), [], 0.4, 0)  # class 0: background / sky
    group = [i for i, c in enumerate(layout.instance_class) if asm.classes[c] != "ground"]
    layout.bounds = np.stack([layout.instance_boxes[group, 0].min(0), layout.instance_boxes[group, 1].max(0)])
    center = layout.bounds.mean(0)
    layout.lights = [Light(center + 4.0 * np.array([np.cos(a), np.sin(a), 0.8]), 0.5, 4.0)
                     for a in (0.5, 2.6, 4.4)]
    return layout


def _outdoor(rng: np.random.Generator, sky: str) -> Layout:
    """The object group on a 12 m square of paving under an open sky (nothing beyond it)."""
    asm = _Assembler(OUTDOOR_CLASSES)
    asm.add("ground", [box((0.0, 0.0, -0.05), (12.0, 12.0, 0.1), material("floor_tiles", rng))])
    layout = _object_group(rng, asm)
    layout.kind, layout.sky = "outdoor", sky
    return layout


def _with_used(placed: Placed) -> list:
    """The placed item's surfaces, each with an empty list of occupied footprints."""
    return [(*s, []) for s in placed.surfaces()]


def _on_surface(asm: _Assembler, item: Item, surfaces: list, rng) -> None:
    """Stand `item` on a random free spot of a random surface (skipped when none is free)."""
    if not surfaces:
        return
    for _ in range(60):
        center, theta, (hx, hy), z, used = surfaces[int(rng.integers(len(surfaces)))]
        if item.width / 2 > hx or item.depth / 2 > hy:
            continue
        local = np.array([rng.uniform(-hx + item.width / 2, hx - item.width / 2),
                          rng.uniform(-hy + item.depth / 2, hy - item.depth / 2)])
        fp = footprint(item.width, item.depth, 0.0, local)
        if any(overlaps(fp, u, 0.02) for u in used):
            continue
        used.append(fp)
        R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        p = center[:2] + R @ local
        placed = Placed(item, theta + rng.uniform(-0.3, 0.3), np.array([p[0], p[1], z]))
        asm.add(item.class_name, placed.pieces())
        return
