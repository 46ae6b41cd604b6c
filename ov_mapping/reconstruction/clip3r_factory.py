"""Build a CLIP3R stream from a node's parameters: resolve weights, pick the runtime, configure the stream.

No ROS here: reconstruction_node's RGB mode passes its parameter values as a ``Clip3rSettings``.

With CLIP3R weights (an I2P with Ov3R's CLIP injection, ``stream.clip_dim`` set) every frame needs its
object-level CLIP map before I2P runs: a ``ClipMapper`` (``build_clip_mapper``) computes masks and their CLIP
embeddings with the segmentation library, and a ``SegmentingStream`` feeds the maps to the stream and hands each
keyframe back with those masks and embeddings as upstream ``Segment``s, so the segmentation node reuses them.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ov_mapping.core.types import CameraIntrinsics, Segment
from ov_mapping.reconstruction.clip3r_stream import Clip3rStream, StreamConfig, StreamedKeyframe
from ov_mapping.reconstruction.preprocess import centre_crop_box

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Clip3rSettings:
    config: str = "slam3r_i2p"  # architecture: "slam3r_i2p" (the public checkpoints) or "small"
    i2p_weights: str = "slam3r_i2p"  # registry name or checkpoint file
    l2w_weights: str = "slam3r_l2w"
    allow_random_weights: bool = False  # plumbing tests only: untrained networks give meaningless geometry
    backend: str = "torch"
    precision: str = "fp32"
    device: str = "cpu"
    keyframe_stride: int = 0  # 0 = automatic
    window_radius: int = 5
    lookahead: int = 0
    register_group_size: int = 1
    buffer_size: int = 100
    i2p_min_confidence: float = 1.5
    l2w_min_confidence: float = 10.0


def resolve_weights(name_or_path: str, kind: str) -> Optional[Path]:
    """The checkpoint file a parameter names: a registry entry (downloaded) or a path; None for ''."""
    from ov_mapping.models.registry import downloaded_path, list_weights

    if not name_or_path:
        return None
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    names = {entry.name for entry in list_weights(kind)}
    if name_or_path not in names:
        raise FileNotFoundError(f"{name_or_path!r} is neither a file nor a {kind} registry entry "
                                f"({', '.join(sorted(names))})")
    return downloaded_path(name_or_path, kind)[1]


def build_stream(settings: Clip3rSettings) -> tuple[Clip3rStream, str]:
    """(stream, a line describing it). Missing weights raise FileNotFoundError unless random weights are allowed."""
    from ov_mapping.engines import make_runner

    try:
        i2p = resolve_weights(settings.i2p_weights, "clip3r_i2p")
        l2w = resolve_weights(settings.l2w_weights, "clip3r_l2w")
    except FileNotFoundError:
        if not settings.allow_random_weights:
            raise
        i2p = l2w = None
    if (i2p is None or l2w is None) and not settings.allow_random_weights:
        raise FileNotFoundError("RGB mode needs CLIP3R / SLAM3R I2P and L2W weights (clip3r_i2p_weights, "
                                "clip3r_l2w_weights)")
    runner = make_runner(settings.backend, settings.config, i2p, l2w, device=settings.device,
                         precision=settings.precision)
    config = StreamConfig(keyframe_stride=settings.keyframe_stride or None, window_radius=settings.window_radius,
                          lookahead=settings.lookahead, register_group_size=settings.register_group_size,
                          buffer_size=settings.buffer_size, i2p_min_confidence=settings.i2p_min_confidence,
                          l2w_min_confidence=settings.l2w_min_confidence)
    weights = "RANDOM weights (plumbing only)" if i2p is None else f"{i2p.name} + {l2w.name}"
    return Clip3rStream(runner, config), (f"CLIP3R {settings.config} on {settings.backend}/{settings.device}/"
                                          f"{settings.precision}, {weights}")


# ------------------------------------------------------------------------------ object-level CLIP maps (CLIP3R)


@dataclass(frozen=True)
class ClipMapSettings:
    """Mask source and CLIP model of the object-level CLIP map; the CLIP fields mean what the segmentation node's
    ``clip_*`` parameters mean and must name the same model (one embedding space for the whole map)."""

    mask_source: str = "auto"  # "sam", "graph" or "auto" (SAM when its weights are on disk, else graph)
    clip_model: str = "clip_vit_b32_laion2b_s34b_b79k"
    clip_weights: str = ""
    clip_config: str = ""
    device: str = "cpu"


class ClipMapper:
    """One frame's masks, their CLIP embeddings (as the segmentation pipeline computes them) and F_oCLIP."""

    def __init__(self, mask_source, clip, weights=None) -> None:
        from ov_mapping.segmentation.mask_embedding import CropWeights, MaskClipEmbedder

        self.mask_source = mask_source
        self.embedder = MaskClipEmbedder(clip, CropWeights() if weights is None else weights)
        self.embed_dim = self.embedder.embed_dim

    def make(self, rgb: np.ndarray) -> tuple[np.ndarray, list, np.ndarray]:
        """(clip_map (H, W, D) float32, masks: list of segmentation Mask at (H, W), embeddings (M, D) float32)
        of ``rgb`` (H, W, 3) uint8; no masks give an all-zero map and a (0, D) array."""
        from ov_mapping.segmentation.clip_map import paint_clip_map
        from ov_mapping.segmentation.mask_sources import as_mask_array, check_rgb

        check_rgb(rgb)
        masks = self.mask_source.generate(rgb)
        if not masks:
            return (np.zeros((*rgb.shape[:2], self.embed_dim), np.float32), [],
                    np.zeros((0, self.embed_dim), np.float32))
        embeddings = self.embedder.embed(rgb, as_mask_array(masks, rgb.shape[:2]))
        return paint_clip_map(masks, embeddings), masks, embeddings

    def describe(self) -> str:
        return f"masks: {self.mask_source.describe()}, CLIP dim {self.embed_dim}"


def build_clip_mapper(settings: ClipMapSettings, clip_dim: int) -> tuple[ClipMapper, str]:
    """(mapper, a line describing it) for an I2P whose injection takes ``clip_dim``-dim embeddings.

    Missing CLIP weights raise FileNotFoundError, a CLIP of another dimension or a bad mask source ValueError:
    CLIP3R weights cannot run without the map."""
    from ov_mapping.models.registry import missing_clip_weights

    if settings.mask_source not in ("auto", "sam", "graph"):
        raise ValueError(f"mask source must be 'auto', 'sam' or 'graph', got {settings.mask_source!r}")
    missing = missing_clip_weights(settings.clip_model, settings.clip_weights, settings.clip_config)
    if missing:
        raise FileNotFoundError(f"these CLIP3R weights inject object-level CLIP maps (clip_dim {clip_dim}), which "
                                f"need the CLIP model: {missing}; set clip3r_clip_model / clip3r_clip_weights / "
                                "clip3r_clip_config like the segmentation node's clip_* parameters")
    from ov_mapping.models.clip import load_clip
    from ov_mapping.segmentation.mask_sources import make_mask_source

    clip = load_clip(settings.clip_model, settings.clip_weights, settings.clip_config, settings.device)
    if int(clip.embed_dim) != clip_dim:
        raise ValueError(f"CLIP {clip.name} embeds in {clip.embed_dim} dimensions but the I2P's CLIP injection "
                         f"takes {clip_dim}: use the CLIP model these CLIP3R weights were trained with")
    if settings.mask_source == "graph":
        source = make_mask_source("graph")
    elif settings.mask_source == "sam":
        source = make_mask_source("sam", device=settings.device)
    else:
        source = make_mask_source("auto", sam_device=settings.device)
    mapper = ClipMapper(source, clip)
    return mapper, f"{mapper.describe()} ({clip.name})"


def crop_mask_to_pointmap(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A full-image (H, W) bool mask cut to the stream's centred square crop and resized to the keyframe's
    pointmap ``shape`` (h, w) by nearest neighbour (the source pixel holding each target pixel's centre)."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != bool:
        raise ValueError(f"mask must be an (H, W) bool array, got {mask.shape} {mask.dtype}")
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"shape must be (h, w) with positive sides, got {shape}")
    box = centre_crop_box(mask.shape[1], mask.shape[0])
    rows = np.minimum(((np.arange(shape[0]) + 0.5) * (box.side / shape[0])).astype(np.intp), box.side - 1)
    cols = np.minimum(((np.arange(shape[1]) + 0.5) * (box.side / shape[1])).astype(np.intp), box.side - 1)
    return mask[np.ix_(box.y0 + rows, box.x0 + cols)]


def masks_to_segments(masks: Sequence, embeddings: np.ndarray, shape: tuple[int, int]) -> list[Segment]:
    """Upstream Segments of one frame: each mask (segmentation Mask at the full image) cropped and resized to the
    pointmap ``shape`` (:func:`crop_mask_to_pointmap`) with its score and CLIP embedding (row of ``embeddings``
    (M, D)); no points or descriptor yet (the segmentation node lifts and describes them). Masks left empty by
    the crop are dropped; ids count from 0."""
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or len(embeddings) != len(masks) or not np.issubdtype(embeddings.dtype, np.floating):
        raise ValueError(f"embeddings must be a float array ({len(masks)}, D), one row per mask, got "
                         f"{embeddings.shape} {embeddings.dtype}")
    segments: list[Segment] = []
    for mask, embedding in zip(masks, embeddings):
        cropped = crop_mask_to_pointmap(mask.mask, shape)
        if cropped.any():
            segments.append(Segment(segment_id=len(segments), mask=cropped, points=np.zeros((0, 3), np.float32),
                                    descriptor=np.zeros(0, np.float32),
                                    clip_embedding=embedding.astype(np.float32), score=float(mask.score)))
    return segments


class SegmentingStream:
    """A CLIP3R stream with CLIP injection, fed object-level CLIP maps by a ClipMapper; each keyframe comes out
    with its frame's masks and embeddings as upstream Segments.

    Frames the stream will skip (``stream.next_frame_used`` false: off the keyframe stride) get no masks and no
    CLIP map, since nothing of them is used. Segments are kept only for frames that may still become
    keyframes, dropped once a keyframe of the same or a later frame is out, and at most ``capacity`` of them
    (the oldest go first: their keyframe would then carry no upstream segments, and be segmented downstream).
    Not thread-safe, like the stream; the stream must not be reset behind its back.
    """

    def __init__(self, stream: Clip3rStream, mapper: ClipMapper, pointmap_size: int = 224,
                 capacity: int = 64) -> None:
        if stream.clip_dim is None:
            raise ValueError("the stream's I2P has no CLIP injection: push to it without CLIP maps")
        if mapper.embed_dim != stream.clip_dim:
            raise ValueError(f"the mapper's CLIP dim {mapper.embed_dim} is not the stream's {stream.clip_dim}")
        if capacity < 1 or pointmap_size < 1:
            raise ValueError(f"capacity and pointmap_size must be >= 1, got {capacity}, {pointmap_size}")
        self.stream = stream
        self.mapper = mapper
        self.shape = (pointmap_size, pointmap_size)
        self.capacity = capacity
        self._segments: OrderedDict[int, list[Segment]] = OrderedDict()  # frame index -> its segments

    @property
    def stored_frames(self) -> int:
        return len(self._segments)

    def push(self, rgb: np.ndarray, stamp: float, intrinsics: Optional[CameraIntrinsics] = None
             ) -> list[tuple[StreamedKeyframe, list[Segment]]]:
        """Push one camera image (H, W, 3) uint8; the keyframes it completes with their upstream segments."""
        if not self.stream.next_frame_used:  # off the keyframe stride: no masks, no CLIP
            return self._collect(self.stream.push(rgb, stamp, intrinsics))
        index = self.stream.next_frame_index
        clip_map, masks, embeddings = self.mapper.make(rgb)
        out = self.stream.push(rgb, stamp, intrinsics, clip_map=clip_map)
        self._segments[index] = masks_to_segments(masks, embeddings, self.shape)
        while len(self._segments) > self.capacity:
            dropped, _ = self._segments.popitem(last=False)
            logger.warning("segments of frame %d dropped: more than %d frames wait for their keyframe",
                           dropped, self.capacity)
        return self._collect(out)

    def flush(self) -> list[tuple[StreamedKeyframe, list[Segment]]]:
        """The stream's flush, with segments."""
        return self._collect(self.stream.flush())

    def _collect(self, streamed: list[StreamedKeyframe]) -> list[tuple[StreamedKeyframe, list[Segment]]]:
        out = []
        for item in streamed:
            segments = self._segments.pop(item.frame_index, [])
            if segments and item.keyframe.pointmap.shape[:2] != self.shape:
                raise ValueError(f"keyframe pointmaps are {item.keyframe.pointmap.shape[:2]}, the segments were cut "
                                 f"at {self.shape}: set pointmap_size to the stream's")
            # keyframes come out oldest first: anything older will never be one
            for stale in [i for i in self._segments if i < item.frame_index]:
                del self._segments[stale]
            out.append((item, segments))
        return out
