"""The segmentation learning stage's models and losses (paper Sec. 3.2-3.3).

- `randla`: RandLA-Net encoder (frozen spatial features f_s1..f_s4, f_e).
- `randla_weights`: loading Open3D-ML / RandLA-Net-pytorch / own checkpoints.
- `decoder`: the fusion decoder (Eq. 7).
- `losses`: JS pixel loss (Eq. 8), 3D KL regulariser (Eq. 9), cross-entropy.
- `field`: the per-Gaussian identity baseline (Gaussian Grouping style).
- `knn`: KNN utilities.
- `pretrain`: training the encoder on procedural rooms (`coseg pretrain-spatial`).
"""
