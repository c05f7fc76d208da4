"""CoSeg loss terms: the JS pixel loss (Eq. 8), the 3D KL regulariser (Eq. 9) and CE.

The pixel loss is the generalised Jensen-Shannon (GJS) loss of Englesson &
Azizpour (2021) with two distributions: the one-hot raw label with weight
``pi_label`` and the rendered prediction with weight ``1 - pi_label``,

    m    = pi_label * onehot(y) + (1 - pi_label) * p
    loss = (pi_label * KL(onehot || m) + (1 - pi_label) * KL(p || m)) / Z
    Z    = -(1 - pi_label) * log(1 - pi_label)

The paper (Eq. 8) sums over the pixels of one rendered map; we average over
the labelled pixels so that the learning rate does not scale with the image
size. With this Z the loss tends to cross-entropy as ``pi_label -> 0`` and is
bounded by ``H(pi_label) / Z`` (H the binary entropy) for a prediction that
puts no mass on the label (tests check both numerically).

Because the label is one-hot the KL terms have a closed form that needs no
clamping of ``m``: with ``q = p_y`` (the predicted probability of the label),

    KL(onehot || m) = -log(pi + (1 - pi) q)
    KL(p || m)      = -(1 - q) log(1 - pi) + q log q - q log(pi + (1 - pi) q)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from coseg.segment.knn import knn_indices

DEFAULT_PI_LABEL = 0.5
"""GJS paper: pi_label from 0.1 (clean labels) to 0.9 (heavy noise); 0.5 suits
the moderate, view-inconsistent noise of zero-shot labels."""


@dataclass(frozen=True)
class CoSegLossConfig:
    """Settings of the CoSeg loss (Eq. 10); paper values where it gives them."""

    pixel_loss: str = "js"
    """"js" (Eq. 8) or "ce" (the `--loss ce` ablation)."""
    pi_label: float = DEFAULT_PI_LABEL
    """Weight of the raw label in the JS loss (not in the paper)."""
    lambda_pix: float = 0.8
    """Weight of the pixel loss (paper)."""
    lambda_reg: float = 0.2
    """Weight of the 3D regulariser (paper)."""
    reg_scales: tuple[int, ...] = (3, 4)
    """Decoder levels whose fused features are regularised (paper: 3 and 4)."""
    reg_samples: int = 1000
    """M, sampled points per scale (not in the paper)."""
    reg_k: int = 8
    """K, neighbours per sampled point (not in the paper)."""
    lambda_logits: float = 0.0
    """Weight of the same KL regulariser on the decoder's output logits of the level-1 points
    (Gaussian Grouping's; not in the paper, which regularises the coarse levels only; 0 = off).
    docs/method.md records why it exists."""
    class_balance: float = 0.5
    """Exponent beta of the per-class pixel weights ``freq_c ** -beta`` (not in the paper;
    0 = unweighted as in Eq. 8, 1 = inverse class frequency). See `class_weights` and
    docs/method.md for the measurement behind 0.5."""

    def __post_init__(self) -> None:
        from coseg.settings import AT_LEAST_1, NON_NEGATIVE, OPEN_UNIT, Range, check_settings

        check_settings(self, "segmentation loss", {
            "pi_label": OPEN_UNIT, "lambda_pix": NON_NEGATIVE, "lambda_reg": NON_NEGATIVE,
            "lambda_logits": NON_NEGATIVE, "reg_scales": Range(1, 4), "reg_samples": AT_LEAST_1, "reg_k": AT_LEAST_1,
            "class_balance": NON_NEGATIVE}, {"pixel_loss": ("js", "ce")})

    def to_dict(self) -> dict:
        return asdict(self)


def _label_prob(probs: torch.Tensor, labels: torch.Tensor, ignore_index: int):
    valid = labels != ignore_index
    if valid.any():
        bad = labels[valid]
        if int(bad.min()) < 0 or int(bad.max()) >= probs.shape[-1]:
            raise ValueError(f"label ids must lie in 0..{probs.shape[-1] - 1} (or be {ignore_index})")
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    q = probs.gather(-1, safe.long().unsqueeze(-1)).squeeze(-1)
    return q, valid


def class_weights(counts: np.ndarray, beta: float) -> torch.Tensor:
    """Per-class pixel weights ``w_c = freq_c ** -beta``, scaled so the average pixel weighs 1.

    With beta = 0 every weight is 1 (the paper's plain mean). Larger beta lets rare classes
    (a vase, a picture) count more against large ones (floor, wall), which a bounded
    loss such as JS otherwise treats like label noise. Classes with no pixels get weight 0.

    Args:
        counts: [C] labelled training pixels per class.
        beta: exponent >= 0.

    Returns:
        [C] float32 weights with sum_c freq_c * w_c = 1.
    """
    if beta < 0:
        raise ValueError(f"class_balance must be >= 0, got {beta}")
    counts = np.asarray(counts, np.float64)
    freq = counts / max(counts.sum(), 1.0)
    w = np.where(freq > 0, np.power(np.maximum(freq, 1e-12), -beta), 0.0)
    w /= max(float((freq * w).sum()), 1e-12)
    return torch.from_numpy(w.astype(np.float32))


def _mean(values: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Plain mean of per-pixel losses, or their mean weighted by the label's class weight."""
    if weights is None:
        return values.mean()
    w = weights.to(values.dtype)[labels.long()]
    return (w * values).sum() / w.sum().clamp_min(1e-12)


def js_loss(probs: torch.Tensor, labels: torch.Tensor, pi_label: float = DEFAULT_PI_LABEL,
            ignore_index: int = -1, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Generalised JS loss between one-hot labels and predicted distributions.

    Args:
        probs: [P, C] predicted class probabilities (rows sum to 1).
        labels: [P] int label ids in 0..C-1, or `ignore_index`.
        pi_label: weight of the label distribution, in (0, 1).
        ignore_index: label value that is skipped.
        weights: optional [C] class weights (`class_weights`): a weighted mean instead.

    Returns:
        Scalar mean loss over the labelled pixels (0 when there are none).
    """
    if not 0.0 < pi_label < 1.0:
        raise ValueError(f"pi_label must lie in (0, 1), got {pi_label}")
    q, valid = _label_prob(probs, labels, ignore_index)
    if not valid.any():
        return probs.sum() * 0.0
    q = q[valid].clamp(0.0, 1.0)
    pi = pi_label
    log_m_y = torch.log(pi + (1.0 - pi) * q)
    kl_label = -log_m_y
    q_safe = q.clamp_min(1e-12)
    kl_pred = -(1.0 - q) * math.log(1.0 - pi) + q * torch.log(q_safe) - q * log_m_y
    z = -(1.0 - pi) * math.log(1.0 - pi)
    return _mean((pi * kl_label + (1.0 - pi) * kl_pred) / z, labels[valid], weights)


def js_loss_bound(pi_label: float) -> float:
    """Largest value `js_loss` can take: H(pi_label) / Z, reached when p_y = 0."""
    pi = pi_label
    entropy = -pi * math.log(pi) - (1.0 - pi) * math.log(1.0 - pi)
    return entropy / (-(1.0 - pi) * math.log(1.0 - pi))


def ce_loss(probs: torch.Tensor, labels: torch.Tensor, ignore_index: int = -1,
            weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy on probabilities (the `--loss ce` ablation).

    Args:
        probs: [P, C] predicted class probabilities.
        labels: [P] int label ids or `ignore_index`.
        weights: optional [C] class weights (`class_weights`): a weighted mean instead.

    Returns:
        Scalar mean of -log p_y over the labelled pixels (0 when there are none).
    """
    q, valid = _label_prob(probs, labels, ignore_index)
    if not valid.any():
        return probs.sum() * 0.0
    return _mean(-torch.log(q[valid].clamp_min(1e-12)), labels[valid], weights)


def neighbour_table(xyz: np.ndarray, k: int, include_self: bool = False) -> np.ndarray:
    """[P, k] int64: the k nearest points of every point of a set (itself excluded unless `include_self`).

    `kl_regulariser` looks its neighbours up here when a set is regularised many times.
    """
    p = len(xyz)
    k = max(1, min(k, p if include_self else p - 1))
    return knn_indices(xyz, xyz, k, exclude=None if include_self else np.arange(p))


def kl_regulariser(features: torch.Tensor, xyz: np.ndarray, num_samples: int, k: int,
                   rng: np.random.Generator, include_self: bool = False,
                   neighbours: np.ndarray | None = None) -> torch.Tensor:
    """3D neighbourhood KL regulariser of one feature scale (Eq. 9).

    Samples M points, finds their K nearest neighbours in 3D (themselves
    excluded unless `include_self`), turns every feature vector into a
    distribution by softmax and returns ``sum_j sum_k KL(f_j || f_k) / (M K)``.
    The paper writes 1/(MN) without defining N; we read N as the number of
    neighbours K, so the value is the mean KL per sampled pair.

    Args:
        features: [P, D] fused features (logits) at one scale.
        xyz: [P, 3] positions of the same points.
        num_samples: M (clamped to P).
        k: K neighbours (clamped to P - 1).
        rng: numpy random generator for the sampling.
        include_self: keep the point itself among its neighbours (Gaussian
            Grouping's variant).
        neighbours: optional [P, >= k] `neighbour_table` of the same points (built with
            the same `include_self`), instead of a KNN search per call.

    Returns:
        Scalar tensor (0 when P < 2).
    """
    p = features.shape[0]
    if p < 2:
        return features.sum() * 0.0
    m = min(num_samples, p)
    k = min(k, p if include_self else p - 1)
    sample = np.sort(rng.choice(p, size=m, replace=False))
    if neighbours is not None:
        neigh = neighbours[sample, :k]
    else:
        neigh = knn_indices(xyz[sample], xyz, k, exclude=None if include_self else sample)
    logp = torch.log_softmax(features, dim=-1)
    logp_j = logp.index_select(0, torch.from_numpy(sample)).unsqueeze(1)
    neigh = torch.from_numpy(np.ascontiguousarray(neigh, np.int64))
    logp_k = logp.index_select(0, neigh.reshape(-1)).reshape(*neigh.shape, -1)
    kl = (logp_j.exp() * (logp_j - logp_k)).sum(-1)
    return kl.sum() / (m * k)


def coseg_loss(probs: torch.Tensor, labels: torch.Tensor, fused: dict[int, torch.Tensor],
               level_xyz: list[np.ndarray], config: CoSegLossConfig, rng: np.random.Generator,
               ignore_index: int = -1, weights: torch.Tensor | None = None,
               neighbours: dict[int, np.ndarray] | None = None,
               logits: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The CoSeg loss of one view: lambda_pix * l_pix + lambda_reg * l_reg (Eq. 10).

    With ``config.lambda_logits > 0`` it adds ``lambda_logits`` times the same KL
    regulariser on `logits` (a departure, `CoSegLossConfig.lambda_logits`).

    Args:
        probs: [P, C] rendered, softmaxed segmentation of the labelled pixels.
        labels: [P] raw label ids (or `ignore_index`).
        fused: decoder's fused features per level (1..4).
        level_xyz: positions of the decoder's levels (``Hierarchy.xyz``, level n at n-1).
        config: `CoSegLossConfig`.
        rng: generator for the regulariser's sampling.
        weights: optional [C] class weights of the pixel loss (`class_weights`).
        neighbours: optional level -> `neighbour_table` of that level's points (self excluded).
        logits: [P_1, C] output logits of the level-1 points (needed when ``lambda_logits > 0``).

    Returns:
        (total loss, {"pix": value, "reg": value, "reg_logits": value}); levels missing from
        `fused` (the single-scale ablation) add no regulariser term.
    """
    if config.pixel_loss == "js":
        pix = js_loss(probs, labels, config.pi_label, ignore_index, weights)
    elif config.pixel_loss == "ce":
        pix = ce_loss(probs, labels, ignore_index, weights)
    else:
        raise ValueError(f"unknown pixel loss {config.pixel_loss!r} (js or ce)")
    reg = probs.sum() * 0.0
    for n in config.reg_scales:
        if n in fused:
            table = None if neighbours is None else neighbours.get(n)
            reg = reg + kl_regulariser(fused[n], level_xyz[n - 1], config.reg_samples, config.reg_k, rng,
                                       neighbours=table)
    total = config.lambda_pix * pix + config.lambda_reg * reg
    reg_logits = 0.0
    if config.lambda_logits > 0:
        if logits is None:
            raise ValueError("coseg_loss: lambda_logits > 0 needs the output logits")
        table = None if neighbours is None else neighbours.get(1)
        term = kl_regulariser(logits, level_xyz[0], config.reg_samples, config.reg_k, rng, neighbours=table)
        total = total + config.lambda_logits * term
        reg_logits = float(term.detach())
    return total, {"pix": float(pix.detach()), "reg": float(reg.detach()), "reg_logits": reg_logits}
