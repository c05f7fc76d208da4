"""The one interface of every segmentation field (CoSeg, per-Gaussian, label vote, plugins).

Modelled on nerfstudio's `Model` (one interface for training and evaluation,
the trainer owns the loop and the optimiser) and its `InstantiateConfig`
(every field has a settings class, `config_class`, that lands in config.json).
The stage (`coseg.segment.stage`) drives a field like this::

    field = field_class(name)(field_config, inputs)
    for record in field.prepare(): ...           # labels, features, pruning; progress records
    optimiser = Adam(field.param_groups())       # nothing when not field.trainable
    loss, parts = field.train_step(view)         # one training view; the stage steps the optimiser
    logits = field.infer()                       # [N_kept, C], stored per Gaussian
    field.state_dict() / field.load_state_dict() # checkpoints (with the field's own rng)

A field never sees the stage's settings object: the few stage-wide values it
needs (seed, attendance threshold, the run, the scene) come in `StageInputs`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

import numpy as np
import torch


@dataclass
class StageInputs:
    """What the stage hands every field."""

    run: Any
    """The `coseg.run.RunDir` being segmented (its cache folder, its Gaussians file)."""
    scene: Any
    """The run's `coseg.scene.Scene` (training images and label maps are read from it)."""
    gaussians: Any
    """The built `coseg.gaussians.Gaussians` (geometry is frozen)."""
    seed: int
    """Seed of the field's initialisation and sampling."""
    attendance_tau: float
    """Attendance-rate threshold τ of the pruning (`coseg.render.attendance_mask`)."""
    labels: Any = None
    """The raw training labels, a `coseg.segment.sources.TrainingLabels` (None: the scene's label maps)."""

    @property
    def cameras(self) -> list:
        """The training cameras (the only views the stage learns from)."""
        return self.scene.train_cameras


class Field(ABC):
    """A segmentation field of one run: per-Gaussian class logits learned (or voted) from raw labels.

    After `prepare`, a field has ``kept`` ([N_kept] int64 indices of the Gaussians it
    labels, after attendance pruning), ``class_ids`` ([C] label id of every output
    channel) and ``info`` (figures for metrics.json).
    """

    config_class: ClassVar[type]
    """Its settings dataclass (the ``field_config`` section of the stage's settings)."""
    trainable: ClassVar[bool] = True
    """False for a field that is computed in `prepare` (no optimiser, no iterations)."""

    def __init__(self, config, inputs: StageInputs) -> None:
        self.config = config
        self.inputs = inputs
        self.rng = np.random.default_rng(inputs.seed)
        self.kept = np.zeros(0, np.int64)
        self.class_ids = np.zeros(0, np.int64)
        self.info: dict = {}

    @abstractmethod
    def prepare(self) -> Iterator[dict]:
        """Generator: everything before the first iteration; yields progress records (``stage`` key)."""

    def param_groups(self) -> list[dict]:
        """Adam parameter groups (each with its ``lr``); empty for a field that does not learn."""
        return []

    @property
    def num_views(self) -> int:
        """Training views `train_step` accepts (0 for a field that does not learn)."""
        return 0

    def train_step(self, view: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of training view `view` (0 <= view < num_views) and its parts for the log."""
        raise NotImplementedError(f"{type(self).__name__} does not learn")

    @abstractmethod
    def infer(self) -> np.ndarray:
        """[N_kept, C] float32 logits stored for every kept Gaussian (arg-max = its segment)."""

    def state_dict(self) -> dict:
        """Everything a checkpoint needs to continue training (learnable state and rng)."""
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict`."""
        self.rng.bit_generator.state = state["rng"]


def render_channels(params: dict, cam, visible: np.ndarray, colors: torch.Tensor) -> torch.Tensor:
    """Render per-Gaussian channels of a view's visible Gaussians (Eq. 3), differentiably.

    Args:
        params: kept-Gaussian tensors (`coseg.render.gaussian_tensors`, indexed by the kept set).
        cam: the view's camera.
        visible: [P] indices into the kept Gaussians.
        colors: [P, C] channels of those Gaussians.

    Returns:
        [H, W, C] rendered channels.
    """
    from coseg.render import camera_tensors, rasterization

    viewmat, K = camera_tensors(cam)
    idx = torch.from_numpy(visible)
    img, _, _ = rasterization(params["means"][idx], params["quats"][idx], params["scales"][idx],
                              params["opacities"][idx], colors, viewmat, K, cam.width, cam.height)
    return img
