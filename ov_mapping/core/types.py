"""Core data types shared by every layer. Pure numpy; no ROS, no torch.

Conventions used everywhere in ov_mapping:

- Poses are 4x4 float64 homogeneous matrices ``T_world_camera`` (camera-to-world).
- Camera frames follow the optical convention: x right, y down, z forward.
- Colour images are ``uint8`` arrays of shape (H, W, 3) in RGB order.
- Depth images are ``float32`` arrays of shape (H, W) in metres; 0 or NaN means invalid.
- Pointmaps are ``float32`` arrays of shape (H, W, 3); confidences ``float32`` (H, W).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


def _check_shape(name: str, array: np.ndarray, shape: tuple) -> None:
    """Raise ValueError unless ``array`` matches ``shape`` (``None`` = any size)."""
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(array.shape)}")


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of an undistorted image of ``width`` x ``height`` pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(np.isfinite(v) for v in values):
            raise ValueError(f"camera intrinsics must be finite, got {values}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be positive, got fx={self.fx} fy={self.fy}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")

    @property
    def K(self) -> np.ndarray:
        """The 3x3 camera matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @classmethod
    def from_matrix(cls, K: np.ndarray, width: int, height: int) -> "CameraIntrinsics":
        K = np.asarray(K, dtype=np.float64)
        _check_shape("K", K, (3, 3))
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), int(width), int(height))

    def scaled(self, width: int, height: int) -> "CameraIntrinsics":
        """The same camera seen at another resolution (pixel-centre convention)."""
        sx, sy = width / self.width, height / self.height
        return CameraIntrinsics(
            self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, width, height
        )


@dataclass
class RGBDFrame:
    """One camera frame as it comes off a sensor or a recording.

    ``depth`` is None for RGB-only cameras; ``pose`` is None when no pose source is known.
    """

    stamp: float  # seconds
    rgb: np.ndarray  # (H, W, 3) uint8
    intrinsics: CameraIntrinsics
    depth: Optional[np.ndarray] = None  # (H, W) float32 metres
    pose: Optional[np.ndarray] = None  # (4, 4) T_world_camera

    def __post_init__(self) -> None:
        _check_shape("rgb", self.rgb, (None, None, 3))
        if self.rgb.dtype != np.uint8:
            raise ValueError(f"rgb must be uint8, got {self.rgb.dtype}")
        h, w = self.rgb.shape[:2]
        if (w, h) != (self.intrinsics.width, self.intrinsics.height):
            raise ValueError(f"rgb is {w}x{h} but intrinsics are {self.intrinsics.width}x{self.intrinsics.height}")
        if self.depth is not None:
            _check_shape("depth", self.depth, (h, w))
        if self.pose is not None:
            _check_shape("pose", self.pose, (4, 4))


@dataclass
class Keyframe:
    """A keyframe with its world-frame pointmap: the reconstruction stage's output.

    The pointmap may be coarser than the image (CLIP3R predicts 224x224); pixel (v, u) of the
    pointmap covers the matching area of the image.
    """

    keyframe_id: int
    stamp: float
    rgb: np.ndarray  # (H, W, 3) uint8
    intrinsics: CameraIntrinsics  # of ``rgb``
    pose: np.ndarray  # (4, 4) T_world_camera
    pointmap: np.ndarray  # (h, w, 3) float32, world frame; NaN where invalid
    confidence: np.ndarray  # (h, w) float32, larger is better
    metric_scale: bool = True
    feature_map: Optional[np.ndarray] = None  # (C, hf, wf) float32, CLIP3R features

    def __post_init__(self) -> None:
        _check_shape("rgb", self.rgb, (None, None, 3))
        _check_shape("pose", self.pose, (4, 4))
        _check_shape("pointmap", self.pointmap, (None, None, 3))
        _check_shape("confidence", self.confidence, self.pointmap.shape[:2])
        if self.feature_map is not None:
            _check_shape("feature_map", self.feature_map, (None, None, None))

    def valid_points(self, min_confidence: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """World points and their RGB colours where the pointmap is finite and confident.

        Returns:
            points: (N, 3) float32; colours: (N, 3) uint8 sampled from ``rgb`` at the pointmap's resolution.
        """
        h, w = self.pointmap.shape[:2]
        mask = np.isfinite(self.pointmap).all(axis=2) & (self.confidence > min_confidence)
        H, W = self.rgb.shape[:2]
        rows = (np.arange(h) * H // h)[:, None].repeat(w, axis=1)
        cols = (np.arange(w) * W // w)[None, :].repeat(h, axis=0)
        colours = self.rgb[rows[mask], cols[mask]]
        return self.pointmap[mask].astype(np.float32), colours


@dataclass
class Segment:
    """One 2D region of a keyframe, lifted to 3D. Produced by the segmentation stage."""

    segment_id: int
    mask: np.ndarray  # (h, w) bool, at the pointmap's resolution
    points: np.ndarray  # (N, 3) float32 world points under the mask
    descriptor: np.ndarray  # (D,) float32, L2-normalised fused descriptor
    clip_embedding: Optional[np.ndarray] = None  # (Dc,) float32
    label: str = ""
    label_score: float = 0.0
    score: float = 1.0  # mask quality (SAM predicted IoU or 1.0)


@dataclass
class SegmentedKeyframe:
    keyframe: Keyframe
    segments: list[Segment] = field(default_factory=list)
    mask_source: str = ""
