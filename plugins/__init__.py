"""CoSeg's built-in plugins, registered exactly like third-party ones.

The entry point ``builtin = "plugins:register"`` in the ``coseg.plugins``
group calls `register`; each submodule adds its plugins.
"""

from __future__ import annotations


def register(registry) -> None:
    """Register every built-in plugin with `registry` (a coseg PluginRegistry)."""
    import importlib
    import logging
    import pkgutil

    log = logging.getLogger(__name__)
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        name = f"{__name__}.{mod.name}"
        try:
            module = importlib.import_module(name)
        except Exception as e:  # one broken built-in must not hide the others
            registry.failed.append((name, f"{type(e).__name__}: {e}"))
            log.warning("built-in plugin module %s skipped: %s: %s", name, type(e).__name__, e)
            continue
        fn = getattr(module, "register", None)
        if fn is not None:
            registry.load_from(name, fn)
