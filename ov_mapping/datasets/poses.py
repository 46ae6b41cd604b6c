"""Pose conversions the readers need: quaternions (x, y, z, w order, as TUM and ROS write them) and
interpolation of a timed trajectory at other stamps."""

from __future__ import annotations

from typing import Optional

import numpy as np


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(4,) quaternion (x, y, z, w), any norm > 0 -> (3, 3) rotation matrix."""
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (4,):
        raise ValueError(f"quaternion must have shape (4,), got {q.shape}")
    norm = np.linalg.norm(q)
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError(f"quaternion must be finite and non-zero, got {q}")
    x, y, z, w = q / norm
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix -> (4,) unit quaternion (x, y, z, w) with w >= 0."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape != (3, 3):
        raise ValueError(f"rotation must have shape (3, 3), got {R.shape}")
    # Pick the largest diagonal combination so the square root never sees a tiny, noisy argument.
    trace = np.trace(R)
    candidates = [trace, R[0, 0], R[1, 1], R[2, 2]]
    k = int(np.argmax(candidates))
    if k == 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    elif k == 1:
        s = 2.0 * np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif k == 2:
        s = 2.0 * np.sqrt(1.0 - R[0, 0] + R[1, 1] - R[2, 2])
        q = [(R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 - R[0, 0] - R[1, 1] + R[2, 2])
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s, (R[1, 0] - R[0, 1]) / s]
    q = np.array(q) / np.linalg.norm(q)
    return -q if q[3] < 0 else q


def pose_from_translation_quaternion(t: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Translation (3,) and quaternion (x, y, z, w) -> (4, 4) float64 pose."""
    t = np.asarray(t, dtype=np.float64)
    if t.shape != (3,):
        raise ValueError(f"translation must have shape (3,), got {t.shape}")
    pose = np.eye(4)
    pose[:3, :3] = quaternion_to_matrix(q)
    pose[:3, 3] = t
    return pose


def slerp(q0: np.ndarray, q1: np.ndarray, alpha: float) -> np.ndarray:
    """Spherical interpolation between unit quaternions (x, y, z, w), along the shorter arc."""
    q0, q1 = np.asarray(q0, dtype=np.float64), np.asarray(q1, dtype=np.float64)
    dot = float(np.dot(q0, q1))
    if dot < 0:  # q and -q are the same rotation; flip to take the short way round
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly equal: linear interpolation is exact enough and avoids 0/0
        q = q0 + alpha * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(dot)
    return (np.sin((1 - alpha) * theta) * q0 + np.sin(alpha * theta) * q1) / np.sin(theta)


def interpolate_trajectory(
    stamps: np.ndarray, translations: np.ndarray, quaternions: np.ndarray, queries: np.ndarray, max_gap: float
) -> list[Optional[np.ndarray]]:
    """Poses at ``queries`` from a timed trajectory: linear in position, slerp in rotation.

    Args:
        stamps: (M,) seconds, sorted; translations: (M, 3); quaternions: (M, 4) (x, y, z, w).
        queries: (Q,) seconds.
        max_gap: a query is interpolated between its two bracketing samples when they are at most ``max_gap``
            seconds apart; otherwise it takes the nearest sample if that is within ``max_gap / 2``, else None
            (outside the trajectory or in a hole).
    Returns:
        Q entries, each a (4, 4) float64 pose or None.
    """
    stamps = np.asarray(stamps, dtype=np.float64)
    translations = np.asarray(translations, dtype=np.float64)
    quaternions = np.asarray(quaternions, dtype=np.float64)
    m = len(stamps)
    if stamps.shape != (m,) or translations.shape != (m, 3) or quaternions.shape != (m, 4):
        raise ValueError(f"trajectory shapes must be (M,), (M, 3), (M, 4); got {stamps.shape}, "
                         f"{translations.shape}, {quaternions.shape}")
    if m and np.any(np.diff(stamps) < 0):
        raise ValueError("trajectory stamps must be sorted")
    quaternions = quaternions / np.linalg.norm(quaternions, axis=1, keepdims=True)
    poses: list[Optional[np.ndarray]] = []
    for query in np.asarray(queries, dtype=np.float64).reshape(-1):
        if m == 0:
            poses.append(None)
            continue
        right = int(np.searchsorted(stamps, query))
        if right < m and stamps[right] == query:
            poses.append(pose_from_translation_quaternion(translations[right], quaternions[right]))
        elif 0 < right < m and stamps[right] - stamps[right - 1] <= max_gap:
            a, b = right - 1, right
            alpha = (query - stamps[a]) / (stamps[b] - stamps[a])
            t = (1 - alpha) * translations[a] + alpha * translations[b]
            poses.append(pose_from_translation_quaternion(t, slerp(quaternions[a], quaternions[b], alpha)))
        else:
            nearest = min((k for k in (right - 1, right) if 0 <= k < m), key=lambda k: abs(stamps[k] - query))
            close = abs(stamps[nearest] - query) <= max_gap / 2
            poses.append(pose_from_translation_quaternion(translations[nearest], quaternions[nearest]) if close
                         else None)
    return poses
