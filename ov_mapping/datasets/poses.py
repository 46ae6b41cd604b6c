"""Interpolation of a timed trajectory (TUM / bag poses) at other stamps. Quaternions are (x, y, z, w)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ov_mapping.geometry.transforms import pose_from_quaternion, slerp_quaternion


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
            poses.append(pose_from_quaternion(translations[right], quaternions[right]))
        elif 0 < right < m and stamps[right] - stamps[right - 1] <= max_gap:
            a, b = right - 1, right
            alpha = (query - stamps[a]) / (stamps[b] - stamps[a])
            t = (1 - alpha) * translations[a] + alpha * translations[b]
            poses.append(pose_from_quaternion(t, slerp_quaternion(quaternions[a], quaternions[b], alpha)))
        else:
            nearest = min((k for k in (right - 1, right) if 0 <= k < m), key=lambda k: abs(stamps[k] - query))
            close = abs(stamps[nearest] - query) <= max_gap / 2
            poses.append(pose_from_quaternion(translations[nearest], quaternions[nearest]) if close
                         else None)
    return poses
