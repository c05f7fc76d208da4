"""Raw zero-shot labels from the photos themselves: label generators and writing their masks.

A label generator (plugin kind ``label_generator``, `coseg.plugins`) turns one
photo into per-view instance masks: ``generate(image [H, W, 3] float32 in
[0, 1]) -> [H, W] int ids`` (0 = no mask; ids mean nothing across views, the
segmentation stage associates them through the built Gaussians,
`coseg.labels`). Built in (`plugins/label_generators.py`):

- ``sam``: Segment Anything's automatic mask generation on an official
  ViT-B/L/H checkpoint found locally (`coseg.labelgen.sam_auto`, plain torch);
- ``regions``: the offline default, a reduced stand-in for SAM
  (`coseg.labelgen.regions`): superpixels merged over colour and pretrained
  features, no weights of its own.

`generate_labels` (`coseg.labelgen.write`) runs one over a scene's images;
`mask_quality` (`coseg.labelgen.quality`) scores masks against GT.
"""

from __future__ import annotations

import logging

from coseg.errors import InputError

log = logging.getLogger(__name__)


def select_generator(name: str = "auto", **options):
    """The registered label generator `name`, configured with `options`.

    "auto" takes ``sam`` when a SAM checkpoint is found (a given ``weights`` or
    the local cache) and otherwise ``regions``, saying so once in the log.
    Options a generator does not know are an error naming them.

    Raises:
        InputError: unknown generator or option, or an unavailable generator.
    """
    from coseg.plugins import registry

    reg = registry()
    if name == "auto":
        sam = _configured(reg, "sam", {k: v for k, v in options.items() if k in _SAM_OPTIONS})
        if sam is not None and sam.available():
            return _configured(reg, "sam", options)
        if sam is not None:
            log.warning("%s; using the offline 'regions' generator (a reduced stand-in for SAM)",
                        sam.unavailable_reason())
        name = "regions"
        options = {k: v for k, v in options.items() if k not in _SAM_ONLY}
    if name not in reg.names("label_generator"):
        raise InputError(f"unknown label generator {name!r} (available: {', '.join(reg.names('label_generator'))})")
    gen = _configured(reg, name, options)
    if hasattr(gen, "available") and not gen.available():
        reason = gen.unavailable_reason() if hasattr(gen, "unavailable_reason") else "not available"
        raise InputError(f"label generator {name!r}: {reason}")
    return gen


_SAM_OPTIONS = ("model", "weights")
_SAM_ONLY = ("model", "weights", "points_per_side", "pred_iou_thresh", "stability_score_thresh",
             "points_per_batch", "stability_score_offset", "box_nms_thresh")


def _configured(reg, name: str, options: dict):
    """The plugin `name` with `options` applied (None when no such plugin is registered)."""
    if name not in reg.names("label_generator"):
        return None
    gen = reg.get("label_generator", name)
    if not options:
        return gen
    if not hasattr(gen, "configure"):
        raise InputError(f"label generator {name!r} takes no options (got {', '.join(options)})")
    try:
        return gen.configure(**options)
    except TypeError as e:
        raise InputError(f"label generator {name!r}: {e}") from e
