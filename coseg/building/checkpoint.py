"""Training checkpoints: everything needed to continue bit-for-bit.

A checkpoint (``RUN/checkpoints/ckpt_<iteration>.pt``, torch.save format) holds
the iteration, the parameters, the Adam state, the densification statistics,
the RNG states of python, numpy and torch, the scene extent and the build
settings. It is written to a temporary file and renamed; the newest
``keep`` checkpoints are kept, older ones are deleted after the new one is in
place, so a kill at any moment leaves at least one complete checkpoint.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coseg.building.optim import Params
from coseg.errors import InputError
from coseg.io.atomic import atomic_open

log = logging.getLogger(__name__)

_NAME = re.compile(r"^ckpt_(\d+)\.pt$")


def rng_states() -> dict[str, Any]:
    """The global RNG states of python, numpy and torch."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def restore_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(iteration, path) of the checkpoints in `folder`, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def save_checkpoint(folder: Path, iteration: int, params: Params, optimizer: torch.optim.Optimizer,
                    strategy_state: dict[str, torch.Tensor], extra: dict[str, Any],
                    keep: int = 2) -> Path:
    """Write a checkpoint atomically and delete all but the newest `keep`.

    Args:
        folder: the run's checkpoints folder.
        iteration: number of completed steps.
        params: trainable parameters (name -> [N, ...]).
        optimizer: their Adam optimiser.
        strategy_state: densification statistics (name -> [N]).
        extra: small picklable values (extent, settings, timings).
        keep: how many checkpoints to keep.

    Returns:
        Path of the new checkpoint.
    """
    path = Path(folder) / f"ckpt_{iteration:07d}.pt"
    payload = {
        "iteration": iteration,
        "params": {k: v.detach().clone() for k, v in params.items()},
        "optimizer": optimizer.state_dict(),
        "strategy_state": {k: v.clone() for k, v in strategy_state.items()},
        "rng": rng_states(),
        "extra": extra,
    }
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)
    for _, old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    log.debug("checkpoint %s written", path)
    return path


def load_latest_checkpoint(folder: Path) -> dict[str, Any]:
    """The newest readable checkpoint in `folder` (an unreadable newest one is skipped with a warning).

    Raises:
        InputError: no readable checkpoint.
    """
    found = list_checkpoints(folder)
    for _, path in reversed(found):
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # a truncated or foreign file: try the previous one
            log.warning("%s: unreadable checkpoint (%s); trying an older one", path, e)
    raise InputError(f"{folder}: no readable checkpoint to resume from")
