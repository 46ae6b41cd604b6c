"""Image crops around a mask, for embedding the region with an image-level model such as CLIP.

All crops are square (CLIP resizes the short side and centre-crops, which would cut elongated objects) and are
padded with a fill colour where the square leaves the image.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

# CLIP's mean pixel (OpenAI statistics, 0..255): pixels of this colour normalise to zero input.
CLIP_MEAN_RGB = (123, 117, 104)


def mask_bbox(mask: np.ndarray) -> Optional[tuple[int, int, int, int]]:
    """(top, left, bottom, right) of ``mask`` (H, W) bool, bottom/right exclusive; None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def square_box(bbox: tuple[int, int, int, int], scale: float, min_side: int) -> tuple[int, int, int, int]:
    """A square around ``bbox``'s centre whose side is ``scale`` x its longer side (at least ``min_side``)."""
    top, left, bottom, right = bbox
    side = max(min_side, int(np.ceil(max(bottom - top, right - left) * scale)))
    cy, cx = (top + bottom) / 2.0, (left + right) / 2.0
    t, l = int(np.floor(cy - side / 2.0)), int(np.floor(cx - side / 2.0))
    return t, l, t + side, l + side


def crop_padded(rgb: np.ndarray, box: tuple[int, int, int, int], fill: tuple[int, int, int] = CLIP_MEAN_RGB
                ) -> np.ndarray:
    """The pixels of ``rgb`` (H, W, 3) inside ``box`` (may extend past the image), filled with ``fill`` outside."""
    top, left, bottom, right = box
    H, W = rgb.shape[:2]
    out = np.empty((bottom - top, right - left, 3), np.uint8)
    out[:] = fill
    t, l, b, r = max(top, 0), max(left, 0), min(bottom, H), min(right, W)
    if b > t and r > l:
        out[t - top:b - top, l - left:r - left] = rgb[t:b, l:r]
    return out


def region_crops(rgb: np.ndarray, mask: np.ndarray, context_scale: float = 2.0, tight_scale: float = 1.1,
                 min_side: int = 16, fill: tuple[int, int, int] = CLIP_MEAN_RGB) -> Optional[dict[str, np.ndarray]]:
    """The three views of a region that :mod:`mask_embedding` combines.

    Returns None for an empty mask, else a dict of square (s, s, 3) uint8 crops:
        "tight": the region's bounding square (``tight_scale`` x its longer side);
        "context": a ``context_scale`` x larger square around the same centre;
        "masked": the tight crop with every pixel outside the mask set to ``fill``.
    """
    bbox = mask_bbox(mask)
    if bbox is None:
        return None
    tight_box = square_box(bbox, tight_scale, min_side)
    tight = crop_padded(rgb, tight_box, fill)
    inside = crop_padded(mask[..., None].astype(np.uint8).repeat(3, axis=2), tight_box, (0, 0, 0))[..., 0] > 0
    masked = tight.copy()
    masked[~inside] = fill
    context = crop_padded(rgb, square_box(bbox, tight_scale * context_scale, min_side), fill)
    return {"tight": tight, "context": context, "masked": masked}
