"""Many scenes as one job (`coseg batch`): the `coseg run` stages as tasks on Ray, or one after another.

- `expand_scenes`: scene folders, globs and manifest files -> `BatchScene` list.
- `BatchConfig`, `run_batch`: plan every scene's remaining stages from its run
  folder, run them (stages of a scene in order, scenes in parallel), write
  ``results.csv`` / ``results.md`` as scenes finish.
- `coseg.batch.task.run_stage`: one stage of one scene in a child process.

Ray is optional (``pip install coseg-studio[cluster]``); without it the
scenes run one after another. See docs/batch.md.
"""

from coseg.batch.runner import BatchConfig, plan_scene, run_batch
from coseg.batch.scenes import BatchScene, expand_scenes

__all__ = ["BatchConfig", "BatchScene", "expand_scenes", "plan_scene", "run_batch"]
