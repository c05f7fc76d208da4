"""Opening what the user drops on the studio: a .ply/.splat, a run folder or a scene folder.

- A `.ply` (any 3DGS layout; a `segment` property gives the segments) or `.splat`.
- A run folder: `segmented.ply` if present, else `gaussians.ply`; the scene
  path from `config.json` (its cameras become snap targets) and class names
  from the scene's or the run's `classes.json`.
- A scene folder: its initial points (`points3d.ply` or COLMAP points) shown as
  small Gaussians until a run exists; the note says so.

Every failure is a `coseg.errors.CosegError` (or ValueError/OSError from a
reader) with a one-line message; the window shows it in a dialog. An empty
model (a 0-vertex PLY) is such an error; Gaussians with NaN or inf values are
dropped and the status bar says how many (docs/data-safety.md).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coseg.errors import InputError
from coseg.gaussians import Gaussians
from coseg.scene import Scene, read_classes_json

log = logging.getLogger(__name__)
FEATURE_PREFIXES = ("feature_", "feat_")


@dataclass
class LoadedModel:
    """What the studio shows after opening a path."""

    path: Path
    kind: str
    """"ply" | "run" | "scene"."""
    gaussians: Gaussians
    scene: Scene | None = None
    classes: dict[int, str] = field(default_factory=dict)
    note: str = ""
    """A line for the status bar (e.g. "showing the scene's points until a run exists")."""

    @property
    def features(self) -> np.ndarray | None:
        """[N, C] per-Gaussian features of the loaded model (see `gaussian_features`)."""
        return gaussian_features(self.gaussians)


def gaussian_features(gaussians: Gaussians) -> np.ndarray | None:
    """[N, C] features from `feature_*` / `feat_*` PLY properties (C >= 3), or None."""
    names = [k for k in gaussians.extra if k.startswith(FEATURE_PREFIXES)]
    names.sort(key=lambda k: (k.rsplit("_", 1)[0], int(k.rsplit("_", 1)[1]) if k.rsplit("_", 1)[1].isdigit() else -1))
    if len(names) < 3:
        return None
    return np.stack([gaussians.extra[k] for k in names], axis=1)


def load_path(path: str | Path) -> LoadedModel:
    """Open a PLY/splat file, a run folder or a scene folder (see module docstring)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_file():
        from coseg.edit.io import load_gaussians

        g, dropped = _finite(load_gaussians(path, keep_nonfinite=True), path)
        classes = _classes_near(path.parent)
        return LoadedModel(path, "ply", g, classes=classes, note=f"{len(g):,} Gaussians from {path.name}{dropped}")
    if (path / "segmented.ply").exists() or (path / "gaussians.ply").exists():
        return _load_run(path)
    return _load_scene(path)


def _finite(g: Gaussians, path: Path) -> tuple[Gaussians, str]:
    """The data-safety policy for NaN / inf Gaussians (dropped, with a warning), and a note saying so."""
    bad = int((~g.finite_mask()).sum())
    if not bad:
        return g, ""
    return g.without_nonfinite(str(path)), f"; {bad:,} Gaussians with NaN or inf values were dropped"


def _classes_near(folder: Path) -> dict[int, str]:
    p = folder / "classes.json"
    return read_classes_json(p) if p.exists() else {}


def _load_run(path: Path) -> LoadedModel:
    from coseg.edit.io import load_gaussians

    g, dropped = _finite(load_gaussians(path, keep_nonfinite=True), path)
    scene = None
    classes = _classes_near(path)
    note = f"run folder {path.name}: {len(g):,} Gaussians{dropped}"
    scene_path = _scene_path_of_run(path)
    if scene_path is not None:
        try:
            from coseg.readers import read_run_scene
            from coseg.run import RunDir

            scene = read_run_scene(RunDir(path))  # the cameras the run was built with
            classes = classes or scene.classes
        except (OSError, ValueError, InputError) as e:
            note += f" (scene not opened: {e})"
    if g.segments is None:
        note += "; not segmented yet"
    return LoadedModel(path, "run", g, scene=scene, classes=classes, note=note)


def _scene_path_of_run(path: Path) -> Path | None:
    cfg = path / "config.json"
    if not cfg.exists():
        return None
    try:
        scene = json.loads(cfg.read_text()).get("scene") or {}
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{cfg}: cannot read ({e})") from e
    return Path(scene["path"]) if scene.get("path") else None


def _load_scene(path: Path) -> LoadedModel:
    from coseg.readers import read_scene

    scene = read_scene(path)
    if scene.points_xyz is None or not len(scene.points_xyz):
        raise InputError(f"{path}: the scene has no initial points (points3d.ply) to show; "
                         "build a run first (coseg build)")
    xyz = scene.points_xyz
    rgb = scene.points_rgb if scene.points_rgb is not None else np.full_like(xyz, 0.7)
    lo, hi = np.percentile(xyz, [2, 98], axis=0)
    # Spacing of points spread evenly over the bounding box's surface: a
    # size that closes small gaps without blurring detail.
    area = 2 * ((hi - lo)[[0, 1, 2]] * (hi - lo)[[1, 2, 0]]).sum()
    spacing = float(np.sqrt(max(area, 1e-12) / len(xyz)))
    g = Gaussians.from_points(xyz, rgb, scale=0.35 * spacing, opacity=0.9)
    note = (f"scene {path.name}: showing its {len(xyz):,} initial points as small Gaussians "
            "until a run exists")
    return LoadedModel(path, "scene", g, scene=scene, classes=scene.classes, note=note)


def feature_colors(features: np.ndarray) -> np.ndarray:
    """[N, C] features -> [N, 3] float32 colours: the first three principal components.

    Each component is scaled to [0, 1] by its 1st and 99th percentiles.
    """
    x = features.astype(np.float64) - features.mean(0)
    rng = np.random.default_rng(0)
    sample = x[rng.choice(len(x), min(len(x), 20000), replace=False)]
    _, _, vt = np.linalg.svd(sample, full_matrices=False)
    proj = x @ vt[:3].T
    lo, hi = np.percentile(proj, [1, 99], axis=0)
    return np.clip((proj - lo) / np.maximum(hi - lo, 1e-9), 0, 1).astype(np.float32)


def random_model(n: int, seed: int = 0, segments: int = 20) -> LoadedModel:
    """A seeded benchmark model: N anisotropic Gaussians in [-1, 1]^3 (path "random:N").

    Scales are log-uniform in [0.003, 0.02], orientations uniform, opacities
    in [0.3, 1], colours uniform, segment ids in 0..segments-1 by x-slabs
    (so segments are spatially coherent).
    """
    rng = np.random.default_rng(seed)
    means = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    g = Gaussians.from_points(means, rng.uniform(0, 1, (n, 3)))
    g.log_scales = rng.uniform(np.log(0.003), np.log(0.02), (n, 3)).astype(np.float32)
    g.quats = rng.normal(size=(n, 4)).astype(np.float32)
    g.opacity_logits = rng.uniform(-0.85, 4.0, n).astype(np.float32)
    g.segments = np.minimum(((means[:, 0] + 1) / 2 * segments).astype(np.int32), segments - 1)
    return LoadedModel(Path(f"random:{n}"), "ply", g, note=f"random benchmark model, {n:,} Gaussians")
