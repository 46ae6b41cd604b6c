"""Build the segmentation pipeline from a node's parameters, and say why when it cannot be built.

No ROS here: the segmentation node passes its parameter values in a ``SegmenterConfig`` and gets back a ``Segmenter``
(or None with the reason, e.g. "no CLIP weights"), which it logs and reports on /diagnostics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ov_mapping.core.types import Keyframe, Segment, SegmentedKeyframe
from ov_mapping.segmentation.mask_sources import Mask


@dataclass(frozen=True)
class SegmenterConfig:
    mask_source: str = "auto"
    sam_checkpoint: str = ""
    sam_architecture: str = "vit_b"
    sam_points_per_side: int = 32
    sam_pred_iou_thresh: float = 0.88
    sam_stability_score_thresh: float = 0.95
    min_mask_area: int = 100
    clip_model: str = "clip_vit_b32_laion2b_s34b_b79k"
    clip_weights: str = ""
    clip_config: str = ""
    dino_checkpoint: str = ""
    min_points: int = 10
    min_confidence: float = 0.0
    device: str = "cpu"


def upsample_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A (h, w) bool mask at (height, width) by nearest neighbour (pointmap resolution -> image resolution)."""
    rows = np.arange(height) * mask.shape[0] // height
    cols = np.arange(width) * mask.shape[1] // width
    return mask[rows[:, None], cols[None, :]]


class Segmenter:
    """The pipeline plus the glue the node needs: upstream segments as masks, vocabulary, counters."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline

    def set_vocabulary(self, labels: Optional[Sequence[str]]) -> None:
        self.pipeline.set_vocabulary(labels)

    def process(self, keyframe: Keyframe, upstream: Optional[list[Segment]] = None) -> SegmentedKeyframe:
        """Segment ``keyframe``; segments computed upstream (masks + CLIP embeddings) are reused when given."""
        if not upstream:
            return self.pipeline.process(keyframe)
        height, width = keyframe.rgb.shape[:2]
        masks = [Mask(upsample_mask(s.mask, height, width), float(s.score)) for s in upstream]
        embeddings = None
        if all(s.clip_embedding is not None for s in upstream):
            embeddings = np.stack([s.clip_embedding for s in upstream])
        return self.pipeline.process(keyframe, masks, embeddings)

    def stats(self) -> dict:
        return asdict(self.pipeline.total_stats)


def build_segmenter(config: SegmenterConfig) -> tuple[Optional[Segmenter], str]:
    """(Segmenter, what was built) or (None, why not). Bad values raise ValueError; missing weights do not."""
    from ov_mapping.models.registry import missing_clip_weights

    if config.mask_source == "passthrough":
        return None, "mask_source is 'passthrough'"
    missing = missing_clip_weights(config.clip_model, config.clip_weights, config.clip_config)
    if missing:
        return None, f"no CLIP weights ({missing})"
    # torch and the model libraries load only when semantics will run.
    from ov_mapping.models.clip import load_clip
    from ov_mapping.segmentation.mask_sources import make_mask_source
    from ov_mapping.segmentation.pipeline import SegmentationConfig, SegmentationPipeline

    clip = load_clip(config.clip_model, config.clip_weights, config.clip_config, config.device)
    sam = {"architecture": config.sam_architecture, "device": config.device,
           "points_per_side": config.sam_points_per_side, "pred_iou_thresh": config.sam_pred_iou_thresh,
           "stability_score_thresh": config.sam_stability_score_thresh}
    sam.update({"checkpoint": config.sam_checkpoint} if config.sam_checkpoint else {})
    if config.mask_source == "sam":
        mask_source = make_mask_source("sam", **sam)
    elif config.mask_source == "graph":
        mask_source = make_mask_source("graph")
    else:
        mask_source = make_mask_source("auto", **{f"sam_{k}": v for k, v in sam.items()})
    dino = _load_dino(config)
    pipeline = SegmentationPipeline(mask_source, clip, dino, SegmentationConfig(
        min_mask_area=config.min_mask_area, min_points=config.min_points, min_confidence=config.min_confidence))
    parts = [f"masks: {mask_source.describe()}", f"CLIP: {clip.name}", f"DINO: {'yes' if dino else 'no weights'}"]
    return Segmenter(pipeline), ", ".join(parts)


def _load_dino(config: SegmenterConfig):
    from ov_mapping.models.dino import DinoModel

    if config.dino_checkpoint:
        if not Path(config.dino_checkpoint).is_file():
            raise ValueError(f"dino_checkpoint {config.dino_checkpoint} does not exist")
        return DinoModel.from_checkpoint(config.dino_checkpoint, device=config.device)
    try:
        return DinoModel.from_registry(device=config.device)
    except FileNotFoundError:
        return None
