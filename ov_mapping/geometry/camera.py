"""Pinhole camera geometry: depth back-projection, projection, rigid transforms. Pure numpy.

Camera frames are optical (x right, y down, z forward); pixel (v, u) has its centre at (u, v).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ov_mapping.core.types import CameraIntrinsics


def check_points(name: str, points: np.ndarray) -> np.ndarray:
    """Return ``points`` as a float array after checking it has shape (..., 3)."""
    points = np.asarray(points)
    if points.ndim < 1 or points.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., 3), got {points.shape}")
    if not np.issubdtype(points.dtype, np.number) or np.iscomplexobj(points):
        raise ValueError(f"{name} must be real numbers, got dtype {points.dtype}")
    return points


def check_pose(name: str, pose: np.ndarray) -> np.ndarray:
    """Return ``pose`` as a float64 (4, 4) array after checking shape, finiteness and last row."""
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (4, 4):
        raise ValueError(f"{name} must have shape (4, 4), got {pose.shape}")
    if not np.isfinite(pose).all():
        raise ValueError(f"{name} must be finite")
    if not np.allclose(pose[3], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError(f"{name} must be homogeneous (last row 0 0 0 1), got {pose[3]}")
    return pose


def depth_to_metres(depth: np.ndarray, depth_scale: float = 1000.0) -> np.ndarray:
    """Convert a depth image to float32 metres with 0 for invalid pixels.

    Args:
        depth: (H, W) float depth in metres (NaN/inf/<=0 invalid) or integer raw depth (0 invalid).
        depth_scale: raw units per metre, used only for integer images (1000 for 16UC1 millimetres).
    Returns:
        (H, W) float32 metres, 0 where invalid.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must have shape (H, W), got {depth.shape}")
    if np.issubdtype(depth.dtype, np.integer):
        if not (np.isfinite(depth_scale) and depth_scale > 0):
            raise ValueError(f"depth_scale must be a positive number, got {depth_scale}")
        metres = depth.astype(np.float32) / np.float32(depth_scale)
    elif np.issubdtype(depth.dtype, np.floating):
        metres = depth.astype(np.float32, copy=True)
    else:
        raise ValueError(f"depth must be a float or integer image, got dtype {depth.dtype}")
    metres[~np.isfinite(metres) | (metres < 0)] = 0.0
    return metres


def _check_intrinsics_match(depth: np.ndarray, intrinsics: CameraIntrinsics) -> None:
    if not isinstance(intrinsics, CameraIntrinsics):
        raise ValueError(f"intrinsics must be a CameraIntrinsics, got {type(intrinsics).__name__}")
    h, w = depth.shape
    if (w, h) != (intrinsics.width, intrinsics.height):
        raise ValueError(f"depth is {w}x{h} but intrinsics are {intrinsics.width}x{intrinsics.height}")


def backproject_depth(
    depth: np.ndarray,
    intrinsics: CameraIntrinsics,
    stride: int = 1,
    min_depth: float = 0.0,
    max_depth: float = np.inf,
    depth_scale: float = 1000.0,
) -> np.ndarray:
    """Back-project a depth image to a camera-frame pointmap.

    Args:
        depth: (H, W) depth (see ``depth_to_metres`` for accepted dtypes).
        intrinsics: camera of ``depth`` (W x H).
        stride: keep every ``stride``-th pixel in both directions (pixel (v, u) of the result is
            pixel (stride*v, stride*u) of ``depth``).
        min_depth, max_depth: depths outside (min_depth, max_depth] are invalid.
    Returns:
        (ceil(H/stride), ceil(W/stride), 3) float32 camera-frame points, NaN where invalid.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must have shape (H, W), got {depth.shape}")
    _check_intrinsics_match(depth, intrinsics)
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride}")
    if not (min_depth >= 0 and max_depth > min_depth):
        raise ValueError(f"need 0 <= min_depth < max_depth, got {min_depth}, {max_depth}")
    stride = int(stride)
    z = depth_to_metres(depth[::stride, ::stride], depth_scale)
    rows = np.arange(0, depth.shape[0], stride, dtype=np.float32)
    cols = np.arange(0, depth.shape[1], stride, dtype=np.float32)
    x_over_z = (cols - np.float32(intrinsics.cx)) / np.float32(intrinsics.fx)
    y_over_z = (rows - np.float32(intrinsics.cy)) / np.float32(intrinsics.fy)
    pointmap = np.empty(z.shape + (3,), dtype=np.float32)
    pointmap[..., 0] = x_over_z[None, :] * z
    pointmap[..., 1] = y_over_z[:, None] * z
    pointmap[..., 2] = z
    invalid = (z <= min_depth) | (z > max_depth)
    pointmap[invalid] = np.nan
    return pointmap


def project_points(points: np.ndarray, intrinsics: CameraIntrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Project camera-frame points to pixels.

    Args:
        points: (N, 3) camera-frame points.
    Returns:
        uv: (N, 2) float64 pixel coordinates (u = column, v = row), NaN for points with z <= 0;
        in_image: (N,) bool, True where z > 0 and the pixel lies inside the image.
    """
    points = check_points("points", points)
    if points.ndim != 2:
        raise ValueError(f"points must have shape (N, 3), got {points.shape}")
    p = points.astype(np.float64)
    z = p[:, 2]
    in_front = z > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        u = intrinsics.fx * p[:, 0] / z + intrinsics.cx
        v = intrinsics.fy * p[:, 1] / z + intrinsics.cy
    uv = np.stack([u, v], axis=1)
    uv[~in_front] = np.nan
    # Pixel centres are integers, so the image spans [-0.5, W - 0.5).
    in_image = (
        in_front
        & (u >= -0.5)
        & (u < intrinsics.width - 0.5)
        & (v >= -0.5)
        & (v < intrinsics.height - 0.5)
    )
    return uv, in_image


def apply_affine(matrix: np.ndarray, offset: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points @ matrix.T + offset`` for (N, 3) points, (3, 3) matrix and (3,) offset, in float64.

    Written per column: a BLAS matmul with an inner size of 3 is slow (and multi-threaded for nothing).
    """
    out = np.empty(points.shape, dtype=np.float64)
    for row in range(3):
        out[:, row] = points[:, 0] * matrix[row, 0]
        out[:, row] += points[:, 1] * matrix[row, 1]
        out[:, row] += points[:, 2] * matrix[row, 2]
        out[:, row] += offset[row]
    return out


def transform_points(transform: np.ndarray, points: np.ndarray, out_dtype: Optional[np.dtype] = None) -> np.ndarray:
    """Apply a 4x4 rigid (or similarity) transform to points of shape (..., 3).

    NaN points stay NaN. The result has ``out_dtype`` (default: float32 for float32 input, else float64).
    """
    transform = check_pose("transform", transform)
    points = check_points("points", points)
    if out_dtype is None:
        out_dtype = np.float32 if points.dtype == np.float32 else np.float64
    moved = apply_affine(transform[:3, :3], transform[:3, 3], points.reshape(-1, 3))
    return moved.reshape(points.shape).astype(out_dtype, copy=False)


def pointmap_to_world(pointmap: np.ndarray, T_world_camera: np.ndarray) -> np.ndarray:
    """Move a camera-frame pointmap (H, W, 3) into the world frame; returns float32 (H, W, 3), NaN kept."""
    pointmap = check_points("pointmap", pointmap)
    if pointmap.ndim != 3:
        raise ValueError(f"pointmap must have shape (H, W, 3), got {pointmap.shape}")
    return transform_points(T_world_camera, pointmap, out_dtype=np.float32)
