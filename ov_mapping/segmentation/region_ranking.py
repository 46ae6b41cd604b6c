"""Region Semantic Ranking (OV-NeRF, Liao et al.): a region takes the majority class of its pixels.

OV-NeRF labels every pixel with argmax_c cos(t_c, F(pixel)) from a dense CLIP feature map F, then, for each SAM
region, ranks the classes by how many of the region's pixels carry them and gives the whole region the top class.
Per-pixel CLIP labels are coarse and noisy at object boundaries; the region vote snaps them to SAM's boundaries.

Dense CLIP features come from either
- the keyframe's CLIP3R feature map when it lives in CLIP's embedding space (same width as the text embeddings:
  CLIP3R's head is trained to regress per-pixel object-level CLIP features), or
- :func:`sliding_window_features`: CLIP embeddings of overlapping square windows averaged per cell, the
  multi-scale patch scheme 3D-OVS and LERF use to get pixel-level CLIP features from an image-level model.

Pixels are handled on a coarse cell grid; region votes are area-weighted with ``models.dino.mask_coverage``, i.e.
they count pixels as the paper does, up to the cell quantisation.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ov_mapping.models.dino import mask_coverage
from ov_mapping.segmentation.crops import crop_padded
from ov_mapping.segmentation.mask_embedding import ImageEncoder


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Window starts covering ``0..length`` with ``stride`` steps; the last window ends exactly at ``length``."""
    if window >= length:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


def sliding_window_features(encoder: ImageEncoder, rgb: np.ndarray, window_fractions: Sequence[float] = (0.4,),
                            stride_fraction: float = 0.5) -> np.ndarray:
    """Dense CLIP features on a grid of cells.

    Each window (side = fraction x the image's short side, stride = ``stride_fraction`` x side) is embedded once;
    a cell's feature is the normalised mean of the windows containing its centre, over all scales.

    Args:
        rgb: (H, W, 3) uint8, non-empty.
    Returns:
        (gh, gw, D) float32, L2-normalised; cells are ``stride_fraction`` x the smallest window wide.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) == 0:
        raise ValueError(f"rgb must be a non-empty (H, W, 3) uint8 image, got {rgb.shape} {rgb.dtype}")
    if not window_fractions or not all(0 < f <= 1 for f in window_fractions) or not 0 < stride_fraction <= 1:
        raise ValueError("window fractions and stride_fraction must lie in (0, 1]")
    H, W = rgb.shape[:2]
    short = min(H, W)
    cell = max(1, round(min(window_fractions) * short * stride_fraction))
    gh, gw = -(-H // cell), -(-W // cell)
    centres_y = np.minimum((np.arange(gh) + 0.5) * cell, H - 0.5)
    centres_x = np.minimum((np.arange(gw) + 0.5) * cell, W - 0.5)
    boxes = []
    for fraction in window_fractions:
        side = max(1, round(fraction * short))
        stride = max(1, round(side * stride_fraction))
        boxes += [(t, l, t + side, l + side) for t in window_starts(H, side, stride) for l in window_starts(W, side, stride)]
    embeddings = encoder.encode_images([crop_padded(rgb, box) for box in boxes])
    total = np.zeros((gh, gw, embeddings.shape[1]), np.float32)
    for (t, l, b, r), e in zip(boxes, embeddings):
        rows = (centres_y >= t) & (centres_y < b)
        cols = (centres_x >= l) & (centres_x < r)
        total[np.ix_(rows, cols)] += e
    norms = np.linalg.norm(total, axis=2, keepdims=True)
    return np.where(norms > 1e-12, total / np.maximum(norms, 1e-12), 0.0).astype(np.float32)


def label_grid(features: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """Per-cell class: argmax of cosine similarity with the text embeddings.

    Args:
        features: (h, w, D) float; rows of zeros or non-finite values mean "no feature".
        text_embeddings: (K, D) float, L2-normalised.
    Returns:
        (h, w) int32 class indices, -1 where a cell has no feature.
    """
    if features.ndim != 3 or text_embeddings.ndim != 2 or features.shape[2] != text_embeddings.shape[1]:
        raise ValueError(f"features (h, w, D) and text (K, D) must share D, got {features.shape} and "
                         f"{text_embeddings.shape}")
    flat = np.nan_to_num(features.reshape(-1, features.shape[2]).astype(np.float32), nan=0.0, posinf=0.0,
                         neginf=0.0)
    norms = np.linalg.norm(flat, axis=1)
    labels = np.argmax(flat @ text_embeddings.T.astype(np.float32), axis=1).astype(np.int32)
    labels[norms <= 1e-12] = -1
    return labels.reshape(features.shape[:2])


def rank_region_labels(labels: np.ndarray, masks: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Region Semantic Ranking: each mask's majority class over its pixels.

    Args:
        labels: (h, w) int class per cell, -1 for none (the grid spans the whole image).
        masks: (M, H, W) bool image-resolution regions.
        n_classes: K.
    Returns:
        classes: (M,) int32, -1 for a region with no labelled pixel;
        shares: (M,) float32, the winning class's share of the region's labelled area (the vote's confidence).
    """
    if labels.ndim != 2 or masks.ndim != 3:
        raise ValueError(f"labels must be (h, w) and masks (M, H, W), got {labels.shape} and {masks.shape}")
    if n_classes <= 0 or labels.max(initial=-1) >= n_classes:
        raise ValueError(f"labels must lie in [-1, {n_classes}), n_classes > 0")
    M = masks.shape[0]
    coverage = mask_coverage(masks, labels.shape).reshape(M, -1)
    flat = labels.ravel()
    onehot = np.zeros((flat.size, n_classes), np.float32)
    known = flat >= 0
    onehot[np.flatnonzero(known), flat[known]] = 1.0
    votes = coverage @ onehot
    total = votes.sum(axis=1)
    classes = np.where(total > 0, votes.argmax(axis=1), -1).astype(np.int32)
    shares = np.where(total > 0, votes.max(axis=1, initial=0.0) / np.maximum(total, 1e-12), 0.0)
    return classes, shares.astype(np.float32)
