"""The stages of `coseg run` (build -> segment -> eval), planned and checked before any starts.

A `Pipeline` turns a `PipelineRequest` into a plan: the `STAGES` it asks for,
in order. `check()` validates every input the planned stages need (the scene
and its labels readable, the options valid, the output folder allowed and in
the right state) before the first stage starts, so a bad label map fails in
a second, not after a half-hour build. `run()` then drives each stage's
generator and stops at the first stage that is stopped: a later stage never
runs on a partial result (docs/data-safety.md).

`coseg build`, `coseg segment` and `coseg run` are pipelines over one, two or
all of the stages. `coseg run PHOTOS` on a folder of bare photos (no scene
layout) plans the ``poses`` stage first: structure from motion writes the
scene into the run (``RUN/scene``, `coseg.run.POSES_SCENE`; the photos are only
read), the later stages read it from there. Bare photos carry no label maps,
so the ``labels`` stage makes zero-shot instance masks after the build (as for
any scene without labels) and the segment stage learns from them; with
``--labels semantic`` (which needs label maps) the segment stage is left out
(one warning line). A new stage is one more `Stage` in `STAGES`: its
``wanted`` says whether the request needs it, ``check`` validates its inputs,
``run`` yields its progress records; ``section`` names its result in the run
folder (`coseg.run.STAGE_FILES`), from which ``done`` follows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from coseg.errors import InputError
from coseg.run import POSES_SCENE, STAGE_FILES, RunDir

log = logging.getLogger(__name__)


@dataclass
class PipelineRequest:
    """What a command asks the pipeline for."""

    out: Path
    """The run folder (created by the build stage, else it must hold a run)."""
    scene: Path | None = None
    """The scene folder; None: the one the run records."""
    build: Any = None
    """`coseg.building.BuildConfig` of the build stage (None: defaults)."""
    segment: Any = None
    """`coseg.segment.config.SegmentConfig` of the segment stage (None: defaults)."""
    import_ply: Path | None = None
    """Build by importing this trained 3DGS .ply instead of training."""
    overwrite: bool = False
    """Run every planned stage afresh, replacing its result (kept in RUN/previous/)."""
    resume: bool = False
    """Continue stages from their checkpoints."""
    strict_resume: bool = True
    """With `resume`: a stage with nothing to resume is an error and a completed stage
    reports its result (one command, one stage). False (`coseg run --resume`): completed
    stages are skipped and stages never started start fresh."""
    backend: str = "auto"
    """Render backend of the eval stage."""
    reading: Any = None
    """`coseg.scene_settings.ReadSettings` for a run this request creates or overwrites
    (None: defaults); an existing run reads its scene as its config.json records."""
    cache: Path | None = None
    """Folder for the scene's undistorted / resized pixels (None: RUN/cache/pixels)."""
    poses: Any = None
    """`coseg.poses.PosesConfig` of the poses stage (None: defaults)."""
    label_generator: Callable[[], Any] | None = None
    """Makes the labels stage's generator (None: `coseg.labelgen.select_generator("auto")`)."""


@dataclass(frozen=True)
class Stage:
    """One step of a pipeline (see the module docstring)."""

    name: str
    """Shown to the user and used in `Pipeline` stage lists: "build", "segment", "eval"."""
    section: str | None
    """Its result's `coseg.run.STAGE_FILES` key and config/metrics section (None: no result file)."""
    wanted: Callable[["Pipeline"], bool]
    """Whether the request needs this stage at all."""
    check: Callable[["Pipeline"], None]
    """Validate this stage's inputs and options; raise a one-line `coseg.errors.CosegError`."""
    run: Callable[["Pipeline", Any, str], Iterator[dict]]
    """(pipeline, stop event, mode "fresh" | "resume") -> progress records."""
    outcome: Callable[[dict], str | None]
    """"done" / "stopped" for a stage's last record, else None."""
    finished: Callable[[RunDir], bool] | None = None
    """Whether the stage's work is done in a run, for a stage without a result file (None: never)."""

    def done(self, run: RunDir) -> bool:
        if not run.config_path.exists():
            return False
        if self.section is None:
            return self.finished is not None and self.finished(run)
        return run.stage_completed(self.section)


@dataclass
class Pipeline:
    """A request and the stages it runs (see the module docstring)."""

    request: PipelineRequest
    stages: Sequence[str] = ("poses", "build", "labels", "segment", "eval")
    """Names of `STAGES` this command may run, in order."""
    scene: Any = None
    """The `coseg.scene.Scene`, read by `check`."""
    run_dir: RunDir | None = None
    """The run, opened or created by `start`."""
    planned: list[Stage] = field(default_factory=list)
    """The stages `check` planned, in order."""
    photos: Path | None = None
    """The request's scene when it is a folder of bare photos (set by `plan`; the poses stage's input)."""
    generator: Any = None
    """The labels stage's label generator, made by `check` when that stage is planned."""

    def plan(self) -> list[Stage]:
        """The stages that will run, in order.

        Resuming leniently drops the leading stages that have completed; once
        one stage runs, every later one runs too (its inputs may change).
        """
        run = RunDir(self.request.out)
        self.photos = _bare_photos(self.request.scene)
        wanted = [STAGES[name] for name in self.stages if STAGES[name].wanted(self)]
        if self.request.resume and not self.request.strict_resume:
            while wanted and wanted[0].done(run):
                log.info("%s: the %s stage has completed; skipping it", run.path, wanted[0].name)
                wanted.pop(0)
        self.planned = wanted
        return wanted

    def check(self) -> None:
        """Validate everything the planned stages need before any starts (one-line errors)."""
        req = self.request
        planned = self.plan()
        names = [s.name for s in planned]
        out = Path(req.out)
        has_run = (out / "config.json").exists()
        builds = bool(planned) and planned[0].name in ("poses", "build")
        if has_run or not builds or (req.resume and req.strict_resume):
            RunDir.open(out)  # format check, or "not a run folder"
        scene_path = req.scene or (_recorded_scene(out) if has_run else None)
        if self.photos is not None:
            scene_path = None if "poses" in names else out / POSES_SCENE  # not made yet / made before
            if scene_path is not None and not _poses_result(out, scene_path):
                raise InputError(f"{self.photos}: photos without camera poses; recover them first with "
                                 f"coseg poses {self.photos} --out SCENE (or coseg run {self.photos} --out RUN)")
            if "segment" in self.stages and not _photos_segment_wanted(self):
                log.warning("%s: bare photos carry no label maps and --labels semantic needs them: this run "
                            "recovers the cameras and builds, without the segment stage (add label maps to "
                            "%s/labels/, then coseg segment %s)", self.photos, out / POSES_SCENE, out)
        elif scene_path is None and not (builds and req.import_ply):
            raise InputError(f"{out / 'config.json'}: records no scene; pass SCENE")
        if scene_path is not None:
            self.scene = self._read_scene(Path(scene_path), recorded=has_run and not (builds and req.overwrite))
        made_by_earlier: set[str] = set()
        for stage in planned:
            stage.check(self)
            if has_run and stage.section is not None and stage.section not in made_by_earlier:
                RunDir(out).check_stage_start(stage.section, overwrite=req.overwrite,
                                              resume=self.mode(stage, RunDir(out)) == "resume")
            if stage.section is not None:
                made_by_earlier.update(STAGE_FILES[stage.section].derived)

    def _read_scene(self, path: Path, recorded: bool):
        """The scene as the run records it (`recorded`), else with the request's settings."""
        from coseg.readers import read_run_scene, read_scene

        req = self.request
        if recorded:
            return read_run_scene(RunDir.open(req.out), path)
        cache = req.cache if req.cache is not None else Path(req.out) / "cache" / "pixels"
        return read_scene(path, settings=req.reading, cache=cache)

    def reading(self) -> dict[str, Any]:
        """config.json's scene settings for a run this pipeline creates (`RunDir.create`)."""
        if self.scene is None:
            return {}
        cache = self.request.cache
        return {**self.scene.reading, "cache": None if cache is None else str(Path(cache).resolve())}

    def build_config(self):
        from coseg.building import BuildConfig

        return self.request.build or BuildConfig()

    def segment_config(self):
        from coseg.segment.config import SegmentConfig

        return self.request.segment or SegmentConfig()

    def mode(self, stage: Stage, run: RunDir) -> str:
        """"fresh" or "resume" for a planned stage of `run`."""
        req = self.request
        if not req.resume or stage.section is None:
            return "fresh"
        if req.strict_resume or stage.done(run) or run.checkpoints_of(stage.section):
            return "resume"
        return "fresh"

    def start(self) -> RunDir:
        """Open the run, or create it when the build stage makes it (after `check`)."""
        req = self.request
        root = self.scene.root if self.scene is not None else None
        if self.photos is not None:
            root = Path(req.out) / POSES_SCENE
        if not (Path(req.out) / "config.json").exists():
            self.run_dir = RunDir.create(req.out, root, reading=self.reading())
        elif req.overwrite:
            self.run_dir = RunDir.create(req.out, root, reading=self.reading(), overwrite=True)
        else:
            self.run_dir = RunDir.open(req.out)
        return self.run_dir

    def run(self, stop=None) -> Iterator[tuple[Stage, dict]]:
        """Run the planned stages in order; yields (stage, record). Ends after a stopped stage.

        A failure before any stage wrote into a run folder `start` created
        removes that folder again (nothing half-made is left).
        """
        run = self.run_dir or self.start()
        try:
            for stage in self.planned:
                last: dict = {}
                for rec in stage.run(self, stop, self.mode(stage, run)):
                    last = rec
                    yield stage, rec
                if stage.outcome(last) != "done":
                    return
        except BaseException:
            run.discard_if_unused()
            raise


def _recorded_scene(out: Path) -> str | None:
    return (RunDir.open(out).read_config().get("scene") or {}).get("path")


def _bare_photos(path: Path | None) -> Path | None:
    """`path` when it is a folder of bare photos, not a scene; else None."""
    from coseg.poses import is_photo_folder

    return Path(path) if path is not None and is_photo_folder(Path(path)) else None


# ---------------------------------------------------------------- poses
def _check_poses(p: Pipeline) -> None:
    from coseg.io.safety import Protected, check_output
    from coseg.poses import list_photos
    from coseg.poses.sfm import check_destination

    req = p.request
    list_photos(p.photos)  # enough photos, one size
    protected = Protected()
    protected.add_folder(p.photos, f"the photos folder {p.photos}")
    check_output(req.out, protected, "--out", kind="folder")
    check_destination(p.photos, Path(req.out) / POSES_SCENE, overwrite=req.overwrite)


def _run_poses(p: Pipeline, stop, mode: str) -> Iterator[dict]:
    """Structure from motion into RUN/scene, then read that scene for the stages after it."""
    from coseg.building.trainer import check_training_scene
    from coseg.poses import PosesConfig, recover_poses
    from coseg.readers import read_scene

    req, run = p.request, p.run_dir
    scene_dir = run.path / POSES_SCENE
    previous = None
    if req.overwrite and run.has_result("poses"):
        previous = run.new_backup("poses") / POSES_SCENE  # the replaced scene is kept, as every stage's
    try:
        for rec in recover_poses(p.photos, scene_dir, req.poses or PosesConfig(), overwrite=req.overwrite,
                                 stop=stop, previous=previous):
            if rec["phase"] == "done":
                report = rec["report"]
            else:
                yield rec
    except KeyboardInterrupt:
        if stop is None or not stop.is_set():
            raise
        yield {"phase": "stopped"}
        return
    for stage in STAGE_FILES["poses"].derived:  # made from the replaced cameras: stale now
        run.retire(stage)
    cache = req.cache if req.cache is not None else run.path / "cache" / "pixels"
    p.scene = read_scene(scene_dir, settings=req.reading, cache=cache)
    check_training_scene(p.scene)
    run.update_config("scene", {"path": str(scene_dir.resolve()), **p.reading()})
    yield {"phase": "done", "report": report}


def _poses_result(out: Path, scene_root: Path) -> bool:
    """Whether `scene_root` is the scene the poses stage of the run in `out` recovered (the run's own result)."""
    run = RunDir(out)
    return (run.config_path.is_file() and run.has_result("poses")
            and Path(scene_root).resolve() == (run.path / POSES_SCENE).resolve())


def _poses_outcome(rec: dict) -> str | None:
    return rec.get("phase") if rec.get("phase") in ("done", "stopped") else None


# ---------------------------------------------------------------- build
def _check_build(p: Pipeline) -> None:
    from coseg.building.trainer import check_training_scene
    from coseg.io.safety import check_output, input_files, inputs_of, scene_inputs

    req = p.request
    protected = input_files([req.import_ply], "the .ply to import") if req.import_ply else inputs_of()
    if p.scene is not None and not _poses_result(req.out, p.scene.root):
        protected = protected | scene_inputs(p.scene) | inputs_of(p.scene.root)
    check_output(req.out, protected, "--out", kind="folder")
    if req.import_ply is not None:
        _check_import(Path(req.import_ply))
    elif p.scene is not None:
        check_training_scene(p.scene)
    if not req.resume:
        RunDir(req.out).check_creatable(p.scene.root if p.scene is not None else None,
                                        p.scene.downscale if p.scene is not None else 1.0,
                                        overwrite=req.overwrite)


def _check_import(path: Path) -> None:
    from coseg.io.ply import read_gaussians_ply

    if not path.is_file():
        raise InputError(f"{path}: file not found")
    if not len(read_gaussians_ply(path)):
        raise InputError(f"{path}: holds no Gaussians")


def _run_build(p: Pipeline, stop, mode: str) -> Iterator[dict]:
    from coseg.building import import_ply, train

    req = p.request
    if req.import_ply is not None:
        g = import_ply(req.import_ply, p.run_dir, overwrite=req.overwrite)
        yield {"event": "done", "imported": len(g), "summary": {"num_gaussians": len(g)}}
        return
    yield from train(p.scene, p.build_config(), p.run_dir, stop, resume=mode == "resume",
                     overwrite=req.overwrite)


def _build_outcome(rec: dict) -> str | None:
    return rec.get("event") if rec.get("event") in ("done", "stopped") else None


# ---------------------------------------------------------------- labels
def _labels_wanted(p: Pipeline) -> bool:
    """A scene without any raw labels gets instance masks generated into RUN/masks (docs/labels.md).

    Not when the scene has label maps or masks, the segmentation settings name a
    source, or RUN/masks holds a completed set (unless the request overwrites).
    """
    from coseg.segment.sources import mask_folder

    config = p.segment_config()
    if config.labels == "semantic" or config.masks is not None:
        return False
    if p.photos is not None and p.scene is None:  # bare photos: no label maps; masks of an earlier run?
        return _masks_to_make(p, Path(p.request.out) / "masks")
    if p.scene is None:  # planning before `check` reads the scene (coseg batch plans alone)
        out = Path(p.request.out)
        has_run = (out / "config.json").exists()
        path = p.request.scene or (_recorded_scene(out) if has_run else None)
        if path is None:
            return False
        p.scene = p._read_scene(Path(path), recorded=has_run and not (p.request.overwrite and "build" in p.stages))
    if any(c.label_path is not None for c in p.scene.train_cameras):
        return False
    folder = mask_folder(p.request.out, p.scene, config)
    if folder is None:
        return True
    return folder == Path(p.request.out) / "masks" and _masks_to_make(p, folder)


def _masks_to_make(p: Pipeline, folder: Path) -> bool:
    """Whether the run's own mask folder is to be (re)made: absent or unfinished, or replaced on request."""
    from coseg.labelgen.write import read_provenance

    mine = read_provenance(folder)
    if not (mine and mine.get("completed")):
        return not (folder.is_dir() and any(folder.glob("*.png")))  # masks coseg did not write: used as they are
    return p.request.overwrite


def _photos_segment_wanted(p: Pipeline) -> bool:
    """Bare photos are segmented unless the request asks for label maps they do not have."""
    return p.segment_config().labels != "semantic"


def _check_labels(p: Pipeline) -> None:
    from coseg.labelgen import select_generator
    from coseg.labelgen.write import check_target

    p.generator = p.request.label_generator() if p.request.label_generator else select_generator("auto")
    check_target(p.scene, Path(p.request.out) / "masks", p.request.overwrite)


def _run_labels(p: Pipeline, stop, mode: str) -> Iterator[dict]:
    from coseg.labelgen.write import generate_labels

    yield from generate_labels(p.scene, p.generator, p.run_dir.path / "masks", p.scene.train_cameras,
                               overwrite=p.request.overwrite, stop_event=stop)


# ---------------------------------------------------------------- segment
def _check_segment(p: Pipeline) -> None:
    from coseg.segment.prepare import collect_labels
    from coseg.segment.sources import check_masks, mask_folder, resolve_source
    from coseg.segment.stage import check_segmentation_scene

    config = p.segment_config()
    if p.scene is None:  # bare photos before the poses stage: the scene is checked once it exists
        if config.masks is not None and not Path(config.masks).is_dir():
            raise InputError(f"--masks {config.masks}: not a folder")
    else:
        check_segmentation_scene(p.scene)
    if p.scene is not None and "labels" not in {s.name for s in p.planned}:  # a labels stage would make them
        if resolve_source(Path(p.request.out), p.scene, config) == "semantic":
            collect_labels(p.scene, p.scene.train_cameras)
        else:
            check_masks(p.scene, mask_folder(Path(p.request.out), p.scene, config), p.scene.train_cameras)
    field = config.field_config  # weight files of the CoSeg field (other fields have none)
    dino_weights, spatial_weights = getattr(field, "dino_weights", None), getattr(field, "spatial_weights", "shipped")
    if dino_weights is not None and not Path(dino_weights).is_file():
        raise InputError(f"--dino-weights {dino_weights}: file not found")
    if spatial_weights not in ("shipped", "random") and not Path(spatial_weights).is_file():
        raise InputError(f"--spatial-weights {spatial_weights}: not \"shipped\", \"random\" or a file")
    if "build" not in {s.name for s in p.planned} and not (Path(p.request.out) / "gaussians.ply").is_file():
        raise InputError(f"{p.request.out}: has no gaussians.ply — run the building stage first "
                         f"(coseg build SCENE --out {p.request.out}, or coseg build --resume {p.request.out})")


def _run_segment(p: Pipeline, stop, mode: str) -> Iterator[dict]:
    from coseg.segment.stage import segment

    yield from segment(p.run_dir.path, p.segment_config(), stop, resume=mode == "resume",
                       overwrite=p.request.overwrite)


def _segment_outcome(rec: dict) -> str | None:
    return rec.get("stage") if rec.get("stage") in ("done", "stopped") else None


# ---------------------------------------------------------------- eval
def evaluate_run(run: RunDir, scene, backend: str = "auto") -> dict[str, dict[str, Any]]:
    """Every metrics section that applies to the run, merged into metrics.json (with an
    ``evaluated`` section stamping the results they were computed from)."""
    from coseg.building.evaluate import METRIC_SECTIONS, load_extensions

    load_extensions()
    results: dict[str, dict[str, Any]] = {}
    for section, evaluate in METRIC_SECTIONS.items():
        values = evaluate(run, scene, backend)
        if values is not None:
            run.update_metrics(section, values)
            results[section] = values
    run.update_metrics("evaluated", {"results": _result_stamps(run)}, replace=True)
    return results


def _run_eval(p: Pipeline, stop, mode: str) -> Iterator[dict]:
    yield {"stage": "eval", "results": evaluate_run(p.run_dir, p.scene, p.request.backend)}


def _result_stamps(run: RunDir) -> dict[str, list[int]]:
    """Size and modification time of every stage result file present (what an evaluation saw)."""
    stamps = {}
    for files in STAGE_FILES.values():
        for name in files.results:
            path = run.path / name
            if path.is_file():
                st = path.stat()
                stamps[name] = [st.st_size, st.st_mtime_ns]
    return stamps


def _eval_finished(run: RunDir) -> bool:
    """The run was evaluated after its latest results (`coseg run --resume` and `coseg batch` skip it)."""
    seen = run.read_metrics().get("evaluated", {}).get("results")
    return seen is not None and seen == _result_stamps(run)


STAGES: dict[str, Stage] = {
    "poses": Stage("poses", "poses", lambda p: p.photos is not None, _check_poses, _run_poses, _poses_outcome),
    "build": Stage("build", "building", lambda p: True, _check_build, _run_build, _build_outcome),
    "labels": Stage("labels", None, _labels_wanted, _check_labels, _run_labels, _segment_outcome),
    "segment": Stage("segment", "segmentation", lambda p: p.photos is None or _photos_segment_wanted(p),
                     _check_segment, _run_segment, _segment_outcome),
    "eval": Stage("eval", None, lambda p: True, lambda p: None, _run_eval, lambda rec: "done", _eval_finished),
}
"""Every stage a pipeline may run, by name (a command picks its list, in this order)."""

