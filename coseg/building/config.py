"""Settings of the Gaussian Building Stage (3DGS optimisation on the CPU).

Learning rates, loss weights and densification thresholds are those of the
official 3DGS code (Kerbl et al. 2023). The defaults of the iteration budget,
the initial point count and the Gaussian cap are sized for a 2-core CPU (see
docs/building.md): 3000 iterations, and one Gaussian per `pixels_per_gaussian`
training pixels. With `minutes` set, `coseg.building.budget` chooses the
iterations and the cap that fit that time on the machine instead (settings
given explicitly stay). The densification schedule (start, stop, reset
interval) is 3DGS's 500 / 15000 of 30000 iterations scaled to the budget with
one opacity reset at a third of it (3DGS: every 3000) unless set explicitly;
`resolved()` returns the concrete values that go in config.json.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from coseg.errors import CosegError
from coseg.settings import (AT_LEAST_1, NON_NEGATIVE, OPEN_UNIT, POSITIVE, UNIT, Range, SettingError,
                            check_settings)

BACKGROUNDS = ("random", "scene")
DEFAULT_ITERATIONS = 3000
#: Upper end of the default cap: about 1 GB of parameters, gradients and Adam moments.
MAX_DEFAULT_GAUSSIANS = 1_000_000


@dataclass
class BuildConfig:
    """All settings of one building run (every field lands in config.json)."""

    iterations: int = DEFAULT_ITERATIONS
    """Number of optimisation steps, one training view each (chosen by `minutes` when set)."""
    minutes: float | None = None
    """Time budget: choose iterations and Gaussian cap (except those in `budget_fixed`) so that
    the build takes about this many minutes on this machine (a few steps are timed first)."""
    budget_fixed: list[str] = dataclasses.field(default_factory=list)
    """Settings the time budget keeps ("iterations", "max_gaussians"; the CLI lists the
    options given explicitly)."""
    seed: int = 0
    """Seed of numpy, torch and python RNGs (view order, init, splits)."""
    backend: str = "auto"
    """Render backend passed to coseg.render.rasterization."""
    fused: bool = True
    """numba SSIM and Adam (`fused_ssim`, `fused_adam`); False: their plain-PyTorch twins."""
    torch_threads: int = 1
    """torch intra-op threads while training (small ops: more threads only contend; 0 = unchanged)."""

    background: str = "random"
    """Background behind the Gaussians while training: "random" (a new uniform random colour
    every step, as the official 3DGS --random_background: a pixel no Gaussian covers is wrong
    whatever its colour, so uncovered sky or backdrop cannot hide) or "scene" (the scene's
    fixed black, or white for white-background scenes)."""
    lambda_l1: float = 0.8
    """Loss = lambda_l1 * L1 + (1 - lambda_l1) * D-SSIM (paper Sec. 3.3, 3DGS)."""
    max_sh_degree: int = 3
    """Highest SH degree trained and written to the PLY (0-3)."""
    sh_interval: int = 1000
    """One SH band is added every this many iterations."""

    lr_means: float = 1.6e-4
    """Initial position learning rate, multiplied by the scene extent."""
    lr_means_final: float = 1.6e-6
    """Final position learning rate (times extent); log-linear decay over the budget."""
    lr_sh_dc: float = 2.5e-3
    """Learning rate of the DC SH coefficients."""
    lr_sh_rest: float = 2.5e-3 / 20
    """Learning rate of the higher SH bands (3DGS: DC rate / 20)."""
    lr_opacity: float = 0.05
    """Opacity (logit) learning rate: 0.05 as in the 3DGS paper code and gsplat."""
    lr_scales: float = 5e-3
    """Log-scale learning rate."""
    lr_quats: float = 1e-3
    """Rotation (quaternion) learning rate."""
    adam_eps: float = 1e-15
    """Adam epsilon (3DGS)."""

    init_method: str = "auto"
    """Initial points: "auto" (the scene's points, else depth maps, else random; see
    coseg.building.init), or only "scene", "depth" or "random"."""
    init_max_points: int = 30_000
    """Initial points are randomly subsampled to at most this many."""
    init_min_points: int = 20_000
    """When the scene gives fewer points than this, training depth maps (if any) add the rest
    (a dense start of small Gaussians instead of few large ones)."""
    init_random_points: int = 10_000
    """Number of random points when no points, COLMAP points or depth exist."""
    init_opacity: float = 0.1
    """Opacity of the initial Gaussians."""
    far_field_spacing: float = 12.0
    """Spacing in training-image pixels between neighbouring Gaussians of the far-field sphere
    for open backgrounds (`coseg.building.farfield`; sets their number; 0 = no far field)."""
    far_field_radius: float = 10.0
    """Radius of the far-field sphere, times the scene extent."""
    far_field_stale_steps: int | None = None
    """Far-field Gaussians no training pixel blended for this many steps are pruned (None: the
    number of training views plus one densification interval, i.e. one pass over the views)."""
    max_gaussians: int | None = None
    """Cap on the Gaussian count: growth stops at it, highest gradients first (None: one per
    `pixels_per_gaussian` training pixels, at least twice the initial count; or chosen by
    `minutes`)."""
    pixels_per_gaussian: float = 80.0
    """Training pixels per Gaussian of the default cap (80: the demo room's 64 views of
    320x240 give 61,440, about the 60k its CPU budget was sized with)."""

    densify_start: int | None = None
    """First densification step (None: 500/30000 of the budget)."""
    densify_stop: int | None = None
    """No growth or pruning after this step (None: 15000/30000 of the budget)."""
    densify_interval: int | None = None
    """Steps between densifications (None: 100/30000 of the budget, at least 25)."""
    opacity_reset_interval: int | None = None
    """Steps between opacity resets (None: a third of the budget, so one reset before
    densify_stop; 3DGS resets every 3000 of 30000, but on the CPU the ~300 steps after a
    reset run several times slower: no early ray termination while opacities are <= 0.01)."""
    grow_grad2d: float = 2e-4
    """Grow a Gaussian when its mean view-space gradient (3DGS NDC units) exceeds this."""
    grow_scale3d: float = 0.01
    """Clone if the largest scale <= this * extent, else split (3DGS percent_dense)."""
    prune_opacity: float = 0.005
    """Prune Gaussians whose opacity falls below this."""
    prune_scale3d: float = 0.1
    """After the first opacity reset, prune Gaussians larger than this * extent."""
    prune_scale2d: float = 0.15
    """After the first opacity reset, prune Gaussians whose screen radius exceeded
    this fraction of max(width, height) (gsplat's rule)."""

    log_every: int = 100
    """PSNR on the held training view is computed every this many steps."""
    checkpoint_every: int = 500
    """A checkpoint is written every this many steps (and on stop and at the end)."""
    keep_checkpoints: int = 2
    """How many recent checkpoints are kept."""

    def __post_init__(self) -> None:
        from coseg.render.backends import Backend

        check_settings(self, "building", _RANGES, {"backend": typing.get_args(Backend),
                                                   "init_method": ("auto", "scene", "depth", "random"),
                                                   "background": BACKGROUNDS})
        unknown = sorted(set(self.budget_fixed) - {"iterations", "max_gaussians"})
        if unknown:
            raise SettingError("building", "budget_fixed", self.budget_fixed,
                               "the budget chooses iterations and max_gaussians; only those can be kept")

    def default_max_gaussians(self, train_pixels: int, initial: int | None = None) -> int:
        """The cap for `train_pixels` training pixels (all views) and `initial` Gaussians at the
        start (default: init_max_points): see `max_gaussians`."""
        cap = int(round(train_pixels / self.pixels_per_gaussian))
        floor = 2 * (self.init_max_points if initial is None else initial)
        return min(max(cap, floor), MAX_DEFAULT_GAUSSIANS)

    def resolved(self, train_pixels: int | None = None, train_views: int | None = None,
                 initial: int | None = None) -> "BuildConfig":
        """A copy with iterations, cap and densification schedule filled in.

        Args:
            train_pixels: pixels of all training views, for the default cap (without it an
                unset max_gaussians stays None).
            train_views: number of training views, for far_field_stale_steps (without it an
                unset value stays None).
            initial: the initial Gaussian count, the default cap's floor (half of it).
        """
        iterations = self.iterations
        cap = self.max_gaussians
        if cap is None and train_pixels is not None:
            cap = self.default_max_gaussians(train_pixels, initial)
        frac = iterations / 30_000

        def scaled(value: int | None, base: int, minimum: int = 1) -> int:
            return int(value) if value is not None else max(minimum, round(base * frac))

        interval = scaled(self.densify_interval, 100, minimum=25)
        stale = self.far_field_stale_steps
        if stale is None and train_views is not None:
            stale = train_views + interval
        return dataclasses.replace(
            self, iterations=iterations, max_gaussians=cap,
            densify_start=scaled(self.densify_start, 500),
            densify_stop=scaled(self.densify_stop, 15_000),
            densify_interval=interval,
            opacity_reset_interval=scaled(self.opacity_reset_interval, 10_000),
            far_field_stale_steps=stale,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "BuildConfig":
        """Build from a dict (config.json's building section); unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        # runs written before the working resolution moved to config.json's scene section
        # recorded the scene's downscale here; the scene section has it too
        values = {k: v for k, v in values.items() if k != "downscale"}
        unknown = sorted(set(values) - names)
        if unknown:
            raise CosegError(f"unknown building setting(s): {', '.join(unknown)}")
        return cls(**values)


#: The meaningful values of BuildConfig's numeric fields (types are checked for every field).
_RANGES = {
    "iterations": AT_LEAST_1, "minutes": POSITIVE, "seed": NON_NEGATIVE, "torch_threads": NON_NEGATIVE,
    "lambda_l1": UNIT, "max_sh_degree": Range(0, 3), "sh_interval": AT_LEAST_1,
    **{name: POSITIVE for name in ("lr_means", "lr_means_final", "lr_sh_dc", "lr_sh_rest", "lr_opacity",
                                   "lr_scales", "lr_quats", "adam_eps", "grow_grad2d", "grow_scale3d",
                                   "prune_scale3d", "prune_scale2d", "pixels_per_gaussian")},
    "init_max_points": AT_LEAST_1, "init_min_points": NON_NEGATIVE, "init_random_points": AT_LEAST_1,
    "init_opacity": OPEN_UNIT, "max_gaussians": AT_LEAST_1, "far_field_spacing": NON_NEGATIVE,
    "far_field_radius": Range(1, open_lo=True), "far_field_stale_steps": AT_LEAST_1,
    "densify_start": NON_NEGATIVE, "densify_stop": NON_NEGATIVE, "densify_interval": AT_LEAST_1,
    "opacity_reset_interval": AT_LEAST_1, "prune_opacity": Range(0, 1, open_hi=True), "log_every": AT_LEAST_1,
    "checkpoint_every": AT_LEAST_1, "keep_checkpoints": AT_LEAST_1,
}
