"""The demo scene generator: a procedural scene ray-cast on the CPU.

`generate(out_dir, config)` (`generator`) builds a layout (`layout`, `furniture`), a camera
path (`cameras`), ray-casts every view with open3d (`raycast`, `textures`),
simulates zero-shot labels (`labels`) and writes the NeRF layout of
design.md (`writer`): images/, depth/*.npy, gt/, labels/, points3d.ply,
classes.json, transforms_{train,test}.json and synth.json (the settings and
label-noise statistics). See docs/demo-scene.md.

Its names load on first use (PEP 562): `coseg synth --help` and the other
commands read `coseg.synth.presets` without importing open3d, scipy and the
renderer that `generate` needs.
"""

from __future__ import annotations

import importlib

#: Public name -> the module that defines it.
_HOMES = {"generate": "coseg.synth.generator", "SynthConfig": "coseg.synth.config",
          "parse_size": "coseg.synth.config", "LabelNoiseConfig": "coseg.synth.labels"}

__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
