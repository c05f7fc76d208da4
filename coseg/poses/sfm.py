"""Structure from motion with pycolmap on the CPU: photos -> a COLMAP scene folder.

`recover_poses` is a generator of progress records (one phase after the
other: ``extract``, ``match``, ``map``) so callers draw one progress bar per
phase; its final record (``phase == "done"``) carries the report written to
``SCENE/poses.json``. Phases:

1. SIFT extraction (`pycolmap.extract_features`) in chunks of images, one
   camera shared by all photos (`PosesConfig.camera_model`);
2. matching of the image pairs chosen by `coseg.poses.config.image_pairs`
   (every pair, or each image with its successors by name for video frames)
   with `pycolmap.match_image_pairs`, in chunks, with geometric verification;
3. incremental mapping (`pycolmap.incremental_mapping`); the model with most
   registered images is kept.

Everything is written into a staging folder inside SCENE and moved into place
only when the run succeeded, so a failed run leaves an earlier scene as it
was. The photos are read, never moved or modified: SCENE/images gets copies
(or symbolic links) of the registered ones.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from coseg.errors import CosegError, InputError
from coseg.poses.config import PosesConfig, choose_matcher, image_pairs

log = logging.getLogger(__name__)

#: Images per extraction call and pairs per matching call: the granularity of the progress bars.
EXTRACT_CHUNK = 8
MATCH_CHUNK = 64
#: A registered image seeing fewer than this fraction of the median image's 3D points is "weak".
WEAK_FRACTION = 0.25
#: Name of the folder inside SCENE a run works in (+ its process id) until it succeeds.
STAGING_PREFIX = ".poses-staging-"
#: What SCENE may already hold; replaced only with --overwrite.
RESULT_NAMES = ("images", "sparse", "database.db", "poses.json")


class RegistrationFailed(CosegError):
    """Structure from motion registered too few of the photos."""


def list_photos(photos: Path) -> list[str]:
    """Sorted file names of the images directly inside `photos`.

    Raises:
        InputError: not a folder, fewer than 3 images, unreadable headers or mixed image sizes
            (one camera is assumed for all photos).
    """
    from coseg.readers import image_size

    if not photos.is_dir():
        raise InputError(f"{photos}: not a folder of photos")
    names = _photo_names(photos)
    if len(names) < 3:
        raise InputError(f"{photos}: {len(names)} photo(s) found (.jpg, .png, .tif); "
                         "structure from motion needs at least 3 overlapping photos")
    sizes: dict[tuple[int, int], str] = {}
    for name in names:
        sizes.setdefault(image_size(photos / name), name)
    if len(sizes) > 1:
        (a, na), (b, nb) = list(sizes.items())[:2]
        raise InputError(f"{photos}: photos of different sizes ({na}: {a[0]}x{a[1]}, {nb}: {b[0]}x{b[1]}); "
                         "coseg poses assumes one camera: put each camera's photos in its own folder")
    return names


def is_photo_folder(path: Path) -> bool:
    """Whether `path` is a folder of bare photos: images directly inside, no scene layout a reader knows."""
    from coseg.readers import detect_format

    if not path.is_dir() or not _photo_names(path):
        return False
    try:
        detect_format(path)
    except InputError:
        return True
    return False


def _photo_names(folder: Path) -> list[str]:
    """Sorted names of the image files directly inside `folder` (HDR .exr excluded)."""
    from coseg.scene import IMAGE_EXTS

    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix in IMAGE_EXTS
                  and p.suffix.lower() != ".exr")


def check_destination(photos: Path, out: Path, overwrite: bool) -> Path:
    """Resolve SCENE; refuse the photos folder (or a folder around it) and an existing scene."""
    from coseg.io.safety import Protected, check_output

    protected = Protected()
    protected.add_folder(photos, f"the photos folder {photos}")
    out = check_output(out, protected, "--out")
    if out.exists() and not out.is_dir():
        raise CosegError(f"{out}: exists and is not a folder")
    present = [n for n in RESULT_NAMES if (out / n).exists()]
    if present and not overwrite:
        raise CosegError(f"{out}: already holds {', '.join(present)}; use --overwrite to replace them "
                         "(they are kept until the new scene is complete)")
    return out


def recover_poses(photos: str | os.PathLike, out: str | os.PathLike, config: PosesConfig | None = None,
                  overwrite: bool = False, stop: threading.Event | None = None,
                  previous: Path | None = None) -> Iterator[dict]:
    """Recover the cameras of a folder of photos and write a COLMAP scene to `out`.

    Args:
        photos: folder of photos of one camera (read only).
        out: scene folder to write (``images/``, ``sparse/0/``, ``database.db``, ``poses.json``).
        config: settings (default `PosesConfig()`).
        overwrite: replace a scene already in `out` (only once the new one is complete).
        stop: when set, the run stops between chunks and leaves `out` as it was.
        previous: with `overwrite`, the folder the replaced scene's files move to (None: deleted).

    Yields:
        ``{"phase": "extract" | "match" | "map", "done": k, "total": n}`` records, then
        ``{"phase": "done", "report": {...}}`` (the content of poses.json).

    Raises:
        RegistrationFailed: fewer than ``config.min_registered`` of the photos registered.
        InputError: see `list_photos`.
    """
    import pycolmap

    config = config or PosesConfig()
    photos = Path(photos).expanduser().resolve()
    names = list_photos(photos)
    out = check_destination(photos, Path(out).expanduser(), overwrite)
    matcher, reason = choose_matcher([Path(n).stem for n in names], config)
    log.info("coseg poses: %d photos in %s; %s matching (%s)", len(names), photos, matcher, reason)
    out.mkdir(parents=True, exist_ok=True)
    _clear_stale_staging(out)
    staging = out / f"{STAGING_PREFIX}{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    db = staging / "database.db"
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    times: dict[str, float] = {}
    level = pycolmap.logging.minloglevel
    # COLMAP's own log only with -v: its outcome is reported here in one line.
    pycolmap.logging.minloglevel = 0 if log.isEnabledFor(logging.DEBUG) else 3
    pycolmap.set_random_seed(config.seed)
    try:
        pycolmap.Database.open(db).close()  # creates the empty database
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = config.camera_model
        pycolmap.import_images(db, photos, pycolmap.CameraMode.SINGLE, image_names=names, options=reader)
        yield from _extract(pycolmap, db, photos, names, config, stop)
        times["extract_s"] = time.perf_counter() - t0
        pairs = image_pairs(len(names), matcher, config.overlap)
        yield from _match(pycolmap, db, staging, names, pairs, config, stop)
        times["match_s"] = time.perf_counter() - t0 - times["extract_s"]
        models = yield from _map(pycolmap, db, photos, staging, len(names), config, stop)
        times["map_s"] = time.perf_counter() - t0 - times["extract_s"] - times["match_s"]
        best = max(models.values(), key=lambda r: r.num_reg_images(), default=None)
        registered = 0 if best is None else best.num_reg_images()
        if registered < max(2, config.min_registered * len(names)):
            raise RegistrationFailed(_failure_line(photos, registered, len(names), matcher))
        report = _write_scene(best, photos, names, staging, config)
        report.update(photos=str(photos), matcher=matcher, matcher_reason=reason, pairs=len(pairs),
                      models=len(models), settings=config.to_dict(),
                      wall_s=round(time.perf_counter() - t0, 2), cpu_s=round(_cpu_seconds() - cpu0, 2),
                      **{k: round(v, 2) for k, v in times.items()})
        from coseg.io.atomic import write_json_atomic

        write_json_atomic(staging / "poses.json", report)
        _move_into_place(staging, out, previous)
    finally:
        pycolmap.logging.minloglevel = level
        shutil.rmtree(staging, ignore_errors=True)
    if report["registered"] < len(names):
        log.warning("%s", _partial_line(report, matcher))
    if report["weak"]:
        log.warning("%d photo(s) registered from fewer than %d%% of the median photo's points, poses "
                    "possibly off: %s", len(report["weak"]), round(100 * WEAK_FRACTION),
                    ", ".join(report["weak"][:5]) + (", ..." if len(report["weak"]) > 5 else ""))
    yield {"phase": "done", "report": report}


def _cpu_seconds() -> float:
    """CPU time of this process, all threads (COLMAP's worker threads included)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise KeyboardInterrupt


def _extract(pycolmap, db: Path, photos: Path, names: list[str], config: PosesConfig, stop) -> Iterator[dict]:
    options = pycolmap.FeatureExtractionOptions()
    options.num_threads = config.threads
    options.max_image_size = config.max_image_size
    options.sift.max_num_features = config.max_features
    yield {"phase": "extract", "done": 0, "total": len(names)}
    for start in range(0, len(names), EXTRACT_CHUNK):
        _check_stop(stop)
        chunk = names[start:start + EXTRACT_CHUNK]
        pycolmap.extract_features(db, photos, image_names=chunk, camera_mode=pycolmap.CameraMode.SINGLE,
                                  extraction_options=options, device=pycolmap.Device.cpu)
        yield {"phase": "extract", "done": start + len(chunk), "total": len(names)}


def _match(pycolmap, db: Path, staging: Path, names: list[str], pairs: list[tuple[int, int]],
           config: PosesConfig, stop) -> Iterator[dict]:
    options = pycolmap.FeatureMatchingOptions()
    options.num_threads = config.threads
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = config.seed
    pair_file = staging / "pairs.txt"
    yield {"phase": "match", "done": 0, "total": len(pairs)}
    for start in range(0, len(pairs), MATCH_CHUNK):
        _check_stop(stop)
        chunk = pairs[start:start + MATCH_CHUNK]
        pair_file.write_text("".join(f"{names[i]} {names[j]}\n" for i, j in chunk))
        pairing = pycolmap.ImportedPairingOptions()
        pairing.match_list_path = pair_file
        pycolmap.match_image_pairs(db, matching_options=options, pairing_options=pairing,
                                   verification_options=verification, device=pycolmap.Device.cpu)
        yield {"phase": "match", "done": start + len(chunk), "total": len(pairs)}


def _map(pycolmap, db: Path, photos: Path, staging: Path, n: int, config: PosesConfig, stop):
    """Incremental mapping in a worker thread; yields progress, returns {index: Reconstruction}."""
    options = pycolmap.IncrementalPipelineOptions()
    options.num_threads = config.threads
    options.random_seed = config.seed
    # COLMAP discards models of fewer than 10 images; small photo sets need a smaller floor.
    options.min_model_size = max(2, min(10, n // 2))
    registered = [0]
    result: dict = {}
    token = pycolmap.CancellationToken()

    def next_image() -> None:
        registered[0] += 1

    def work() -> None:
        try:
            result["models"] = pycolmap.incremental_mapping(
                db, photos, staging / "models", options, initial_image_pair_callback=next_image,
                next_image_callback=next_image, cancellation_token=token)
        except Exception as e:  # surfaced in the caller's thread below
            result["error"] = e

    (staging / "models").mkdir()
    worker = threading.Thread(target=work, name="coseg-poses-mapping", daemon=True)
    yield {"phase": "map", "done": 0, "total": n}
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.5)
            if stop is not None and stop.is_set():
                token.cancel()
            yield {"phase": "map", "done": min(registered[0], n), "total": n}
    finally:  # also when the caller abandons the generator: COLMAP stops at its next check
        if worker.is_alive():
            token.cancel()
        worker.join()
    _check_stop(stop)
    if "error" in result:
        raise CosegError(f"{photos}: structure from motion failed in COLMAP's mapper ({result['error']})")
    return result.get("models", {})


def _failure_line(photos: Path, registered: int, total: int, matcher: str) -> str:
    hint = ("photos need overlap (each part of the scene in 3 or more photos, taken from nearby "
            "positions) and texture; try more photos, sharper photos")
    if matcher == "sequential":
        hint += ", --matcher exhaustive"
    return f"{photos}: structure from motion registered {registered} of {total} photos; {hint}"


def _partial_line(report: dict, matcher: str) -> str:
    missing = report["unregistered"]
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    hint = "--matcher exhaustive" if matcher == "sequential" else "more photos between them"
    return (f"registered {report['registered']} of {report['total']} photos; left out: {shown} "
            f"(try {hint})")


def _write_scene(rec, photos: Path, names: list[str], staging: Path, config: PosesConfig) -> dict:
    """sparse/0 and images/ of the registered photos into `staging`; returns the report."""
    sparse = staging / "sparse" / "0"
    sparse.mkdir(parents=True)
    rec.write_binary(sparse)
    images = staging / "images"
    images.mkdir()
    kept = sorted(rec.images[i].name for i in rec.reg_image_ids())
    points = {rec.images[i].name: rec.images[i].num_points3D for i in rec.reg_image_ids()}
    median = float(np.median(list(points.values())))
    for name in kept:
        if config.link == "symlink":
            (images / name).symlink_to(photos / name)
        else:
            shutil.copy2(photos / name, images / name)
    camera = next(iter(rec.cameras.values()))
    return {"registered": len(kept), "total": len(names),
            "unregistered": sorted(set(names) - set(kept)), "points": rec.num_points3D(),
            # Registered from few points: such a view has little overlap and its pose may be off.
            "weak": sorted(n for n, k in points.items() if k < WEAK_FRACTION * median),
            "points_per_image_median": median,
            "mean_reprojection_error_px": round(float(rec.compute_mean_reprojection_error()), 4),
            "mean_track_length": round(float(rec.compute_mean_track_length()), 3),
            "camera": {"model": camera.model_name, "width": camera.width, "height": camera.height,
                       "params": [float(v) for v in camera.params]}}


def _clear_stale_staging(out: Path) -> None:
    """Remove the staging folders of killed runs in `out`; refuse while another run works there.

    A run killed without cleaning up (SIGKILL, power loss) leaves its
    ``.poses-staging-<pid>``; it is never reused, only removed once that process is gone.

    Raises:
        CosegError: a live process (another `coseg poses`) owns a staging folder in `out`.
    """
    for folder in sorted(out.glob(f"{STAGING_PREFIX}*")):
        pid = folder.name[len(STAGING_PREFIX):]
        if pid.isdigit() and int(pid) != os.getpid() and _process_alive(int(pid)):
            raise CosegError(f"{out}: another coseg poses (process {pid}) is writing this scene; wait for it "
                             f"to end (or remove {folder.name} if no such run exists)")
        log.info("%s: removing %s, left by a run that was killed", out, folder.name)
        shutil.rmtree(folder, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _move_into_place(staging: Path, out: Path, previous: Path | None = None) -> None:
    """Replace out's results by the staged ones; on a failed rename the old ones are put back.

    The replaced files go to `previous` when given, else they are deleted with the staging folder.
    """
    from coseg.io.safety import os_error_line

    old = staging / "previous" if previous is None else previous
    old.mkdir(parents=True, exist_ok=True)
    moved: list[str] = []
    try:
        for name in RESULT_NAMES:
            if (out / name).exists() or (out / name).is_symlink():
                os.replace(out / name, old / name)
                moved.append(name)
        for name in RESULT_NAMES:
            os.replace(staging / name, out / name)
    except OSError as e:
        for name in moved:
            if not (out / name).exists():
                os.replace(old / name, out / name)
        raise CosegError(os_error_line(out, e)) from e
