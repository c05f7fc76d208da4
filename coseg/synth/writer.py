"""Writing a generated scene in the NeRF layout of design.md, all or nothing.

Everything is written into a hidden staging folder beside the destination,
which is renamed into place only when complete, so the destination never
holds a half-written scene. Poses are OpenGL camera-to-world
(`transform_matrix`), intrinsics are given both as `camera_angle_x` and in
Instant-NGP form (`fl_x fl_y cx cy w h`); `file_path` omits the extension.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from coseg.errors import InputError
from coseg.io.atomic import current_umask, write_bytes_atomic, write_json_atomic
from coseg.io.images import write_png
from coseg.io.safety import os_errors
from coseg.synth.cameras import View, opengl_c2w
from coseg.synth.raycast import Render


def check_target(out: Path, force: bool) -> None:
    """Refuse a destination that is a file, or a non-empty folder without `force`.

    With `force`, a non-empty folder is replaced only if it looks like a scene
    (holds transforms_train.json), so a mistyped path cannot wipe other data.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise InputError(f"{out}: folder is not empty (use --force to replace it)")
        if not (out / "transforms_train.json").exists():
            raise InputError(f"{out}: not a scene folder (no transforms_train.json); refusing to replace it "
                             "even with --force")


@contextlib.contextmanager
def staging(out: Path, force: bool) -> Iterator[Path]:
    """A temporary folder that becomes `out` when the block exits cleanly."""
    out = Path(out).absolute()
    check_target(out, force)
    with os_errors(out, "cannot create the scene folder"):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it 0700; the scene folder follows the umask
        yield tmp
        check_target(out, force)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "scene")
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_view(root: Path, view: View, render: Render, labels: np.ndarray) -> None:
    """Write one view's image, depth, GT class and instance maps and raw label maps under `root`."""
    write_png(root / "images" / f"{view.name}.png", render.rgb)
    write_png(root / "gt" / f"{view.name}.png", render.classes)
    # Instance ids shifted by one so that 0 means "nothing hit" (evaluation of instance masks).
    write_png(root / "gt_instances" / f"{view.name}.png", render.instances + 1)
    write_png(root / "labels" / f"{view.name}.png", labels)
    buf = io.BytesIO()
    np.save(buf, render.depth.astype(np.float32), allow_pickle=False)
    write_bytes_atomic(root / "depth" / f"{view.name}.npy", buf.getvalue())


def write_transforms(root: Path, views: list[View], hfov_deg: float) -> None:
    """Write transforms_train.json and transforms_test.json."""
    v0 = views[0]
    header = {"camera_angle_x": float(np.radians(hfov_deg)),
              "fl_x": v0.fx, "fl_y": v0.fy, "cx": v0.cx, "cy": v0.cy, "w": v0.width, "h": v0.height}
    for split in ("train", "test"):
        frames = [{"file_path": f"images/{v.name}",
                   "transform_matrix": [[float(x) for x in row] for row in opengl_c2w(v.c2w)]}
                  for v in views if v.split == split]
        write_json_atomic(root / f"transforms_{split}.json", {**header, "frames": frames})


def write_classes(root: Path, classes: dict[int, str]) -> None:
    """Write classes.json ({"0": "floor", ...})."""
    write_json_atomic(root / "classes.json", {str(k): v for k, v in sorted(classes.items())})
