"""The segmentation learning stage's models and losses (paper Sec. 3.2-3.3).

- `stage`: the stage generator and its `Trainer` (loop, optimiser, schedule, checkpoints).
- `config`: the stage's settings; `settings`: strict dict <-> settings conversion.
- `fields`: the `Field` interface and the fields behind it (`coseg`, `per_gaussian`, `label_vote`).
- `prepare`: labels, attendance pruning, feature unprojection, visible sets, spatial encoding.
- `randla`: RandLA-Net encoder (frozen spatial features f_s1..f_s4, f_e).
- `randla_weights`: loading Open3D-ML / RandLA-Net-pytorch / own checkpoints.
- `decoder`: the fusion decoder (Eq. 7).
- `losses`: JS pixel loss (Eq. 8), 3D KL regulariser (Eq. 9), cross-entropy.
- `infer`: writing the per-Gaussian logits and segment ids; `evaluate`: test-view metrics.
- `knn`: KNN utilities.
- `pretrain`: training the encoder on procedural rooms (`coseg pretrain-spatial`); `pretrain_config`:
  its settings and the shipped weights' path (no torch, for the command line).
"""
