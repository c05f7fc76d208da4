"""`coseg batch SCENES... --out DIR`: many scenes as one job, on Ray (local by default) or a cluster.

    coseg batch scenes/* --out runs/                       # local Ray sized to this machine
    coseg batch manifest.txt --out runs/ --ray auto        # join the cluster of `ray start`
    coseg batch a b c --out runs/ --run-options "--iterations 2000 --seg-iterations 3000"

Every scene gets the `coseg run` stages it still needs, as tasks with a
resource request; re-running the same command skips what has finished and
resumes what was stopped. A scene that fails is reported in the table and
the others go on. Exit code: 0 all done, 1 a scene failed, 130 stopped.
See docs/batch.md.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from coseg.errors import InputError


def add_parser(sub) -> None:
    p = sub.add_parser("batch", help="run many scenes (build, segment, eval) as one job on Ray",
                       description="Run the coseg run pipeline over many scenes: stages of one scene in "
                                   "order, scenes in parallel, as Ray tasks (local by default, or a "
                                   "cluster). Writes DIR/<scene>/ run folders and DIR/results.csv|md.")
    p.add_argument("scenes", nargs="+", help="scene folders, glob patterns, or manifest files (one scene per "
                                             "line, then its own coseg run options; --name NAME)")
    p.add_argument("--out", type=Path, required=True, help="folder of the run folders and results tables")
    p.add_argument("--ray", default="local", metavar="local|auto|ADDRESS|off",
                   help="local: an in-process Ray sized to this machine (default); auto or ADDRESS: join a "
                        "cluster; off: one scene after another here")
    p.add_argument("--run-options", default="", metavar="OPTIONS",
                   help='coseg run options for every scene, quoted: "--iterations 2000 --field label-vote"')
    p.add_argument("--cpus-per-task", type=int, default=1, help="CPUs per stage task (its numba threads)")
    p.add_argument("--memory-gb", type=float, default=2.0, help="memory per stage task asked of Ray, GB")
    p.add_argument("--gpus-per-task", type=float, default=0.0,
                   help="GPUs per stage task (for scenes built with a CUDA backend)")
    p.add_argument("--retries", type=int, default=2, help="retries of a stage whose worker was lost")
    p.set_defaults(func=run)


def run(args) -> int:
    from coseg.batch import BatchConfig, expand_scenes, run_batch
    from coseg.io.safety import check_output, inputs_of

    try:
        options = tuple(shlex.split(args.run_options))
    except ValueError as e:
        raise InputError(f"--run-options: {e}") from e
    config = BatchConfig(out=args.out, ray=args.ray, options=options, cpus_per_task=args.cpus_per_task,
                         memory_gb=args.memory_gb, gpus_per_task=args.gpus_per_task, retries=args.retries)
    scenes = expand_scenes(args.scenes)
    check_output(args.out, inputs_of(*[s.path for s in scenes if s.path.exists()]), "--out", kind="folder")
    rows = run_batch(scenes, config)
    print(f"results: {args.out / 'results.md'}")
    statuses = {row["status"] for row in rows}
    if "failed" in statuses:
        return 1
    return 130 if "stopped" in statuses else 0
