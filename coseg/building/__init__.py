"""The Gaussian Building Stage (paper Sec. 3.3): 3DGS optimisation on the CPU.

- `BuildConfig` — every setting (config.py); `DensifyStrategy` — clone /
  split / prune / opacity reset (strategy.py).
- `train(scene, config, run_dir, stop_event=None, resume=False)` — the training
  generator yielding progress records (trainer.py); one optimisation step
  (step.py), the far-field sphere for open backgrounds (farfield.py), time
  budgets (budget.py), the numba SSIM and Adam (fused_ssim.py, fused_adam.py).
- `import_ply(path, run)` — take an already-trained 3DGS PLY instead (importer.py).
- `evaluate_building`, `render_views`, `RENDER_OUTPUTS`, `METRIC_SECTIONS` —
  evaluation and rendering of a run (evaluate.py).
"""

from coseg.building.config import BuildConfig
from coseg.building.importer import import_ply
from coseg.building.strategy import DensifyStrategy
from coseg.building.trainer import train

__all__ = ["BuildConfig", "DensifyStrategy", "import_ply", "train"]
