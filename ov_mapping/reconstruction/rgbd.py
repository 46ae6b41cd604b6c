"""Reconstruction from RGB-D frames: keyframes from depth back-projection, and RGB-D odometry.

Odometry uses Open3D's dense RGB-D odometry (photometric + geometric "hybrid" term) against a
reference frame: the previous frame ("frame" mode) or the last reference keyframe ("keyframe" mode,
less drift while the camera stays near it). Open3D is imported on first use so that the rest of
this module works without it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ov_mapping.core.types import CameraIntrinsics, Keyframe, RGBDFrame
from ov_mapping.geometry.camera import (
    backproject_depth,
    check_pose,
    depth_to_metres,
    pointmap_to_world,
    project_points,
    transform_points,
)
from ov_mapping.geometry.transforms import invert_pose, nearest_rotation, relative_motion
from ov_mapping.reconstruction.keyframes import KeyframeSelector


def frame_to_keyframe(
    frame: RGBDFrame,
    pose: Optional[np.ndarray],
    keyframe_id: int,
    stride: int = 4,
    min_depth: float = 0.1,
    max_depth: float = 8.0,
    depth_scale: float = 1000.0,
    depth_weighted: bool = False,
) -> Keyframe:
    """Build a Keyframe whose world pointmap comes from the frame's depth.

    Args:
        frame: RGBDFrame with depth (float metres, or integer raw units with ``depth_scale``).
        pose: (4, 4) T_world_camera; None uses ``frame.pose``.
        keyframe_id: id of the new keyframe.
        stride: the pointmap keeps every ``stride``-th depth pixel (smaller messages); the image
            is kept whole, and Keyframe maps pointmap cells onto it.
        min_depth, max_depth: depths outside (min_depth, max_depth] are invalid (NaN points).
        depth_weighted: confidence 1/z^2 (the inverse of structured-light depth noise variance, up
            to a constant) instead of 1 for valid depth.
    Returns:
        Keyframe with a (ceil(H/stride), ceil(W/stride), 3) float32 world pointmap and confidence
        (0 where invalid), ``metric_scale=True``.
    """
    if not isinstance(frame, RGBDFrame):
        raise ValueError(f"frame must be an RGBDFrame, got {type(frame).__name__}")
    if frame.depth is None:
        raise ValueError("frame has no depth image")
    pose = frame.pose if pose is None else pose
    if pose is None:
        raise ValueError("no pose: pass one or set frame.pose")
    pose = check_pose("pose", pose)
    camera_points = backproject_depth(frame.depth, frame.intrinsics, stride, min_depth, max_depth, depth_scale)
    depth = camera_points[..., 2]
    valid = np.isfinite(depth)
    confidence = np.zeros(depth.shape, dtype=np.float32)
    confidence[valid] = 1.0 / np.square(depth[valid]) if depth_weighted else 1.0
    return Keyframe(
        keyframe_id=int(keyframe_id),
        stamp=float(frame.stamp),
        rgb=frame.rgb,
        intrinsics=frame.intrinsics,
        pose=pose,
        pointmap=pointmap_to_world(camera_points, pose),
        confidence=confidence,
        metric_scale=True,
    )


@dataclass(frozen=True)
class OdometryConfig:
    """Parameters of ``RGBDOdometry`` (validated on construction)."""

    mode: str = "keyframe"  # "keyframe": track against a reference keyframe; "frame": the previous frame
    depth_scale: float = 1000.0  # raw units per metre, for integer depth images
    min_depth: float = 0.1  # metres; nearer depth is ignored
    max_depth: float = 4.0  # metres; farther depth is ignored (truncation)
    max_depth_diff: float = 0.07  # metres; correspondences with a larger depth gap are rejected
    iterations: tuple[int, ...] = (20, 10, 5)  # Gauss-Newton iterations per pyramid level (Open3D order)
    image_stride: int = 2  # run on every n-th pixel (2: 640x480 -> 320x240) for speed
    max_translation: float = 0.3  # metres from the reference; more is treated as a failure
    max_rotation_deg: float = 30.0  # degrees from the reference; more is treated as a failure
    min_overlap: float = 0.3  # fraction of valid pixels that must land on the reference's depth
    reference_translation: float = 0.10  # keyframe mode: new reference after this much motion
    reference_rotation_deg: float = 10.0

    def __post_init__(self) -> None:
        if self.mode not in ("keyframe", "frame"):
            raise ValueError(f"mode must be 'keyframe' or 'frame', got {self.mode!r}")
        positive = {
            "depth_scale": self.depth_scale,
            "max_depth_diff": self.max_depth_diff,
            "max_translation": self.max_translation,
            "max_rotation_deg": self.max_rotation_deg,
            "reference_translation": self.reference_translation,
            "reference_rotation_deg": self.reference_rotation_deg,
        }
        for name, value in positive.items():
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        if not (0 <= self.min_depth < self.max_depth and math.isfinite(self.max_depth)):
            raise ValueError(f"need 0 <= min_depth < max_depth < inf, got {self.min_depth}, {self.max_depth}")
        if not self.iterations or any(int(n) != n or n < 1 for n in self.iterations):
            raise ValueError(f"iterations must be positive integers, one per pyramid level, got {self.iterations}")
        if int(self.image_stride) != self.image_stride or self.image_stride < 1:
            raise ValueError(f"image_stride must be a positive integer, got {self.image_stride}")
        if not 0 <= self.min_overlap <= 1:
            raise ValueError(f"min_overlap must lie in [0, 1], got {self.min_overlap}")


@dataclass
class OdometryResult:
    pose: Optional[np.ndarray]  # (4, 4) T_world_camera, None when tracking failed
    reason: str  # "initialised", "tracked", or why tracking failed
    is_reference: bool = False  # this frame became the tracking reference
    overlap: float = float("nan")  # fraction of valid pixels consistent with the reference


@dataclass
class _Prepared:
    """A frame ready for odometry: Open3D image plus the numpy depth it was made from."""

    rgbd: object  # open3d.geometry.RGBDImage
    depth: np.ndarray  # (h, w) float32 metres, 0 invalid
    intrinsics: CameraIntrinsics


def _import_open3d():
    try:
        import open3d
    except ImportError as error:  # Open3D's wheel needs libusb-1.0 from the OS as well
        raise ImportError(
            f"RGB-D odometry needs open3d (pip install open3d; on Debian also apt install libusb-1.0-0): {error}"
        ) from error
    return open3d


class RGBDOdometry:
    """Tracks T_world_camera over a stream of RGB-D frames; not thread-safe."""

    def __init__(
        self, config: Optional[OdometryConfig] = None, initial_pose: Optional[np.ndarray] = None, **options
    ):
        """
        Args:
            config: parameters (default ``OdometryConfig()``).
            initial_pose: world pose of the first frame (default: that frame's ``pose`` if set, else identity).
            options: ``OdometryConfig`` fields overriding ``config``'s, e.g. ``max_depth=3.0``.
        """
        config = OdometryConfig() if config is None else config
        if not isinstance(config, OdometryConfig):
            raise ValueError(f"config must be an OdometryConfig, got {type(config).__name__}")
        unknown = set(options) - set(OdometryConfig.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown odometry options {sorted(unknown)}")
        config = dataclasses.replace(config, **options)
        self._o3d = _import_open3d()
        self.config = config
        self._initial_pose = None if initial_pose is None else check_pose("initial_pose", initial_pose)
        self._selector = KeyframeSelector(
            config.reference_translation, config.reference_rotation_deg, max_interval=math.inf
        )
        self.reset()

    def reset(self, initial_pose: Optional[np.ndarray] = None) -> None:
        """Start over: the next frame is placed at ``initial_pose`` (or the constructor's default)."""
        if initial_pose is not None:
            self._initial_pose = check_pose("initial_pose", initial_pose)
        self._reference: Optional[_Prepared] = None
        self._T_world_reference: Optional[np.ndarray] = None
        self._T_reference_previous = np.eye(4)
        self._velocity = np.eye(4)  # motion of the last tracked step, T_previous_current
        self._selector.reset()

    def track(self, frame: RGBDFrame) -> OdometryResult:
        """Estimate the world pose of ``frame`` (which must have depth)."""
        if not isinstance(frame, RGBDFrame):
            raise ValueError(f"frame must be an RGBDFrame, got {type(frame).__name__}")
        if frame.depth is None:
            raise ValueError("RGB-D odometry needs frames with depth")
        current = self._prepare(frame)
        if self._reference is None:
            pose = self._initial_pose if self._initial_pose is not None else frame.pose
            pose = np.eye(4) if pose is None else check_pose("frame.pose", pose)
            self._set_reference(current, pose, frame.stamp)
            return OdometryResult(pose=pose.copy(), reason="initialised", is_reference=True, overlap=1.0)
        if current.depth.shape != self._reference.depth.shape:
            raise ValueError(
                f"frame size changed from {self._reference.depth.shape} to {current.depth.shape}; reset first"
            )

        guess = self._T_reference_previous @ self._velocity
        estimate = self._estimate(current, guess)
        if isinstance(estimate, str):
            return OdometryResult(pose=None, reason=estimate)
        T_reference_current, overlap = estimate
        pose = self._T_world_reference @ T_reference_current
        self._velocity = invert_pose(self._T_reference_previous) @ T_reference_current
        self._T_reference_previous = T_reference_current
        new_reference = self.config.mode == "frame" or self._selector.select(frame.stamp, pose)
        if new_reference:
            self._set_reference(current, pose, frame.stamp)
        return OdometryResult(pose=pose, reason="tracked", is_reference=new_reference, overlap=overlap)

    # ----------------------------------------------------------------- internals
    def _set_reference(self, prepared: _Prepared, pose: np.ndarray, stamp: float) -> None:
        self._reference = prepared
        self._T_world_reference = pose
        self._T_reference_previous = np.eye(4)
        if self.config.mode == "keyframe":
            self._selector.reset()
            self._selector.select(stamp, pose)

    def _prepare(self, frame: RGBDFrame) -> _Prepared:
        o3d, cfg = self._o3d, self.config
        s = int(cfg.image_stride)
        depth = depth_to_metres(frame.depth[::s, ::s], cfg.depth_scale)
        depth[(depth <= cfg.min_depth) | (depth > cfg.max_depth)] = 0.0
        rgb = np.ascontiguousarray(frame.rgb[::s, ::s])
        h, w = depth.shape
        K = frame.intrinsics
        # Pixel (v, u) of the strided image is pixel (s*v, s*u) of the original.
        intrinsics = CameraIntrinsics(K.fx / s, K.fy / s, K.cx / s, K.cy / s, w, h)
        rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
            o3d.geometry.Image(rgb),
            o3d.geometry.Image(depth),
            depth_scale=1.0,
            depth_trunc=cfg.max_depth,
            convert_rgb_to_intensity=True,
        )
        return _Prepared(rgbd=rgbd, depth=depth, intrinsics=intrinsics)

    def _estimate(self, current: _Prepared, guess: np.ndarray):
        """(T_reference_current, overlap), or a string saying why odometry failed."""
        o3d, cfg = self._o3d, self.config
        K = current.intrinsics
        camera = o3d.camera.PinholeCameraIntrinsic(K.width, K.height, K.fx, K.fy, K.cx, K.cy)
        option = o3d.pipelines.odometry.OdometryOption(
            iteration_number_per_pyramid_level=o3d.utility.IntVector([int(n) for n in cfg.iterations]),
            depth_diff_max=cfg.max_depth_diff,
            depth_min=cfg.min_depth,
            depth_max=cfg.max_depth,
        )
        # Open3D returns the motion taking source (current) points into the target (reference) frame.
        success, T_reference_current, _ = o3d.pipelines.odometry.compute_rgbd_odometry(
            current.rgbd,
            self._reference.rgbd,
            camera,
            guess,
            o3d.pipelines.odometry.RGBDOdometryJacobianFromHybridTerm(),
            option,
        )
        T_reference_current = np.array(T_reference_current, dtype=np.float64)
        if not success or not np.isfinite(T_reference_current).all():
            return "odometry did not converge"
        # Open3D multiplies its update into our guess; re-orthonormalise so errors cannot compound.
        T_reference_current[:3, :3] = nearest_rotation(T_reference_current[:3, :3])
        translation, rotation = relative_motion(np.eye(4), T_reference_current)
        if translation > cfg.max_translation or math.degrees(rotation) > cfg.max_rotation_deg:
            return (
                f"implausible motion from the reference: {translation:.3f} m, {math.degrees(rotation):.1f} deg "
                f"(limits {cfg.max_translation} m, {cfg.max_rotation_deg} deg)"
            )
        overlap = self._overlap(current, T_reference_current)
        if overlap < cfg.min_overlap:
            return f"too little overlap with the reference: {overlap:.2f} < {cfg.min_overlap}"
        return T_reference_current, overlap

    def _overlap(self, current: _Prepared, T_reference_current: np.ndarray) -> float:
        """Fraction of the current frame's valid pixels that land, after the motion, on reference
        pixels whose depth agrees within ``max_depth_diff``."""
        points = backproject_depth(current.depth, current.intrinsics).reshape(-1, 3)
        points = points[np.isfinite(points[:, 2])]
        if len(points) == 0:
            return 0.0
        moved = transform_points(T_reference_current, points, out_dtype=np.float64)
        uv, inside = project_points(moved, self._reference.intrinsics)
        cols = np.rint(uv[inside, 0]).astype(np.int64)
        rows = np.rint(uv[inside, 1]).astype(np.int64)
        target = self._reference.depth[rows, cols]
        agree = (target > 0) & (np.abs(target - moved[inside, 2]) <= self.config.max_depth_diff)
        return float(agree.sum()) / len(points)
