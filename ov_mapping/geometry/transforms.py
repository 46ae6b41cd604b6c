"""Rotations, rigid poses and similarity fitting. Pure numpy.

Quaternions are (x, y, z, w) like ROS ``geometry_msgs/Quaternion``. A similarity maps
``dst ~= scale * rotation @ src + translation``.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from ov_mapping.geometry.camera import apply_affine, check_pose

_ORTHO_TOL = 1e-3  # real pose files (printed with ~7 digits) are orthonormal only to ~2e-4


class Similarity(NamedTuple):
    """``dst = scale * rotation @ src + translation``; unpacks as ``(s, R, t)``."""

    scale: float
    rotation: np.ndarray  # (3, 3) float64, proper rotation
    translation: np.ndarray  # (3,) float64

    def matrix(self) -> np.ndarray:
        """The 4x4 float64 matrix [[s R, t], [0, 1]]."""
        out = np.eye(4)
        out[:3, :3] = self.scale * self.rotation
        out[:3, 3] = self.translation
        return out

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 3) points; returns float64 (N, 3)."""
        points = _check_cloud("points", points)
        return apply_affine(self.scale * self.rotation, self.translation, points)


def _check_cloud(name: str, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {points.shape}")
    if not np.issubdtype(points.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {points.dtype}")
    points = points.astype(np.float64)
    if not np.isfinite(points).all():
        raise ValueError(f"{name} contains NaN or inf; mask invalid points out before fitting")
    return points


def check_rotation(name: str, rotation: np.ndarray) -> np.ndarray:
    """Return ``rotation`` as float64 (..., 3, 3) after checking it is a proper rotation."""
    rotation = np.asarray(rotation, dtype=np.float64)
    if rotation.ndim < 2 or rotation.shape[-2:] != (3, 3):
        raise ValueError(f"{name} must have shape (..., 3, 3), got {rotation.shape}")
    if not np.isfinite(rotation).all():
        raise ValueError(f"{name} must be finite")
    gram = np.einsum("...ji,...jk->...ik", rotation, rotation)
    if not np.allclose(gram, np.eye(3), atol=_ORTHO_TOL) or not (np.linalg.det(rotation) > 0).all():
        raise ValueError(f"{name} is not a proper rotation matrix (R^T R != I or det <= 0)")
    return rotation


def nearest_rotation(matrix: np.ndarray) -> np.ndarray:
    """The proper rotation (..., 3, 3) closest in Frobenius norm to ``matrix`` (..., 3, 3).

    Use it to clean up rotations that drifted from orthonormality through repeated products.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim < 2 or matrix.shape[-2:] != (3, 3) or not np.isfinite(matrix).all():
        raise ValueError(f"matrix must be finite with shape (..., 3, 3), got {matrix.shape}")
    U, _, Vt = np.linalg.svd(matrix)
    sign = np.where(np.linalg.det(U @ Vt) < 0, -1.0, 1.0)
    U[..., :, 2] *= sign[..., None]
    return U @ Vt


def quaternion_to_matrix(quaternion: np.ndarray) -> np.ndarray:
    """Rotation matrices from quaternions.

    Args:
        quaternion: (..., 4) as (x, y, z, w); normalised here, must not be zero.
    Returns:
        (..., 3, 3) float64 rotation matrices.
    """
    q = np.asarray(quaternion, dtype=np.float64)
    if q.ndim < 1 or q.shape[-1] != 4:
        raise ValueError(f"quaternion must have shape (..., 4) as (x, y, z, w), got {q.shape}")
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if not np.isfinite(q).all() or (norm < 1e-12).any():
        raise ValueError("quaternion must be finite and non-zero")
    x, y, z, w = np.moveaxis(q / norm, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=-1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=-1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=-1),
        ],
        axis=-2,
    )


def matrix_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) as (x, y, z, w), unit norm, w >= 0, from rotations (..., 3, 3)."""
    R = check_rotation("rotation", rotation)
    r00, r11, r22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    # Shepperd's method: divide by the largest of the four candidate components for stability.
    diag = np.stack([r00 + r11 + r22, r00, r11, r22], axis=-1)
    case = np.argmax(diag, axis=-1)
    s = np.stack(
        [
            1 + r00 + r11 + r22,
            1 + r00 - r11 - r22,
            1 - r00 + r11 - r22,
            1 - r00 - r11 + r22,
        ],
        axis=-1,
    )
    big = 0.5 * np.sqrt(np.clip(np.take_along_axis(s, case[..., None], axis=-1)[..., 0], 1e-300, None))
    inv = 0.25 / big
    d21, d02, d10 = R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]
    s01, s02, s12 = R[..., 0, 1] + R[..., 1, 0], R[..., 0, 2] + R[..., 2, 0], R[..., 1, 2] + R[..., 2, 1]
    candidates = np.stack(
        [
            np.stack([d21 * inv, d02 * inv, d10 * inv, big], axis=-1),
            np.stack([big, s01 * inv, s02 * inv, d21 * inv], axis=-1),
            np.stack([s01 * inv, big, s12 * inv, d02 * inv], axis=-1),
            np.stack([s02 * inv, s12 * inv, big, d10 * inv], axis=-1),
        ],
        axis=-2,
    )
    q = np.take_along_axis(candidates, case[..., None, None], axis=-2)[..., 0, :]
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., 3:4] < 0, -q, q)


def pose_from_quaternion(translation: np.ndarray, quaternion: np.ndarray) -> np.ndarray:
    """4x4 float64 pose from a translation (3,) and a quaternion (4,) as (x, y, z, w)."""
    translation = np.asarray(translation, dtype=np.float64)
    if translation.shape != (3,) or not np.isfinite(translation).all():
        raise ValueError(f"translation must be a finite (3,) vector, got shape {translation.shape}")
    quaternion = np.asarray(quaternion)
    if quaternion.shape != (4,):
        raise ValueError(f"quaternion must have shape (4,), got {quaternion.shape}")
    pose = np.eye(4)
    pose[:3, :3] = quaternion_to_matrix(quaternion)
    pose[:3, 3] = translation
    return pose


def slerp_quaternion(q0: np.ndarray, q1: np.ndarray, alpha: float) -> np.ndarray:
    """Spherical interpolation between unit quaternions (4,) as (x, y, z, w), along the shorter arc."""
    q0, q1 = np.asarray(q0, dtype=np.float64), np.asarray(q1, dtype=np.float64)
    dot = float(np.dot(q0, q1))
    if dot < 0:  # q and -q are the same rotation; flip to take the short way round
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly equal: linear interpolation is exact enough and avoids 0/0
        q = q0 + alpha * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(dot)
    return (np.sin((1 - alpha) * theta) * q0 + np.sin(alpha * theta) * q1) / np.sin(theta)


def interpolate_pose(pose_a: np.ndarray, pose_b: np.ndarray, alpha: float) -> np.ndarray:
    """The pose a fraction ``alpha`` of the way from ``pose_a`` to ``pose_b``: linear translation, slerp rotation."""
    q = slerp_quaternion(matrix_to_quaternion(pose_a[:3, :3]), matrix_to_quaternion(pose_b[:3, :3]), alpha)
    return pose_from_quaternion((1 - alpha) * pose_a[:3, 3] + alpha * pose_b[:3, 3], q)


def pose_to_quaternion(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a rigid 4x4 pose into translation (3,) and quaternion (4,) as (x, y, z, w)."""
    pose = check_pose("pose", pose)
    return pose[:3, 3].copy(), matrix_to_quaternion(pose[:3, :3])


def invert_pose(pose: np.ndarray) -> np.ndarray:
    """Inverse of a rigid 4x4 pose (R^T, -R^T t); rejects non-rigid matrices."""
    pose = check_pose("pose", pose)
    rotation = check_rotation("pose rotation", pose[:3, :3])
    out = np.eye(4)
    out[:3, :3] = rotation.T
    out[:3, 3] = -rotation.T @ pose[:3, 3]
    return out


def rotation_angle(rotation: np.ndarray) -> np.ndarray:
    """Rotation angle in radians, in [0, pi], of rotations (..., 3, 3)."""
    R = np.asarray(rotation, dtype=np.float64)
    if R.ndim < 2 or R.shape[-2:] != (3, 3):
        raise ValueError(f"rotation must have shape (..., 3, 3), got {R.shape}")
    cos = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))


def relative_motion(pose_a: np.ndarray, pose_b: np.ndarray) -> tuple[float, float]:
    """Translation (same unit as the poses) and rotation angle (radians) between two rigid poses."""
    delta = invert_pose(pose_a) @ check_pose("pose_b", pose_b)
    return float(np.linalg.norm(delta[:3, 3])), float(rotation_angle(delta[:3, :3]))


def _check_pairs(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated (N, 3) point pairs, N >= 3."""
    src = _check_cloud("src", src)
    dst = _check_cloud("dst", dst)
    if src.shape != dst.shape:
        raise ValueError(f"src and dst must have the same shape, got {src.shape} and {dst.shape}")
    if len(src) < 3:
        raise ValueError(f"need at least 3 point pairs, got {len(src)}")
    return src, dst


def _check_weights(weights: Optional[np.ndarray], n: int) -> np.ndarray:
    if weights is None:
        return np.ones(n)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (n,):
        raise ValueError(f"weights must have shape ({n},), got {weights.shape}")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("weights must be finite and non-negative")
    if weights.sum() <= 0:
        raise ValueError("weights must not all be zero")
    return weights


def _umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray, with_scale: bool) -> tuple:
    """Batched weighted Umeyama. src/dst (K, N, 3), weights (K, N) summing to 1 per batch.

    Returns scale (K,), rotation (K, 3, 3), translation (K, 3), ok (K,) where ok marks
    non-degenerate problems (spread source points, rank >= 2 cross-covariance).
    """
    mu_src = np.einsum("kn,knd->kd", weights, src)
    mu_dst = np.einsum("kn,knd->kd", weights, dst)
    src_c = src - mu_src[:, None]
    dst_c = dst - mu_dst[:, None]
    var_src = np.einsum("kn,kn->k", weights, (src_c**2).sum(-1))
    cov = np.einsum("kn,kni,knj->kij", weights, dst_c, src_c)
    U, D, Vt = np.linalg.svd(cov)
    sign = np.sign(np.linalg.det(U) * np.linalg.det(Vt))
    sign[sign == 0] = 1.0
    S = np.ones((len(src), 3))
    S[:, 2] = sign
    rotation = np.einsum("kij,kj,kjl->kil", U, S, Vt)
    extent = np.maximum(var_src, 1e-300)
    # The rotation is unique only if the cross-covariance has rank >= 2 (points not collinear).
    ok = (var_src > 0) & (D[:, 1] > 1e-12 * np.maximum(D[:, 0], 1e-300)) & (D[:, 0] > 1e-15 * extent)
    scale = (D * S).sum(-1) / extent if with_scale else np.ones(len(src))
    ok &= scale > 0
    translation = mu_dst - scale[:, None] * np.einsum("kij,kj->ki", rotation, mu_src)
    return scale, rotation, translation, ok


def fit_similarity(
    src: np.ndarray, dst: np.ndarray, weights: Optional[np.ndarray] = None, with_scale: bool = True
) -> Similarity:
    """Least-squares similarity (Umeyama 1991) with optional per-point weights.

    Args:
        src, dst: (N, 3) corresponding finite points, N >= 3 and not all collinear.
        weights: (N,) non-negative, not all zero; points with weight 0 are ignored.
        with_scale: False fits a rigid transform (scale fixed to 1).
    Returns:
        Similarity (s, R, t) minimising sum_i w_i |dst_i - (s R src_i + t)|^2.
    """
    src, dst = _check_pairs(src, dst)
    weights = _check_weights(weights, len(src))
    scale, rotation, translation, ok = _umeyama(src[None], dst[None], (weights / weights.sum())[None], with_scale)
    if not ok[0]:
        raise ValueError("degenerate point set: the weighted source points are coincident or collinear")
    return Similarity(float(scale[0]), rotation[0], translation[0])


def similarity_residuals(similarity: Similarity, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Euclidean residuals |dst - T(src)| as (N,) float64."""
    src = _check_cloud("src", src)
    dst = _check_cloud("dst", dst)
    if src.shape != dst.shape:
        raise ValueError(f"src and dst must have the same shape, got {src.shape} and {dst.shape}")
    return np.linalg.norm(dst - similarity.apply(src), axis=1)


def fit_similarity_robust(
    src: np.ndarray,
    dst: np.ndarray,
    weights: Optional[np.ndarray] = None,
    with_scale: bool = True,
    num_hypotheses: int = 128,
    max_iterations: int = 30,
    tukey_c: float = 4.685,
    seed: int = 0,
) -> Similarity:
    """Similarity fit that tolerates up to about 45 % outliers.

    Least-median-of-squares over random minimal (3-point) samples gives a threshold-free start;
    iteratively reweighted least squares with Tukey's biweight (residual scale re-estimated from
    the median residual each round) then refines it. Outliers end with weight exactly 0, so exact
    inliers give an exact fit.

    Args:
        src, dst: (N, 3) corresponding finite points, N >= 3.
        weights: (N,) optional non-negative prior weights (e.g. confidences), multiplied in.
        num_hypotheses: minimal samples drawn for the initial estimate.
        max_iterations: IRLS rounds (stops earlier when the estimate stops changing).
        tukey_c: biweight cut-off in units of the robust residual scale.
        seed: seed of the sampler (results are deterministic).
    Returns:
        Similarity (s, R, t).
    """
    src, dst = _check_pairs(src, dst)
    prior = _check_weights(weights, len(src))
    if num_hypotheses < 1 or max_iterations < 1 or not tukey_c > 0:
        raise ValueError("num_hypotheses and max_iterations must be >= 1 and tukey_c > 0")
    usable = np.flatnonzero(prior > 0)
    if len(usable) < 3:
        raise ValueError("need at least 3 point pairs with positive weight")
    rng = np.random.default_rng(seed)

    # Minimal samples, fitted in one batch.
    samples = np.stack([rng.choice(usable, size=3, replace=False) for _ in range(num_hypotheses)])
    flat = np.full((num_hypotheses, 3), 1.0 / 3.0)
    scales, rotations, translations, ok = _umeyama(src[samples], dst[samples], flat, with_scale)
    if not ok.any():
        raise ValueError("degenerate point set: every sampled triple is collinear")
    # Score on a fixed subset so the cost does not grow with N.
    probe = usable if len(usable) <= 4000 else rng.choice(usable, size=4000, replace=False)
    predicted = scales[:, None, None] * np.einsum("kij,nj->kni", rotations, src[probe]) + translations[:, None]
    medians = np.median(np.linalg.norm(predicted - dst[probe][None], axis=2), axis=1)
    medians[~ok] = np.inf
    best = int(np.argmin(medians))
    estimate = Similarity(float(scales[best]), rotations[best], translations[best])

    # Floor the residual scale so exact data does not collapse the biweight window to zero.
    spread = np.sqrt(np.mean(np.sum((dst[usable] - dst[usable].mean(0)) ** 2, axis=1)))
    floor = 1e-9 * max(spread, 1e-12)
    for _ in range(max_iterations):
        residuals = np.linalg.norm(dst - estimate.apply(src), axis=1)
        sigma = max(1.4826 * np.median(residuals[usable]), floor)
        ratio = residuals / (tukey_c * sigma)
        robust = np.where(ratio < 1.0, (1.0 - ratio**2) ** 2, 0.0) * prior
        if np.count_nonzero(robust) < 3:
            break
        scale, rotation, translation, ok = _umeyama(
            src[None], dst[None], (robust / robust.sum())[None], with_scale
        )
        if not ok[0]:
            break
        new = Similarity(float(scale[0]), rotation[0], translation[0])
        change = np.abs(new.matrix() - estimate.matrix()).max()
        estimate = new
        if change < 1e-12 * max(1.0, np.abs(estimate.translation).max()):
            break
    return estimate
