"""Pointmap geometry of the CLIP3R stream: world-scale normalisation and camera poses from pointmap pairs.

Pure numpy. A *local* pointmap is in the keyframe's own camera frame (I2P with the keyframe as reference, at
I2P's arbitrary scale); a *world* pointmap is the same pixels in the world frame (L2W, or the initial window).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from ov_mapping.geometry.transforms import fit_similarity_robust


class RecoveredPose(NamedTuple):
    """``world = scale * R @ local + t``: ``T_world_camera`` = [[R, t], [0, 1]] (rigid), ``scale`` > 0 world
    units per local unit, ``residual`` the median fit residual in world units, ``num_points`` points used."""

    T_world_camera: np.ndarray
    scale: float
    residual: float
    num_points: int


def _check_pointmap(name: str, pointmap: np.ndarray) -> np.ndarray:
    pointmap = np.asarray(pointmap)
    if pointmap.ndim != 3 or pointmap.shape[2] != 3 or not np.issubdtype(pointmap.dtype, np.floating):
        raise ValueError(f"{name} must be a float pointmap (h, w, 3), got {pointmap.dtype} {pointmap.shape}")
    return pointmap


def _check_map(name: str, values: Optional[np.ndarray], shape: tuple) -> Optional[np.ndarray]:
    if values is None:
        return None
    values = np.asarray(values)
    if values.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {values.shape}")
    return values


def world_scale(pointmaps: np.ndarray, confidences: np.ndarray, min_confidence: float) -> float:
    """The factor k that makes the mean distance to the origin of the confident points equal to 1.

    Args:
        pointmaps: (V, h, w, 3) points in the frame to normalise (the reference camera's).
        confidences: (V, h, w); points with confidence > ``min_confidence`` count. When none does,
            every finite point counts (an untrained or badly exposed window still gets a scale).
    Returns:
        k > 0 such that mean |k p| = 1 over the counted points.
    """
    pointmaps = np.asarray(pointmaps, dtype=np.float64)
    if pointmaps.ndim != 4 or pointmaps.shape[-1] != 3:
        raise ValueError(f"pointmaps must have shape (V, h, w, 3), got {pointmaps.shape}")
    confidences = _check_map("confidences", confidences, pointmaps.shape[:-1])
    norms = np.linalg.norm(pointmaps, axis=-1)
    finite = np.isfinite(norms)
    counted = finite & (confidences > min_confidence)
    if not counted.any():
        counted = finite
    mean = float(norms[counted].mean()) if counted.any() else 0.0
    if not mean > 0:
        raise ValueError("cannot normalise the world scale: no finite point away from the origin")
    return 1.0 / mean


def recover_pose(
    local: np.ndarray,
    world: np.ndarray,
    weights: Optional[np.ndarray] = None,
    valid: Optional[np.ndarray] = None,
    max_points: int = 8192,
    min_points: int = 50,
    seed: int = 0,
) -> RecoveredPose:
    """Camera pose and scale from a keyframe's local and world pointmaps (robust weighted similarity fit).

    Pixel (v, u) of both maps is the same surface point, so ``world ~= s R local + t`` and the camera, whose
    origin is the local frame's origin, sits at ``t`` with orientation ``R``.

    Args:
        local: (h, w, 3) camera-frame points. world: (h, w, 3) world points.
        weights: (h, w) non-negative fit weights (confidences); None = equal.
        valid: (h, w) bool, the pixels to fit; None = all. Pixels where either map is not finite are skipped.
            When fewer than ``min_points`` valid pixels remain, every finite pixel is used instead (the pose of
            a poorly reconstructed keyframe is still better than none; ``num_points`` tells which case ran).
        max_points: a fixed random subset of at most this many pixels is fitted (bounded cost).
        seed: seeds the subset and the robust fit (deterministic results).
    Returns:
        RecoveredPose; raises ValueError when fewer than 3 usable, non-collinear points exist.
    """
    local = _check_pointmap("local", local)
    world = _check_pointmap("world", world)
    if local.shape != world.shape:
        raise ValueError(f"local and world pointmaps must have one shape, got {local.shape} and {world.shape}")
    shape = local.shape[:2]
    weights = _check_map("weights", weights, shape)
    valid = _check_map("valid", valid, shape)
    if max_points < 3 or min_points < 3:
        raise ValueError(f"max_points and min_points must be >= 3, got {max_points} and {min_points}")
    finite = np.isfinite(local).all(-1) & np.isfinite(world).all(-1)
    if weights is not None:
        finite &= np.isfinite(weights) & (weights > 0)
    chosen = finite if valid is None else finite & valid.astype(bool)
    if np.count_nonzero(chosen) < min_points:
        chosen = finite
    index = np.flatnonzero(chosen)
    if len(index) < 3:
        raise ValueError(f"cannot recover a pose: only {len(index)} pixels have finite local and world points")
    rng = np.random.default_rng(seed)
    if len(index) > max_points:
        index = np.sort(rng.choice(index, size=max_points, replace=False))
    src = local.reshape(-1, 3)[index].astype(np.float64)
    dst = world.reshape(-1, 3)[index].astype(np.float64)
    w = None if weights is None else weights.reshape(-1)[index].astype(np.float64)
    fit = fit_similarity_robust(src, dst, w, with_scale=True, seed=seed)
    pose = np.eye(4)
    pose[:3, :3] = fit.rotation
    pose[:3, 3] = fit.translation
    residual = float(np.median(np.linalg.norm(dst - fit.apply(src), axis=1)))
    return RecoveredPose(pose, fit.scale, residual, len(index))
