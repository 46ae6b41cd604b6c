"""One CLIP embedding per mask, from several crops of the region (OpenScene / OVSeg style).

Weights of the crops (defaults of :class:`CropWeights`), and why:

- ``masked`` 0.4: the tight crop with the background blanked to CLIP's mean colour shows the object alone, so it
  is the most specific view; OVSeg shows, though, that vanilla CLIP sees blank areas as out-of-distribution
  (they cost it accuracy until its mask-prompt tuning), so it does not get the majority alone.
- ``tight`` 0.4: the bounding square keeps natural image statistics with the object dominating the view;
  neighbours leak in at the corners.
- ``context`` 0.2: a square twice as large disambiguates small or textureless regions by their surroundings
  (a cushion on a sofa, a handle on a door), as OpenScene's multi-scale crops do, but mostly shows other things,
  hence the smallest weight.

Each crop embedding is L2-normalised, the weighted sum is normalised again, so the result stays in CLIP's text
embedding space (comparable with ``ClipModel.encode_text``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ov_mapping.segmentation.crops import region_crops

CROP_NAMES = ("masked", "tight", "context")


class ImageEncoder(Protocol):
    """What the embedder needs from a CLIP model (``models.clip.ClipModel`` is one)."""

    embed_dim: int

    def encode_images(self, images: list[np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True)
class CropWeights:
    """Relative weights of the three crops and the context crop's size (x the tight crop's side)."""

    masked: float = 0.4
    tight: float = 0.4
    context: float = 0.2
    context_scale: float = 2.0

    def __post_init__(self) -> None:
        if min(self.masked, self.tight, self.context) < 0 or self.masked + self.tight + self.context <= 0:
            raise ValueError(f"crop weights must be >= 0 with a positive sum, got {self}")
        if self.context_scale < 1.0:
            raise ValueError(f"context_scale must be >= 1, got {self.context_scale}")

    def as_array(self) -> np.ndarray:
        """(3,) weights in :data:`CROP_NAMES` order, summing to 1."""
        w = np.array([self.masked, self.tight, self.context], np.float32)
        return w / w.sum()


class MaskClipEmbedder:
    """Embeds image regions with a CLIP image encoder, combining several crops per region."""

    def __init__(self, encoder: ImageEncoder, weights: CropWeights = CropWeights()) -> None:
        self.encoder = encoder
        self.weights = weights
        self.embed_dim = int(encoder.embed_dim)

    def embed(self, rgb: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """CLIP embeddings of regions.

        Args:
            rgb: (H, W, 3) uint8.
            masks: (M, H, W) bool.
        Returns:
            (M, D) float32, L2-normalised; a zero row for an empty mask.
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
        if masks.ndim != 3 or masks.dtype != bool or masks.shape[1:] != rgb.shape[:2]:
            raise ValueError(f"masks must be (M, {rgb.shape[0]}, {rgb.shape[1]}) bool, got {masks.shape} {masks.dtype}")
        weights = self.weights.as_array()
        used = [name for name, w in zip(CROP_NAMES, weights) if w > 0]
        crops, owners = [], []
        for i, mask in enumerate(masks):
            views = region_crops(rgb, mask, context_scale=self.weights.context_scale)
            if views is not None:
                crops.extend(views[name] for name in used)
                owners.append(i)
        out = np.zeros((len(masks), self.embed_dim), np.float32)
        if not owners:
            return out
        embeddings = self.encoder.encode_images(crops).reshape(len(owners), len(used), self.embed_dim)
        used_weights = np.array([w for w in weights if w > 0], np.float32)
        combined = np.einsum("c,mcd->md", used_weights, embeddings)
        out[owners] = combined / np.maximum(np.linalg.norm(combined, axis=1, keepdims=True), 1e-12)
        return out
