"""Where a keyframe's 2D region proposals come from: one interface, several sources.

- ``"sam"``: Segment Anything's automatic mask generator (:mod:`ov_mapping.models.sam`); needs SAM weights.
- ``"graph"``: graph-based segmentation (:mod:`ov_mapping.segmentation.graph_segmentation`) on colour and, when
  a pointmap is given, 3D edges. CPU-only, no weights; a partition of the image rather than object proposals.
- ``"auto"``: SAM when its weights are on disk, the graph source otherwise.

:func:`make_mask_source` builds one by name and logs which source was chosen and why.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ov_mapping.segmentation.components import remove_small_regions
from ov_mapping.segmentation.graph_segmentation import GraphSegmentationParams, segment_graph

logger = logging.getLogger(__name__)

MASK_SOURCES = ("sam", "graph", "auto")


@dataclass
class Mask:
    """One region proposal: ``mask`` (H, W) bool at the image's resolution; ``score`` its quality in [0, 1]."""

    mask: np.ndarray
    score: float = 1.0

    def __post_init__(self) -> None:
        if self.mask.ndim != 2 or self.mask.dtype != bool:
            raise ValueError(f"a mask must be (H, W) bool, got {self.mask.shape} {self.mask.dtype}")

    @property
    def area(self) -> int:
        return int(self.mask.sum())


def check_rgb(rgb: np.ndarray) -> None:
    """Raise ValueError unless ``rgb`` is (H, W, 3) uint8 (H or W may be 0)."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        got = f"{rgb.shape} {rgb.dtype}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"rgb must be an (H, W, 3) uint8 array, got {got}")


class MaskSource(ABC):
    """Turns an RGB image (and optionally its pointmap) into region proposals."""

    name: str = ""

    @abstractmethod
    def generate(self, rgb: np.ndarray, pointmap: Optional[np.ndarray] = None) -> list[Mask]:
        """Region proposals for ``rgb`` (H, W, 3) uint8; ``pointmap`` (h, w, 3) float, NaN where unknown."""

    @abstractmethod
    def describe(self) -> str:
        """One line naming the source and its settings, for logs."""


class GraphMaskSource(MaskSource):
    """Every region of a graph-based segmentation becomes a mask (score 1.0)."""

    name = "graph"

    def __init__(self, params: GraphSegmentationParams = GraphSegmentationParams(), use_pointmap: bool = True):
        self.params = params
        self.use_pointmap = use_pointmap

    def generate(self, rgb: np.ndarray, pointmap: Optional[np.ndarray] = None) -> list[Mask]:
        check_rgb(rgb)
        if rgb.shape[0] == 0 or rgb.shape[1] == 0:
            return []
        labels = segment_graph(rgb, pointmap if self.use_pointmap else None, self.params)
        counts = np.bincount(labels.ravel())
        return [Mask(labels == i, 1.0) for i in np.flatnonzero(counts >= self.params.min_size)]

    def describe(self) -> str:
        p = self.params
        return (f"graph (k={p.k}, sigma={p.sigma}, min_size={p.min_size}, max_side={p.max_side}, "
                f"3D edges={'on' if self.use_pointmap and p.geometry_weight > 0 else 'off'})")


class SamMaskSource(MaskSource):
    """SAM's automatic masks, then holes and islands below ``min_mask_region_area`` removed (numpy).

    Args:
        generator: a segment_anything ``SamAutomaticMaskGenerator`` (see ``models.sam.make_mask_generator``).
        min_mask_region_area: pixels; 0 disables the cleanup.
        label: what :meth:`describe` reports (e.g. the weights' name).
    """

    name = "sam"

    def __init__(self, generator: Any, min_mask_region_area: int = 0, label: str = "sam") -> None:
        if min_mask_region_area < 0:
            raise ValueError(f"min_mask_region_area must be >= 0, got {min_mask_region_area}")
        self.generator = generator
        self.min_mask_region_area = min_mask_region_area
        self.label = label

    def generate(self, rgb: np.ndarray, pointmap: Optional[np.ndarray] = None) -> list[Mask]:
        from ov_mapping.models.sam import generate_sam_masks  # segment_anything loads only when SAM is used

        check_rgb(rgb)
        if rgb.shape[0] == 0 or rgb.shape[1] == 0:
            return []
        masks = []
        for mask, score in generate_sam_masks(self.generator, rgb):
            if self.min_mask_region_area > 0:
                mask = remove_small_regions(mask, self.min_mask_region_area)
            if mask.sum() >= max(1, self.min_mask_region_area):
                masks.append(Mask(mask, float(np.clip(score, 0.0, 1.0))))
        return masks

    def describe(self) -> str:
        g = self.generator
        return (f"sam ({self.label}; points_per_side={g.point_grids[0].shape[0] ** 0.5:.0f}, "
                f"pred_iou_thresh={g.pred_iou_thresh}, stability_score_thresh={g.stability_score_thresh}, "
                f"crop_n_layers={g.crop_n_layers}, min_mask_region_area={self.min_mask_region_area})")


def _split_params(params: dict, cls: type) -> tuple[dict, dict]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in params.items() if k in names}, {k: v for k, v in params.items() if k not in names}


def _make_graph(params: dict) -> GraphMaskSource:
    own, rest = _split_params(params, GraphSegmentationParams)
    use_pointmap = rest.pop("use_pointmap", True)
    if rest:
        raise ValueError(f"unknown graph mask source parameters {sorted(rest)}; known: "
                         f"{sorted(f.name for f in fields(GraphSegmentationParams)) + ['use_pointmap']}")
    return GraphMaskSource(GraphSegmentationParams(**own), bool(use_pointmap))


def _sam_checkpoint(params: dict) -> tuple[Optional[Path], str, str]:
    """(checkpoint path or None when absent, architecture, label) from the SAM parameters."""
    from ov_mapping.models.registry import get_weights, local_path

    checkpoint = params.get("checkpoint")
    if checkpoint:
        path = Path(checkpoint).expanduser()
        return (path if path.is_file() else None), params.get("architecture", "vit_b"), str(path)
    entry = get_weights(params.get("weights", "sam_vit_b"))
    if entry.kind != "sam":
        raise ValueError(f"weights {entry.name!r} are of kind {entry.kind!r}, not 'sam'")
    path = local_path(entry, params.get("cache_dir"))
    return (path if path.is_file() else None), entry.architecture, entry.name


_SAM_SOURCE_KEYS = ("checkpoint", "weights", "architecture", "cache_dir", "device")


def _make_sam(params: dict) -> SamMaskSource:
    from ov_mapping.models.sam import SamGeneratorParams, load_sam, make_mask_generator

    source_params = {k: params[k] for k in _SAM_SOURCE_KEYS if k in params}
    generator_params = SamGeneratorParams.from_dict({k: v for k, v in params.items() if k not in _SAM_SOURCE_KEYS})
    path, architecture, label = _sam_checkpoint(source_params)
    if path is None:
        raise FileNotFoundError(
            f"SAM weights {label!r} are not on disk; download them (download-weights sam_vit_b) "
            "or use the 'graph' mask source"
        )
    sam = load_sam(architecture, path, source_params.get("device", "cpu"))
    return SamMaskSource(make_mask_generator(sam, generator_params), generator_params.min_mask_region_area, label)


def make_mask_source(name: str, **params: Any) -> MaskSource:
    """Build the mask source ``name`` ("sam", "graph" or "auto") and log the choice.

    Parameters for "sam": ``checkpoint`` (a file) or ``weights`` (a registry name, default "sam_vit_b") with
    optional ``cache_dir``; ``architecture`` (with ``checkpoint``; default "vit_b"); ``device``; and any field of
    ``models.sam.SamGeneratorParams``. For "graph": any field of ``GraphSegmentationParams`` and
    ``use_pointmap``. "auto" takes both sets, prefixed ``sam_`` / ``graph_`` (e.g. ``sam_points_per_side``,
    ``graph_k``), and falls back to the graph source when no SAM weights are on disk.
    """
    if name not in MASK_SOURCES:
        raise ValueError(f"unknown mask source {name!r}; choose one of {', '.join(MASK_SOURCES)}")
    if name == "graph":
        source = _make_graph(params)
        reason = "requested"
    elif name == "sam":
        source = _make_sam(params)
        reason = "requested"
    else:
        stray = [k for k in params if not k.startswith(("sam_", "graph_"))]
        if stray:
            raise ValueError(f"'auto' mask source parameters must start with sam_ or graph_, got {stray}")
        sam_params = {k[4:]: v for k, v in params.items() if k.startswith("sam_")}
        graph_params = {k[6:]: v for k, v in params.items() if k.startswith("graph_")}
        path, _, label = _sam_checkpoint({k: v for k, v in sam_params.items() if k in _SAM_SOURCE_KEYS})
        if path is not None:
            source, reason = _make_sam(sam_params), f"auto: SAM weights found ({label})"
        else:
            source, reason = _make_graph(graph_params), f"auto: no SAM weights ({label}) on disk, CPU fallback"
    logger.info("mask source: %s [%s]", source.describe(), reason)
    return source


def as_mask_array(masks: list[Mask], shape: tuple[int, int]) -> np.ndarray:
    """Stack masks into (M, H, W) bool, checking each has ``shape``."""
    for i, m in enumerate(masks):
        if m.mask.shape != tuple(shape):
            raise ValueError(f"mask {i} is {m.mask.shape}, the image is {tuple(shape)}")
    if not masks:
        return np.zeros((0, *shape), bool)
    return np.stack([m.mask for m in masks])

