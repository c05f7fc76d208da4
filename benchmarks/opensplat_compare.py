"""`coseg build` against OpenSplat's CPU mode on one scene, run alternately, one evaluator.

Usage:
    python benchmarks/opensplat_compare.py SCENE --opensplat PATH/TO/opensplat --out WORKDIR
        [--iterations 1000] [--setups defaults,matched,matched-noreset] [--repeats 1] [--json OUT]

OpenSplat is not part of this project: build it yourself (recipe in
docs/benchmarks.md) and pass its binary. The script

1. writes a nerfstudio-format copy of SCENE's *training* views for OpenSplat
   (WORKDIR/nerfstudio: transforms.json with the OpenGL poses and pinhole
   intrinsics, absolute image paths, and as points.ply the very points `coseg build`
   initialises from: scene points, depth-map points and the far-field sphere, in
   the scene's frame; both tools start from the same points);
2. runs, for every setup and repeat, `coseg build` and then `opensplat` one after
   the other (the same environment: NUMBA_NUM_THREADS / OMP_NUM_THREADS as given
   to this script, the same nice level), at the full image resolution
   (`--num-downscales 0`), with `--keep-crs` so OpenSplat's PLY is in the scene's
   frame;
3. imports OpenSplat's PLY with `coseg build --import-ply` and evaluates both runs
   with `coseg eval` (test-view PSNR / SSIM, worst view);
4. prints a table: CPU and wall seconds per iteration (steps only: ours from
   metrics.json, OpenSplat from its process's CPU time and the clock when its first
   and last "Step k" lines arrive), wall time and CPU time of the whole command,
   peak RSS (getrusage of that process), final Gaussian count, test PSNR / SSIM and
   worst test view, PSNR on the first 8 training views (a check of the conversion:
   a wrong frame or convention shows there first), and the load average before
   each run.

Setups:
    defaults   each tool's defaults at that iteration count (OpenSplat densifies only
               in (warmup-length, iterations / 2]: with its default warm-up of 500, a
               1000-iteration run never densifies)
    matched    OpenSplat given coseg's densification schedule for that iteration count:
               --warmup-length = densify_start, --refine-every = densify_interval,
               --reset-alpha-every = opacity_reset_interval / densify_interval
               (both stop growing at iterations / 2). OpenSplat also skips densifying
               for (training views + refine-every) steps after each of its opacity
               resets, so in short runs it may not densify at all (at 300 iterations
               and 64 views it never does); read its log ("Added ... gaussians").
               Kept to reproduce the published row: past its first reset interval
               OpenSplat also culls every Gaussian larger than 0.5 in its normalised
               frame (model.cpp, "cull huge gaussians"); the far-field sphere starts
               above that (0.58 on `coseg synth --kind outdoor`), so the sky can go and
               its magenta background show
    matched-noreset
               the matched schedule without OpenSplat's opacity reset and huge-Gaussian
               cull: --refine-every = densify_interval, --reset-alpha-every so large
               that refine-every x reset-alpha-every exceeds the iterations, and
               --warmup-length = max(densify_start, densify_interval) so its reset at
               step refine-every does not fire either. It densifies every refine-every
               steps in (training views + refine-every, iterations / 2): at 1000
               iterations and 64 views steps 100-475 (16), ours 25-500 (20). Ours
               still resets once (opacity_reset_interval, step 333 at 1000) and then
               prunes large Gaussians, sparing the far field
Every setup trains OpenSplat at the full resolution (`--num-downscales 0`): its default
of 2 trains at a quarter of it for the first 3000 steps, i.e. a whole 1000-step run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

COSEG = [sys.executable, "-m", "coseg"]
STEP_LINE = re.compile(r"^Step (\d+):")
SETUPS = ("defaults", "matched", "matched-noreset")


def initial_points(scene, iterations: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """The Gaussian centres and colours `coseg build` starts from, in the scene's input frame.

    The same sources as the build (scene points, depth-map points, the far-field sphere for
    open backgrounds: `coseg.building.trainer.initial_model`, seeded the same way), so both
    tools start from identical points. Returns ([P, 3] xyz, [P, 3] rgb in [0, 1], init report).
    """
    import torch

    from coseg.building import BuildConfig
    from coseg.building.step import TrainingTarget, View
    from coseg.building.trainer import initial_model
    from coseg.gaussians import sh_dc_to_rgb
    from coseg.normalize import canonical_frame
    from coseg.render import camera_tensors

    frame = canonical_frame(scene.train_cameras, scene.points_xyz)
    working = frame.apply_scene(scene)
    cams = working.train_cameras
    views = [View(TrainingTarget.load(working, c), *camera_tensors(c), c.width, c.height) for c in cams]
    background = torch.ones(3) if working.white_background else torch.zeros(3)
    config = BuildConfig(iterations=iterations).resolved(sum(c.width * c.height for c in cams), len(cams))
    gaussians, _, report = initial_model(working, views, config, working.extent(), background)
    gaussians = frame.inverse().apply_gaussians(gaussians)
    return gaussians.means, np.clip(sh_dc_to_rgb(gaussians.sh_dc), 0.0, 1.0), report


def write_nerfstudio(scene, iterations: int, out: Path) -> tuple[Path, dict]:
    """OpenSplat's input: transforms.json of the training views and points.ply (our initial points)."""
    from coseg.io.ply import write_point_cloud

    for cam in scene.train_cameras:  # OpenSplat's CPU rasteriser ignores cx, cy (centred projection)
        if abs(cam.cx - cam.width / 2) > 0.5 or abs(cam.cy - cam.height / 2) > 0.5:
            raise SystemExit(f"{cam.image_path}: principal point ({cam.cx}, {cam.cy}) is off-centre; "
                             "OpenSplat's CPU mode renders a centred one, so the runs would not compare")
    out.mkdir(parents=True, exist_ok=True)
    flip = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV camera axes -> OpenGL (nerfstudio)
    frames = []
    for cam in scene.train_cameras:
        frames.append({"file_path": str(Path(cam.image_path).absolute()), "w": cam.width, "h": cam.height,
                       "fl_x": cam.fx, "fl_y": cam.fy, "cx": cam.cx, "cy": cam.cy,
                       "transform_matrix": (cam.camera_to_world @ flip).tolist()})
    xyz, rgb, report = initial_points(scene, iterations)
    write_point_cloud(out / "points.ply", xyz, rgb)
    (out / "transforms.json").write_text(json.dumps(
        {"camera_model": "OPENCV", "frames": frames, "ply_file_path": "points.ply"}, indent=1))
    return out, report


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_measured(cmd: list[str], log_path: Path) -> dict:
    """Run `cmd`, logging its output; wall and CPU seconds, peak RSS, and the wall and CPU
    seconds per step between its first and last "Step k:" lines (OpenSplat prints one per step)."""
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    steps: list[tuple[int, float]] = []
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)

        def pump():
            for line in proc.stdout:
                log.write(line)
                m = STEP_LINE.match(line)
                if m:
                    steps.append((int(m.group(1)), time.perf_counter(), process_cpu_s(proc.pid)))

        reader = threading.Thread(target=pump)
        reader.start()
        _, status, usage = os.wait4(proc.pid, 0)
        reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with {proc.returncode}; see {log_path}")
    out = {"wall_s": time.perf_counter() - t0, "cpu_s": usage.ru_utime + usage.ru_stime,
           "peak_rss_mb": usage.ru_maxrss / 1024.0, "load_before": load}
    if len(steps) >= 2:
        (k0, t_0, c_0), (k1, t_1, c_1) = steps[0], steps[-1]
        out["s_per_it"] = (t_1 - t_0) / max(k1 - k0, 1)
        out["cpu_s_per_it"] = (c_1 - c_0) / max(k1 - k0, 1)
    return out


def resolved_schedule(scene, iterations: int) -> dict:
    """coseg's build settings for `iterations` on this scene, the densification schedule filled in."""
    from coseg.building import BuildConfig

    pixels = sum(c.width * c.height for c in scene.train_cameras)
    return BuildConfig(iterations=iterations).resolved(pixels).to_dict()


def opensplat_args(setup: str, iterations: int, schedule: dict) -> list[str]:
    """OpenSplat's options for a setup (see the module docstring) given coseg's `schedule`."""
    args = ["-n", str(iterations), "--num-downscales", "0", "--keep-crs"]
    interval = schedule["densify_interval"]
    if setup == "matched":
        args += ["--warmup-length", str(schedule["densify_start"]), "--refine-every", str(interval),
                 "--reset-alpha-every", str(max(1, round(schedule["opacity_reset_interval"] / interval)))]
    elif setup == "matched-noreset":
        # OpenSplat resets at steps = refine-every (mod refine-every x reset-alpha-every) past the
        # warm-up and culls huge Gaussians past that product: neither happens within the run.
        args += ["--warmup-length", str(max(schedule["densify_start"], interval)), "--refine-every", str(interval),
                 "--reset-alpha-every", str(iterations // interval + 1)]
    return args


def evaluate(run: Path, scene, train_views: int = 8) -> dict:
    """`coseg eval` of a run (test views) and our PSNR on its first `train_views` training views."""
    from coseg.building.evaluate import RenderContext, render_rgb
    from coseg.metrics import psnr
    from coseg.run import RunDir

    subprocess.run([*COSEG, "eval", str(run)], check=True, stdout=subprocess.DEVNULL)
    metrics = json.loads((run / "metrics.json").read_text())["building"]
    ctx = RenderContext.load(RunDir.open(run), scene)
    metrics["train_psnr"] = float(np.mean([psnr(render_rgb(ctx, c), scene.load_image(c))
                                           for c in scene.train_cameras[:train_views]]))
    return metrics


def main(argv=None) -> int:
    from coseg.readers import read_scene

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scene", type=Path)
    p.add_argument("--opensplat", type=Path, required=True, help="the opensplat binary")
    p.add_argument("--out", type=Path, required=True, help="work folder (runs, logs, results.json)")
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--setups", default="defaults,matched-noreset",
                   help=f"comma-separated, of {', '.join(SETUPS)}")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args(argv)
    unknown = sorted(set(args.setups.split(",")) - set(SETUPS))
    if unknown:  # here, not after the first hour of runs
        raise SystemExit(f"--setups: unknown {', '.join(unknown)} (known: {', '.join(SETUPS)})")
    scene = read_scene(args.scene)
    ns, init = write_nerfstudio(scene, args.iterations, args.out / "nerfstudio")
    schedule = resolved_schedule(scene, args.iterations)
    env = {k: os.environ.get(k, "-") for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS")}
    print(f"scene {args.scene} ({len(scene.train_cameras)} train / {len(scene.test_cameras)} test views, "
          f"{scene.cameras[0].width}x{scene.cameras[0].height}), {args.iterations} iterations, env {env}, "
          f"nice {os.nice(0)}; both start from {init['num_points'] + init['far_field']:,} points "
          f"({init['num_points']:,} {init['method']} + {init['far_field']:,} far-field)")
    rows = []
    for setup in args.setups.split(","):
        for rep in range(args.repeats):
            base = args.out / f"{setup}-{rep}"
            if base.exists():
                shutil.rmtree(base)
            base.mkdir(parents=True)
            ours = run_measured([*COSEG, "build", str(args.scene), "--out", str(base / "coseg"),
                                 "--iterations", str(args.iterations)], base / "coseg.log")
            m = evaluate(base / "coseg", scene)
            ours.update(s_per_it=m["train_time_s"] / m["iterations"],
                        cpu_s_per_it=m["train_cpu_s"] / m["iterations"], gaussians=m["num_gaussians"],
                        psnr=m["psnr"], psnr_min=m["psnr_min"], ssim=m["ssim"], train_psnr=m["train_psnr"])
            rows.append({"setup": setup, "repeat": rep, "tool": "coseg", **ours})
            ply = base / "opensplat" / "splat.ply"
            ply.parent.mkdir()
            theirs = run_measured([str(args.opensplat), str(ns), "-o", str(ply),
                                   *opensplat_args(setup, args.iterations, schedule)], base / "opensplat.log")
            subprocess.run([*COSEG, "build", str(args.scene), "--import-ply", str(ply), "--out",
                            str(base / "opensplat-run")], check=True, stdout=subprocess.DEVNULL)
            m = evaluate(base / "opensplat-run", scene)
            theirs.update(gaussians=m["num_gaussians"], psnr=m["psnr"], psnr_min=m["psnr_min"], ssim=m["ssim"],
                          train_psnr=m["train_psnr"])
            rows.append({"setup": setup, "repeat": rep, "tool": "opensplat", **theirs})
            (args.out / "results.json").write_text(json.dumps(rows, indent=1))  # kept if a later run fails
    print("| setup | tool | CPU s / iteration | s / iteration | wall s | CPU s | peak RSS MB | Gaussians | "
          "test PSNR | worst view | test SSIM | train PSNR | load before |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['setup']} | {r['tool']} | {r.get('cpu_s_per_it', float('nan')):.3f} | "
              f"{r.get('s_per_it', float('nan')):.3f} | {r['wall_s']:.0f} | "
              f"{r['cpu_s']:.0f} | {r['peak_rss_mb']:.0f} | {r['gaussians']:,} | {r['psnr']:.2f} | "
              f"{r['psnr_min']:.2f} | {r['ssim']:.3f} | {r['train_psnr']:.2f} | {r['load_before']:.1f} |")
    for setup in args.setups.split(","):
        ours = [r for r in rows if r["setup"] == setup and r["tool"] == "coseg"]
        theirs = [r for r in rows if r["setup"] == setup and r["tool"] == "opensplat"]
        ratios = [np.median([t[k] for t in theirs]) / np.median([o[k] for o in ours])
                  for k in ("cpu_s_per_it", "s_per_it")]
        print(f"{setup}: OpenSplat / coseg per iteration: CPU {ratios[0]:.2f}x, wall {ratios[1]:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
