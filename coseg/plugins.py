"""Plugin registry.

Kinds: ``scene_reader``, ``feature_extractor``, ``label_source``,
``label_generator``, ``render_backend``, ``exporter``, ``segmentation_field``. A plugin package exposes an
entry point in
the group ``coseg.plugins`` whose target is a callable ``register(registry)``;
it calls ``registry.add(kind, name, obj)``. The built-in plugins in the
top-level ``plugins/`` package register the same way (entry point
``builtin = "plugins:register"``). A plugin that fails to import or register
is warned about and skipped, never fatal.

What each kind's object must provide (checked on registration):

- scene_reader: ``detect(path) -> bool`` and ``read(path) -> Scene`` with the photos'
  own cameras (their size; a lens in ``Camera.distortion``; listed but absent
  images in ``Scene.missing_images``). `coseg.readers.read_scene` then
  undistorts and applies the working resolution for every format.
- feature_extractor: ``extract(image) -> list[np.ndarray]`` (4 scales).
- label_source: ``detect(path) -> bool`` and ``load(...)``.
- label_generator: ``generate(image) -> np.ndarray``: [H, W, 3] float32 in [0, 1] ->
  [H, W] int instance ids, 0 = no mask (see `coseg.labelgen`); optionally
  ``available() -> bool``, ``unavailable_reason() -> str``, ``settings() -> dict``
  (recorded as provenance) and ``configure(**options)``.
- render_backend: ``available() -> bool`` and ``rasterize(...)``.
- exporter: ``suffix`` and ``export(gaussians, path, **options)``.
- segmentation_field: a `coseg.segment.fields.Field` subclass (``config_class``,
  ``prepare``, ``train_step``, ``infer``, ``state_dict``, ``load_state_dict``).
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any, Callable

log = logging.getLogger(__name__)

KINDS = ("scene_reader", "feature_extractor", "label_source", "label_generator", "render_backend", "exporter",
         "segmentation_field")
GROUP = "coseg.plugins"

_REQUIRED = {
    "scene_reader": ("detect", "read"),
    "feature_extractor": ("extract",),
    "label_source": ("detect", "load"),
    "label_generator": ("generate",),
    "render_backend": ("available", "rasterize"),
    "exporter": ("suffix", "export"),
    "segmentation_field": ("config_class", "prepare", "train_step", "infer", "state_dict", "load_state_dict"),
}


class PluginRegistry:
    """Holds the registered plugins, by kind and name, in registration order."""

    def __init__(self) -> None:
        self._plugins: dict[str, dict[str, Any]] = {k: {} for k in KINDS}
        self.failed: list[tuple[str, str]] = []
        """(plugin source, reason) of every plugin that was skipped."""

    def add(self, kind: str, name: str, obj: Any) -> None:
        """Register `obj` as plugin `name` of `kind`; raises ValueError when invalid."""
        if kind not in self._plugins:
            raise ValueError(f"unknown plugin kind {kind!r} (kinds: {', '.join(KINDS)})")
        missing = [a for a in _REQUIRED[kind] if not hasattr(obj, a)]
        if missing:
            raise ValueError(f"{kind} plugin {name!r} lacks {', '.join(missing)}")
        not_callable = [a for a in _REQUIRED[kind] if a != "suffix" and not callable(getattr(obj, a))]
        if not_callable:
            raise ValueError(f"{kind} plugin {name!r}: {', '.join(not_callable)} must be callable")
        self._plugins[kind][name] = obj

    def get(self, kind: str, name: str) -> Any:
        try:
            return self._plugins[kind][name]
        except KeyError:
            have = ", ".join(self._plugins.get(kind, {})) or "none"
            raise KeyError(f"no {kind} plugin named {name!r} (available: {have})") from None

    def names(self, kind: str) -> list[str]:
        return list(self._plugins[kind])

    def items(self, kind: str) -> list[tuple[str, Any]]:
        return list(self._plugins[kind].items())

    def load_from(self, source: str, register: Callable[["PluginRegistry"], None]) -> bool:
        """Run one plugin's register function; warn and roll back on failure."""
        snapshot = {k: dict(v) for k, v in self._plugins.items()}
        try:
            register(self)
        except Exception as e:  # a broken plugin must never take the program down
            self._plugins = snapshot
            self.failed.append((source, f"{type(e).__name__}: {e}"))
            log.warning("plugin %s skipped: %s: %s", source, type(e).__name__, e)
            return False
        return True

    def load_entry_points(self) -> None:
        """Load every plugin in the `coseg.plugins` entry-point group."""
        seen_builtin = False
        for ep in sorted(entry_points(group=GROUP), key=lambda e: (e.name != "builtin", e.name)):
            try:
                fn = ep.load()
            except Exception as e:
                self.failed.append((ep.name, f"{type(e).__name__}: {e}"))
                log.warning("plugin %s skipped: cannot import %s (%s: %s)", ep.name, ep.value,
                            type(e).__name__, e)
                continue
            seen_builtin |= ep.value.startswith("plugins:")
            self.load_from(ep.name, fn)
        if not seen_builtin:
            # Running from a source tree that was never pip-installed.
            try:
                import plugins as builtin
            except Exception as e:
                self.failed.append(("builtin", f"{type(e).__name__}: {e}"))
                log.warning("built-in plugins unavailable: %s", e)
            else:
                self.load_from("builtin", builtin.register)


_registry: PluginRegistry | None = None


def registry() -> PluginRegistry:
    """The process-wide registry, loaded on first use."""
    global _registry
    if _registry is None:
        _registry = PluginRegistry()
        _registry.load_entry_points()
    return _registry
