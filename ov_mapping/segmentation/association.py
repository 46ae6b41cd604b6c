"""2D-3D association: which pointmap points lie under each image mask.

The pointmap may be coarser than the image (CLIP3R predicts 224 x 224 for any camera): a mask is carried to the
pointmap grid by area, a pointmap pixel belonging to the mask when the mask covers at least ``min_coverage`` of
the image area it stands for. Only finite points with confidence above ``min_confidence`` count as support.
"""

from __future__ import annotations

import numpy as np

from ov_mapping.models.dino import mask_coverage


def masks_to_grid(masks: np.ndarray, grid: tuple[int, int], min_coverage: float = 0.5) -> np.ndarray:
    """(M, h, w) bool: pointmap pixels covered by each mask (M, H, W) for at least ``min_coverage`` of their area."""
    if not 0.0 < min_coverage <= 1.0:
        raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}")
    return mask_coverage(masks, grid) >= min_coverage


def valid_point_mask(pointmap: np.ndarray, confidence: np.ndarray, min_confidence: float) -> np.ndarray:
    """(h, w) bool: finite points with confidence above ``min_confidence`` (NaN confidence is invalid)."""
    if pointmap.ndim != 3 or pointmap.shape[2] != 3 or confidence.shape != pointmap.shape[:2]:
        raise ValueError(f"pointmap must be (h, w, 3) and confidence (h, w), got {pointmap.shape} and "
                         f"{confidence.shape}")
    with np.errstate(invalid="ignore"):
        return np.isfinite(pointmap).all(axis=2) & (confidence > min_confidence)


def lift_masks(grid_masks: np.ndarray, pointmap: np.ndarray, valid: np.ndarray) -> list[np.ndarray]:
    """The (N_i, 3) float32 valid points under each grid mask (M, h, w)."""
    if grid_masks.ndim != 3 or grid_masks.shape[1:] != valid.shape:
        raise ValueError(f"grid masks must be (M, {valid.shape[0]}, {valid.shape[1]}), got {grid_masks.shape}")
    return [pointmap[m & valid].astype(np.float32) for m in grid_masks]
