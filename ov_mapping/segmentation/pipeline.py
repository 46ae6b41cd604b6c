"""Keyframe -> segments with 3D points and descriptors (Ov3R's 2D-3D OVS front end). Pure: no ROS.

For each keyframe:

1. region proposals from a :class:`~ov_mapping.segmentation.mask_sources.MaskSource` (or masks handed in, e.g.
   by the reconstruction stage that already computed them for CLIP3R);
2. masks smaller than ``min_mask_area`` (``dropped_small``) or covering nearly the whole image
   (``dropped_background``: a uniform or empty view yields one whole-image region, which is not an object) are
   dropped;
3. 2D-3D association: each mask is carried to the pointmap grid and keeps the finite, confident points under it;
   a mask with fewer than ``min_points`` such points is dropped (``dropped_no_3d``) before any network runs on it;
4. per-mask CLIP embedding from three crops (:mod:`mask_embedding`), kept in ``Segment.clip_embedding``;
5. with a vocabulary: Region Semantic Ranking (:mod:`region_ranking`) labels each segment;
6. DINO patch features and the keyframe's CLIP3R feature map, each pooled per mask by area;
7. the fused descriptor (:mod:`descriptor`) of CLIP, DINO and CLIP3R parts.

Descriptor weights (defaults of :class:`SegmentationConfig`): CLIP 0.5, DINO 0.3, CLIP3R 0.2. CLIP carries the
open-vocabulary semantics and is the one space shared with text, so it leads. DINO features separate object
instances and boundaries well where CLIP is coarse (3D-OVS uses them for exactly that), which matters for merging
segments into instances. CLIP3R features are CLIP-space too but predicted, and only present with CLIP3R weights, so
they refine rather than dominate. Ov3R learns per-dimension weights; without its training data these fixed
weights are the documented stand-in.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Optional, Protocol, Sequence

import numpy as np

from ov_mapping.core.types import Keyframe, Segment, SegmentedKeyframe
from ov_mapping.models.dino import pool_patch_features
from ov_mapping.segmentation.association import lift_masks, masks_to_grid, valid_point_mask
from ov_mapping.segmentation.descriptor import DescriptorLayout, DescriptorPart
from ov_mapping.segmentation.mask_embedding import CropWeights, MaskClipEmbedder
from ov_mapping.segmentation.mask_sources import Mask, MaskSource, as_mask_array
from ov_mapping.segmentation.region_ranking import label_grid, rank_region_labels, sliding_window_features

logger = logging.getLogger(__name__)


class ClipEncoder(Protocol):
    """What the pipeline needs from CLIP (``models.clip.ClipModel`` is one)."""

    embed_dim: int
    name: str

    def encode_images(self, images: list[np.ndarray]) -> np.ndarray: ...

    def encode_text(self, texts: Sequence[str]) -> np.ndarray: ...


class PatchEncoder(Protocol):
    """What the pipeline needs from DINO (``models.dino.DinoModel`` is one)."""

    feature_dim: int

    def patch_features(self, rgb: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class SegmentationConfig:
    """Thresholds and weights of :class:`SegmentationPipeline`.

    min_mask_area: image pixels a mask needs.
    max_mask_fraction: masks covering more of the image than this are background.
    min_points: valid 3D points a segment needs.
    min_confidence: pointmap confidence a point needs (strictly above).
    min_coverage: share of a pointmap pixel's image area a mask must cover to own that pixel.
    clip_weight, dino_weight, clip3r_weight: descriptor part weights (normalised to sum 1 over present parts).
    clip3r_dim: channels of CLIP3R feature maps; None leaves the CLIP3R part out of the descriptor.
    rsr_window_fractions, rsr_stride_fraction: sliding windows for per-pixel CLIP labels (Region Semantic Ranking)
        when the keyframe carries no CLIP-space feature map.
    """

    min_mask_area: int = 100
    max_mask_fraction: float = 0.95
    min_points: int = 10
    min_confidence: float = 0.0
    min_coverage: float = 0.5
    crop_weights: CropWeights = CropWeights()
    clip_weight: float = 0.5
    dino_weight: float = 0.3
    clip3r_weight: float = 0.2
    clip3r_dim: Optional[int] = None
    rsr_window_fractions: tuple[float, ...] = (0.4,)
    rsr_stride_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.min_mask_area < 0 or self.min_points < 1:
            raise ValueError("min_mask_area must be >= 0 and min_points >= 1")
        if not 0.0 < self.max_mask_fraction <= 1.0 or not 0.0 < self.min_coverage <= 1.0:
            raise ValueError("max_mask_fraction and min_coverage must lie in (0, 1]")
        if self.clip_weight <= 0 or self.dino_weight < 0 or self.clip3r_weight < 0:
            raise ValueError("clip_weight must be > 0, dino_weight and clip3r_weight >= 0")
        if self.clip3r_dim is not None and self.clip3r_dim <= 0:
            raise ValueError(f"clip3r_dim must be positive or None, got {self.clip3r_dim}")


@dataclass
class SegmentationStats:
    """Mask counts: masks_in = dropped_small + dropped_background + dropped_no_3d + segments_out."""

    keyframes: int = 0
    masks_in: int = 0
    dropped_small: int = 0
    dropped_background: int = 0
    dropped_no_3d: int = 0
    segments_out: int = 0

    def add(self, other: "SegmentationStats") -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class _Kept:
    """Masks that survived filtering, with their pointmap-grid masks and 3D points."""

    indices: np.ndarray  # (S,) int, positions in the input mask list
    masks: np.ndarray  # (S, H, W) bool
    scores: list[float]
    grid_masks: np.ndarray  # (S, h, w) bool
    points: list[np.ndarray]  # (N_i, 3) float32 each


class SegmentationPipeline:
    """Turns keyframes into segmented keyframes; see the module docstring for the steps.

    Args:
        mask_source: where masks come from (``mask_sources.make_mask_source``).
        clip: CLIP image/text encoder.
        dino: optional DINO patch encoder; without it the descriptor has no DINO part.
        config: thresholds and weights.
        vocabulary: optional class names for Region Semantic Ranking (see :meth:`set_vocabulary`).
    """

    def __init__(self, mask_source: MaskSource, clip: ClipEncoder, dino: Optional[PatchEncoder] = None,
                 config: SegmentationConfig = SegmentationConfig(), vocabulary: Optional[Sequence[str]] = None):
        self.mask_source = mask_source
        self.clip = clip
        self.dino = dino
        self.config = config
        self.embedder = MaskClipEmbedder(clip, config.crop_weights)
        parts = [DescriptorPart("clip", int(clip.embed_dim), config.clip_weight)]
        if dino is not None and config.dino_weight > 0:
            parts.append(DescriptorPart("dino", int(dino.feature_dim), config.dino_weight))
        if config.clip3r_dim is not None and config.clip3r_weight > 0:
            parts.append(DescriptorPart("clip3r", config.clip3r_dim, config.clip3r_weight))
        self.layout = DescriptorLayout(parts)
        self.vocabulary: list[str] = []
        self._text: Optional[np.ndarray] = None
        self.last_stats = SegmentationStats()
        self.total_stats = SegmentationStats()
        self._warned_feature_map = False
        self.set_vocabulary(vocabulary)
        logger.info("segmentation pipeline: masks=%s clip=%s dino=%s descriptor=%s", mask_source.describe(),
                    getattr(clip, "name", type(clip).__name__), "on" if dino is not None else "off", self.layout)

    def set_vocabulary(self, vocabulary: Optional[Sequence[str]]) -> None:
        """Class names for Region Semantic Ranking; None or empty turns labelling off."""
        names = [str(v).strip() for v in (vocabulary or [])]
        if any(not n for n in names) or len(set(names)) != len(names):
            raise ValueError(f"vocabulary entries must be non-empty and unique, got {list(vocabulary or [])}")
        self.vocabulary = names
        self._text = self.clip.encode_text(names) if names else None

    def process(self, keyframe: Keyframe, masks: Optional[Sequence[Mask]] = None,
                clip_embeddings: Optional[np.ndarray] = None) -> SegmentedKeyframe:
        """Segment ``keyframe``.

        Args:
            keyframe: the reconstruction stage's output.
            masks: image-resolution masks computed upstream (the CLIP3R reconstruction path); the mask source is
                skipped when given and the result's ``mask_source`` reads "upstream".
            clip_embeddings: (len(masks), D) CLIP embeddings of those masks computed upstream; only with ``masks``.
        """
        if not isinstance(keyframe, Keyframe):
            raise TypeError(f"process() takes a core.types.Keyframe, got {type(keyframe).__name__}")
        if clip_embeddings is not None:
            if masks is None:
                raise ValueError("clip_embeddings need the masks they were computed from")
            clip_embeddings = np.asarray(clip_embeddings, dtype=np.float32)
            if clip_embeddings.shape != (len(masks), self.embedder.embed_dim):
                raise ValueError(f"clip_embeddings must be ({len(masks)}, {self.embedder.embed_dim}), got "
                                 f"{clip_embeddings.shape}")
        rgb = keyframe.rgb
        if rgb.dtype != np.uint8:
            raise ValueError(f"keyframe rgb must be uint8, got {rgb.dtype}")
        source = self.mask_source.name if masks is None else "upstream"
        stats = SegmentationStats(keyframes=1)
        segments: list[Segment] = []
        if rgb.shape[0] > 0 and rgb.shape[1] > 0:
            if masks is None:
                masks = self.mask_source.generate(rgb, keyframe.pointmap)
            kept = self._filter(keyframe, list(masks), stats)
            if kept.masks.shape[0]:
                given = None if clip_embeddings is None else clip_embeddings[kept.indices]
                segments = self._describe(keyframe, kept, given)
        stats.segments_out = len(segments)
        self.last_stats = stats
        self.total_stats.add(stats)
        return SegmentedKeyframe(keyframe=keyframe, segments=segments, mask_source=source)

    def _filter(self, keyframe: Keyframe, masks: list[Mask], stats: SegmentationStats) -> _Kept:
        H, W = keyframe.rgb.shape[:2]
        array = as_mask_array(masks, (H, W))
        stats.masks_in = len(masks)
        areas = array.reshape(len(masks), -1).sum(axis=1)
        small = areas < max(1, self.config.min_mask_area)
        background = ~small & (areas > self.config.max_mask_fraction * H * W)
        stats.dropped_small = int(small.sum())
        stats.dropped_background = int(background.sum())
        keep = np.flatnonzero(~small & ~background)
        grid = masks_to_grid(array[keep], keyframe.pointmap.shape[:2], self.config.min_coverage)
        valid = valid_point_mask(keyframe.pointmap, keyframe.confidence, self.config.min_confidence)
        points = lift_masks(grid, keyframe.pointmap, valid)
        supported = [i for i, p in enumerate(points) if len(p) >= self.config.min_points]
        stats.dropped_no_3d = len(keep) - len(supported)
        indices = keep[supported]
        return _Kept(indices, array[indices], [float(masks[i].score) for i in indices], grid[supported],
                     [points[i] for i in supported])

    def _describe(self, keyframe: Keyframe, kept: _Kept, clip: Optional[np.ndarray]) -> list[Segment]:
        count = kept.masks.shape[0]
        if clip is None:
            clip = self.embedder.embed(keyframe.rgb, kept.masks)
        else:
            norms = np.linalg.norm(clip, axis=1, keepdims=True)
            clip = np.where(norms > 1e-12, clip / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
        parts: dict[str, Optional[np.ndarray]] = {"clip": clip}
        if "dino" in self.layout.slices:
            parts["dino"] = pool_patch_features(self.dino.patch_features(keyframe.rgb), kept.masks)
        feature_grid = self._feature_grid(keyframe)
        if "clip3r" in self.layout.slices and feature_grid is not None:
            parts["clip3r"] = pool_patch_features(feature_grid, kept.masks)
        descriptors = self.layout.fuse(parts, count)
        labels, shares = self._rank(keyframe, kept.masks, feature_grid)
        return [
            Segment(
                segment_id=i,
                mask=kept.grid_masks[i],
                points=kept.points[i],
                descriptor=descriptors[i],
                clip_embedding=clip[i],
                label=labels[i],
                label_score=float(shares[i]),
                score=kept.scores[i],
            )
            for i in range(count)
        ]

    def _feature_grid(self, keyframe: Keyframe) -> Optional[np.ndarray]:
        """The keyframe's CLIP3R feature map as (hf, wf, C), or None; checks C against the config."""
        if keyframe.feature_map is None:
            return None
        grid = np.transpose(keyframe.feature_map, (1, 2, 0))
        if "clip3r" in self.layout.slices and grid.shape[2] != self.config.clip3r_dim:
            raise ValueError(f"keyframe feature_map has {grid.shape[2]} channels, clip3r_dim is "
                             f"{self.config.clip3r_dim}")
        if "clip3r" not in self.layout.slices and not self._warned_feature_map:
            logger.warning("keyframes carry a %d-channel feature map but clip3r_dim is unset: the descriptor "
                           "leaves CLIP3R features out", grid.shape[2])
            self._warned_feature_map = True
        return grid

    def _rank(self, keyframe: Keyframe, masks: np.ndarray, feature_grid: Optional[np.ndarray]
              ) -> tuple[list[str], np.ndarray]:
        """Region Semantic Ranking labels and vote shares ("" and 0 without a vocabulary)."""
        count = masks.shape[0]
        if self._text is None:
            return [""] * count, np.zeros(count, np.float32)
        if feature_grid is not None and feature_grid.shape[2] == self._text.shape[1]:
            dense = feature_grid  # CLIP3R features live in CLIP space: no extra CLIP passes needed
        else:
            dense = sliding_window_features(self.clip, keyframe.rgb, self.config.rsr_window_fractions,
                                            self.config.rsr_stride_fraction)
        classes, shares = rank_region_labels(label_grid(dense, self._text), masks, len(self.vocabulary))
        return [self.vocabulary[c] if c >= 0 else "" for c in classes], shares
