"""Geometric evaluation: map consistency against held-out depth, and absolute trajectory error."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ov_mapping.core.types import CameraIntrinsics
from ov_mapping.geometry.camera import backproject_depth, check_pose, transform_points
from ov_mapping.geometry.transforms import Similarity, fit_similarity, rotation_angle
from ov_mapping.mapping.voxel_map import VoxelMap


@dataclass
class ConsistencyResult:
    fraction: float  # of the frame's valid depth points within reach of the map
    num_points: int  # valid depth points tested
    max_distance: float  # the reach, metres


def map_consistency(
    voxel_map: VoxelMap,
    depth: np.ndarray,
    intrinsics: CameraIntrinsics,
    T_world_camera: np.ndarray,
    k_voxels: float = 2.0,
    stride: int = 1,
    min_depth: float = 0.1,
    max_depth: float = 8.0,
    depth_scale: float = 1000.0,
) -> ConsistencyResult:
    """Fraction of a (held-out) frame's depth points lying within ``k_voxels`` voxels of some map voxel.

    Args:
        voxel_map: the map, in the same world frame as ``T_world_camera``.
        depth: (H, W) depth image (float metres or integer raw units with ``depth_scale``).
        intrinsics: camera of ``depth``.
        T_world_camera: (4, 4) pose of the frame.
        k_voxels: reach in voxels (distance to the voxel's mean point), at most 6.
        stride: test every ``stride``-th pixel.
    """
    if not isinstance(voxel_map, VoxelMap):
        raise ValueError(f"voxel_map must be a VoxelMap, got {type(voxel_map).__name__}")
    if not (np.isfinite(k_voxels) and k_voxels > 0):
        raise ValueError(f"k_voxels must be a positive number, got {k_voxels}")
    pose = check_pose("T_world_camera", T_world_camera)
    points = backproject_depth(depth, intrinsics, stride, min_depth, max_depth, depth_scale).reshape(-1, 3)
    points = points[np.isfinite(points[:, 2])]
    reach = float(k_voxels) * voxel_map.voxel_size
    if len(points) == 0:
        raise ValueError("the frame has no valid depth in the given range")
    near = voxel_map.has_neighbour(transform_points(pose, points, out_dtype=np.float64), reach)
    return ConsistencyResult(fraction=float(near.mean()), num_points=len(points), max_distance=reach)


@dataclass
class TrajectoryError:
    rmse: float  # translation RMSE after alignment, in the ground truth's unit
    mean: float
    median: float
    max: float
    rotation_rmse_deg: float  # RMSE of the relative rotation angle after alignment
    alignment: Similarity  # maps estimated positions onto ground truth


def absolute_trajectory_error(
    estimated: np.ndarray, ground_truth: np.ndarray, alignment: str = "sim3"
) -> TrajectoryError:
    """ATE between two trajectories of matching poses.

    Args:
        estimated, ground_truth: (N, 4, 4) T_world_camera, N >= 3 for "sim3"/"se3".
        alignment: "sim3" (scale, rotation, translation fitted by Umeyama on positions), "se3"
            (rotation and translation) or "none".
    """
    estimated = np.asarray(estimated, dtype=np.float64)
    ground_truth = np.asarray(ground_truth, dtype=np.float64)
    if estimated.ndim != 3 or estimated.shape[1:] != (4, 4) or estimated.shape != ground_truth.shape:
        raise ValueError(
            "estimated and ground_truth must both have shape (N, 4, 4), "
            f"got {estimated.shape} and {ground_truth.shape}"
        )
    if len(estimated) == 0 or not (np.isfinite(estimated).all() and np.isfinite(ground_truth).all()):
        raise ValueError("trajectories must be non-empty and finite")
    if alignment == "none":
        similarity = Similarity(1.0, np.eye(3), np.zeros(3))
    elif alignment in ("sim3", "se3"):
        similarity = fit_similarity(estimated[:, :3, 3], ground_truth[:, :3, 3], with_scale=alignment == "sim3")
    else:
        raise ValueError(f"alignment must be 'sim3', 'se3' or 'none', got {alignment!r}")
    errors = np.linalg.norm(similarity.apply(estimated[:, :3, 3]) - ground_truth[:, :3, 3], axis=1)
    aligned_rotations = similarity.rotation @ estimated[:, :3, :3]
    relative = np.einsum("nji,njk->nik", ground_truth[:, :3, :3], aligned_rotations)
    angles = np.degrees(rotation_angle(relative))
    return TrajectoryError(
        rmse=float(np.sqrt(np.mean(errors**2))),
        mean=float(errors.mean()),
        median=float(np.median(errors)),
        max=float(errors.max()),
        rotation_rmse_deg=float(np.sqrt(np.mean(angles**2))),
        alignment=similarity,
    )
