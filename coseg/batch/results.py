"""The results table of a batch: one row per scene, from its run folder, plus their mean.

Figures come from each run's own ``metrics.json`` (so a re-run that skips
finished stages still reports them); the stage statuses and peak memory of
this command's stage tasks are added. Written as ``results.csv`` and
``results.md`` in the batch's folder after every finished stage; rows of
scenes of earlier batches into the same folder are kept.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from coseg.io.atomic import write_bytes_atomic

COLUMNS = ("scene", "status", "psnr", "ssim", "miou", "accuracy", "gaussians", "build_s", "segment_s",
           "peak_rss_mb", "error")
"""Columns of the table, in order."""

_NUMERIC = ("psnr", "ssim", "miou", "accuracy", "gaussians", "build_s", "segment_s", "peak_rss_mb")


def scene_row(name: str, run: Path, status: str, peak_rss_mb: float | None, error: str) -> dict[str, Any]:
    """A scene's row: its run's metrics, `status` and `error` of this batch, the larger peak memory."""
    try:
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        metrics = {}
    building, segmentation = metrics.get("building", {}), metrics.get("segmentation", {})
    peaks = [v for v in (peak_rss_mb, building.get("peak_rss_mb_train"), building.get("peak_rss_mb_eval"),
                         segmentation.get("peak_rss_mb")) if isinstance(v, (int, float))]
    return {"scene": name, "status": status, "psnr": building.get("psnr"), "ssim": building.get("ssim"),
            "miou": segmentation.get("miou"), "accuracy": segmentation.get("accuracy"),
            "gaussians": building.get("num_gaussians"), "build_s": building.get("train_time_s"),
            "segment_s": segmentation.get("segmentation_total_s"),
            "peak_rss_mb": max(peaks) if peaks else None, "error": error}


def mean_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of every numeric column over the scenes that have it (status: how many are done)."""
    out: dict[str, Any] = {"scene": "mean", "error": ""}
    done = sum(r["status"] == "done" for r in rows)
    out["status"] = f"{done}/{len(rows)} done"
    for col in _NUMERIC:
        values = [float(r[col]) for r in rows if _is_number(r.get(col))]
        out[col] = sum(values) / len(values) if values else None
    return out


def write_tables(folder: Path, rows: list[dict[str, Any]]) -> None:
    """Write results.csv and results.md (rows of other scenes already in results.csv are kept)."""
    names = {r["scene"] for r in rows}
    kept = [r for r in read_rows(folder / "results.csv") if r["scene"] not in names and r["scene"] != "mean"]
    rows = kept + rows
    table = rows + [mean_row(rows)]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow({k: _cell(row.get(k), digits=True) for k in COLUMNS})
    write_bytes_atomic(folder / "results.csv", text.getvalue().encode())
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(row.get(k)).replace("|", "/") for k in COLUMNS) + " |" for row in table]
    write_bytes_atomic(folder / "results.md", ("\n".join(lines) + "\n").encode())


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a results.csv (empty when there is none or it is not one)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return [r for r in rows if r.get("scene")]


def _is_number(value: Any) -> bool:
    try:
        return value not in (None, "") and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _cell(value: Any, digits: bool = False) -> str:
    """A table cell: CSV keeps 6 significant digits (data), markdown a short form (reading)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if digits:
            return f"{value:.6g}"
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)
