"""The documented mixes of simulated label errors (`coseg synth --label-noise`, docs/demo-scene.md).

Plain settings, apart from `coseg.synth.labels` (numpy, scipy) so that the
command line can list them without loading the generator;
`coseg.synth.labels.noise_preset` turns a name into a `LabelNoiseConfig`.
"""

#: Full strength of each kind when it is the only one (`mixed`, the defaults, weakens both).
_PER_VIEW_ALONE = dict(confusion_mean=0.15, blobs_per_view=1.0)
_CORRELATED_ALONE = dict(object_sector_probability=0.3, part_sector_probability=0.2)

#: The documented mixes of errors (docs/demo-scene.md): name -> settings that differ from the defaults.
PRESETS = {
    "mixed": {},
    "per-view": dict(_PER_VIEW_ALONE, object_sector_probability=0.0, part_sector_probability=0.0,
                     boundary_bias_probability=0.0),
    "correlated": dict(_CORRELATED_ALONE, confusion_mean=0.0, miss_probability=0.0, bleed_probability=0.0,
                       jitter_max_px=0.0, blobs_per_view=0.0),
    "none": dict(confusion_mean=0.0, miss_probability=0.0, bleed_probability=0.0, jitter_max_px=0.0,
                 blobs_per_view=0.0, object_sector_probability=0.0, part_sector_probability=0.0,
                 boundary_bias_probability=0.0),
}
NOISE_PRESETS = tuple(PRESETS)
