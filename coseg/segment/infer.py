"""From a field's per-Gaussian logits to segment ids and the run's output files.

Every field gives logits [N_kept, C] for its kept Gaussians (`Field.infer`);
the segment id of a Gaussian is the label id of its arg-max class, so
segments are semantic classes with the input label ids.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


def fill_from_nearest(values: np.ndarray, xyz: np.ndarray, have: np.ndarray) -> int:
    """Rows of `values` where `have` is False take the row of their nearest (by `xyz`) row that has one.

    Returns:
        the number of rows filled (in place).
    """
    missing = ~have
    if not missing.any():
        return 0
    from scipy.spatial import cKDTree

    _, nearest = cKDTree(xyz[have]).query(xyz[missing], k=1)
    values[missing] = values[have][nearest]
    return int(missing.sum())


def write_segment_outputs(run, scene, gaussians, kept: np.ndarray, class_ids: np.ndarray, logits: np.ndarray,
                          info: dict, field: str, out_dir: Path | None = None,
                          names: dict[int, str] | None = None) -> dict:
    """Write segmentation.npz (logits [N_kept, C], kept, class ids), segmented.ply and classes.json into
    `out_dir` (the staging folder of `RunDir.writing_results`; default the run folder itself).

    classes.json names the segments: `names` (e.g. "object 7" for associated instance masks), else
    the scene's classes (``{}`` when it has none, so the studio falls back to the scene's).

    `gaussians` are in the run's working frame; segmented.ply is written in the input's frame.

    Returns:
        the stage's summary: `info` plus the field and the Gaussians per segment.
    """
    from coseg.io.atomic import atomic_open
    from coseg.io.ply import write_gaussians_ply

    out_dir = Path(run.path if out_dir is None else out_dir)
    segments = class_ids[np.argmax(logits, axis=1)].astype(np.int32)
    with atomic_open(out_dir / "segmentation.npz", "wb") as f:
        buf = io.BytesIO()
        np.savez(buf, logits=logits, kept=kept.astype(np.int64), class_ids=class_ids)
        f.write(buf.getvalue())
    from coseg.normalize import to_input_frame

    segmented = to_input_frame(run, gaussians.subset(kept))
    segmented.segments = segments
    write_gaussians_ply(segmented, out_dir / "segmented.ply")
    ids, counts = np.unique(segments, return_counts=True)
    names = names or scene.classes
    from coseg.io.atomic import write_json_atomic

    write_json_atomic(out_dir / "classes.json", {str(int(i)): names[int(i)] for i in class_ids if int(i) in names})
    summary = dict(info)
    summary["field"] = field
    summary["segments"] = {int(i): {"class": names.get(int(i), str(int(i))), "gaussians": int(k)}
                           for i, k in zip(ids, counts)}
    return summary
