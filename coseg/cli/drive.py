"""Running a `coseg.pipeline.Pipeline` from the command line: progress bars and outcome lines.

`drive` checks the whole plan first, then runs it under the run's lock with
Ctrl-C as a polite stop request. It returns 0 when every planned stage is
done and `EXIT_STOPPED` (130) when one was stopped: its checkpoint is kept,
its result is not written, and the stages after it did not run.
"""

from __future__ import annotations

import logging
from typing import Any

from coseg.cli import EXIT_STOPPED

log = logging.getLogger(__name__)


class _Display:
    """How a stage shows its records: `update` per record, `finish` with the last, `close` on an error."""

    def __init__(self) -> None:
        self.bar = None

    def update(self, rec: dict) -> None:
        pass

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def finish(self, last: dict, run) -> None:
        self.close()


class PosesBars(_Display):
    """One tqdm bar per phase of structure from motion (`coseg poses`, the poses stage)."""

    LABELS = {"extract": ("SIFT features", "img"), "match": ("matching", "pair"), "map": ("mapping", "img")}

    def __init__(self) -> None:
        super().__init__()
        self.phase = None

    def update(self, rec: dict) -> None:
        from tqdm import tqdm

        if rec.get("phase") not in self.LABELS:
            return
        if rec["phase"] != self.phase:
            self.close()
            desc, unit = self.LABELS[rec["phase"]]
            self.phase, self.bar = rec["phase"], tqdm(total=rec["total"], desc=desc, unit=unit, dynamic_ncols=True)
        self.bar.update(rec["done"] - self.bar.n)

    def finish(self, last: dict, run) -> None:
        self.close()
        if last.get("phase") == "stopped":
            print(f"stopped: no cameras written (run the same command with --resume to start the poses "
                  f"stage again, in {run.path})")
        elif last.get("phase") == "done":
            from coseg.run import POSES_SCENE

            print(registration_line(last["report"], run.path / POSES_SCENE / "sparse" / "0"))


def registration_line(report: dict, sparse) -> str:
    """What structure from motion recovered, in one line."""
    return (f"registered {report['registered']} of {report['total']} photos, {report['points']} points, "
            f"reprojection error {report['mean_reprojection_error_px']:.2f} px, {report['wall_s']:.0f} s "
            f"({report['cpu_s']:.0f} s CPU) -> {sparse}")


class _BuildBar(_Display):
    """tqdm bar and last line of the build stage."""

    def update(self, rec: dict) -> None:
        from tqdm import tqdm

        if rec.get("event") != "step":
            return
        if self.bar is None:
            self.bar = tqdm(total=rec["iterations"], initial=max(rec["iteration"] - 1, 0), unit="it",
                            dynamic_ncols=True, desc="build")
        if self.bar.total != rec["iterations"]:  # a time budget re-planned the run's end
            self.bar.total = rec["iterations"]
        self.bar.update(rec["iteration"] - self.bar.n)
        post = {"N": str(rec["num_gaussians"])}
        if rec["loss"] is not None:
            post["loss"] = f"{rec['loss']:.4f}"
        if rec["psnr"] is not None:
            post["psnr"] = f"{rec['psnr']:.2f}"
        self.bar.set_postfix(post, refresh=False)

    def finish(self, last: dict, run) -> None:
        self.close()
        if "imported" in last:
            print(f"imported {last['imported']} Gaussians into {run.path}")
            return
        summary = last.get("summary", {})
        if last.get("event") == "stopped":
            print(f"stopped: {summary.get('iterations')} iterations, checkpoint kept, no gaussians.ply written "
                  f"(resume with: coseg build --resume {run.path})")
            return
        print(f"done: {summary.get('iterations')} iterations, {summary.get('num_gaussians')} Gaussians, "
              f"{summary.get('train_time_s', 0):.0f} s, {summary.get('its_per_s', 0):.2f} it/s, "
              f"rasterisation {100 * summary.get('raster_share', 0):.0f}% of the time -> {run.gaussians_path}")


class _SegmentBar(_Display):
    """tqdm bar and last line of the segment stage."""

    def update(self, rec: dict) -> None:
        from tqdm import tqdm

        stage = rec.get("stage")
        if stage in ("features", "spatial") and rec.get("view") == 1:
            log.info("%s: %d views", "2D features" if stage == "features" else "spatial encoder", rec["views"])
        elif stage == "train":
            if self.bar is None:
                self.bar = tqdm(total=rec["iterations"], unit="it", dynamic_ncols=True, desc="segment")
            self.bar.update(rec["iteration"] - self.bar.n)
            self.bar.set_postfix(loss=f"{rec['loss']:.4f}", pix=f"{rec['pix']:.4f}", reg=f"{rec['reg']:.4f}",
                                 refresh=False)

    def finish(self, last: dict, run) -> None:
        self.close()
        if last.get("stage") == "stopped":
            print(f"stopped at iteration {last['iteration']}, checkpoint kept, no segmented.ply written "
                  f"(resume with: coseg segment {run.path} --resume)")
        elif last.get("stage") == "done":
            print(f"segmented: {last.get('kept')} Gaussians in {len(last.get('segments', {}))} segments, "
                  f"{last.get('segmentation_total_s', 0):.0f} s -> {run.path / 'segmented.ply'}")


class _LabelsBar(_Display):
    """tqdm bar and last line of the labels stage (`coseg run` on a scene without labels)."""

    def update(self, rec: dict) -> None:
        from tqdm import tqdm

        if rec.get("stage") != "labels":
            return
        if self.bar is None:
            self.bar = tqdm(total=rec["views"], unit="img", dynamic_ncols=True, desc="labels")
        self.bar.update(rec["view"] - self.bar.n)
        self.bar.set_postfix(masks=rec["masks"], refresh=False)

    def finish(self, last: dict, run) -> None:
        self.close()
        if last.get("stage") == "stopped":
            print(f"stopped; the finished images are kept in {last['folder']} (resume with: coseg run SCENE "
                  f"--out {run.path} --resume)")
        elif last.get("stage") == "done":
            print(f"labels: {last['views']} training images, {last['masks_per_image']} masks per image -> "
                  f"{last['folder']}")


class _EvalPrint(_Display):
    """Prints every metrics section the eval stage computed."""

    def finish(self, last: dict, run) -> None:
        print_metrics(last.get("results", {}))


_DISPLAYS = {"poses": PosesBars, "build": _BuildBar, "labels": _LabelsBar, "segment": _SegmentBar, "eval": _EvalPrint}


def _logs_above_bars():
    """Log lines during a stage (a budget's re-plan) print above the progress bar, not into it.

    Only when the root logger writes to the terminal (the CLI's own handler): tqdm's redirect
    would otherwise add a terminal handler where there was none (an embedding program, pytest).
    """
    import contextlib
    import sys

    from tqdm.contrib.logging import logging_redirect_tqdm

    console = any(isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.stdout, sys.stderr)
                  for h in logging.getLogger().handlers)
    return logging_redirect_tqdm() if console else contextlib.nullcontext()


def drive(pipeline) -> int:
    """Check, then run `pipeline` with progress bars; 0 when done, EXIT_STOPPED when a stage stopped."""
    from coseg.cli.stopping import stop_on_sigint

    pipeline.check()
    run = pipeline.start()
    current, display, last = None, None, {}
    with stop_on_sigint("step") as stop, run.lock(), run.log_to_file(), _logs_above_bars():
        try:
            for stage, rec in pipeline.run(stop):
                if stage is not current:
                    if display is not None:
                        display.finish(last, run)
                    current, display = stage, _DISPLAYS[stage.name]()
                display.update(rec)
                last = rec
        except BaseException:
            if display is not None:
                display.close()  # the error line then starts on a line of its own
            raise
        if display is not None:
            display.finish(last, run)
    if current is not None and current.outcome(last) == "stopped":
        return EXIT_STOPPED
    return 0


def print_metrics(results: dict[str, dict[str, Any]]) -> None:
    """One block per metrics section: ``[section]`` then ``key value`` lines."""
    for section, values in results.items():
        print(f"[{section}]")
        for key, value in values.items():
            if key == "lpips" and value is None:
                print("  LPIPS: not available (no offline weights)")
            else:
                print(f"  {key:<20} {_fmt(value)}")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    if isinstance(value, dict):  # per-class figures: "id:value" pairs
        return " ".join(f"{k}:{_fmt(v)}" for k, v in value.items())
    return str(value)
