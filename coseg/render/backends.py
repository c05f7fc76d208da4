"""Render backend selection: "cpu" (numba, always present), "gsplat", "inria", "auto".

The CUDA backends live in `coseg.render._gsplat_backend` / `_inria_backend`,
each exposing ``available() -> bool`` and ``rasterize(...)`` with the signature
of `coseg.render.rasterization`; they are imported only when asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Literal

import torch

from coseg.errors import CosegError

Backend = Literal["auto", "cpu", "gsplat", "inria"]

_CUDA_MODULES = {"gsplat": "coseg.render._gsplat_backend", "inria": "coseg.render._inria_backend"}


class BackendError(CosegError, ValueError):
    """A requested render backend is unknown or not usable on this machine."""


def _cuda_backend(name: str) -> Callable | None:
    """The backend's rasterize function when its module imports and reports available()."""
    try:
        module = importlib.import_module(_CUDA_MODULES[name])
    except ImportError:
        return None
    return module.rasterize if module.available() else None


def select_backend(name: str, device: torch.device) -> Callable | None:
    """Resolve a backend name to a CUDA rasterize function, or None for the CPU backend.

    Args:
        name: "auto" | "cpu" | "gsplat" | "inria".
        device: device of the input tensors ("auto" only considers CUDA backends when the
            inputs are on a CUDA device or a GPU is available).

    Raises:
        BackendError: unknown name, or a CUDA backend that is not installed / has no device.
    """
    if name == "cpu":
        return None
    if name in _CUDA_MODULES:
        fn = _cuda_backend(name)
        if fn is None:
            raise BackendError(f"backend {name!r} requested but {name} is not installed or there is "
                               "no CUDA device; use backend='cpu' or 'auto'")
        return fn
    if name != "auto":
        raise BackendError(f"unknown render backend {name!r}; choose auto, cpu, gsplat or inria")
    if device.type == "cuda" or torch.cuda.is_available():
        for candidate in ("gsplat", "inria"):
            fn = _cuda_backend(candidate)
            if fn is not None:
                return fn
    return None
