import numpy as np
import pytest

from ov_mapping.geometry.transforms import (
    Similarity,
    fit_similarity,
    fit_similarity_robust,
    invert_pose,
    matrix_to_quaternion,
    nearest_rotation,
    pose_from_quaternion,
    pose_to_quaternion,
    quaternion_to_matrix,
    relative_motion,
    similarity_residuals,
)


def random_rotations(n, seed=0):
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return quaternion_to_matrix(q)


def test_quaternion_order_is_ros_xyzw():
    half = np.sqrt(0.5)
    R = quaternion_to_matrix([0.0, 0.0, half, half])  # +90 degrees about z
    np.testing.assert_allclose(R, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(matrix_to_quaternion(R), [0, 0, half, half], atol=1e-12)


def test_quaternion_round_trip_including_half_turns():
    q = np.random.default_rng(1).normal(size=(500, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 3] < 0] *= -1
    np.testing.assert_allclose(matrix_to_quaternion(quaternion_to_matrix(q)), q, atol=1e-12)
    for R in (np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1])):
        np.testing.assert_allclose(quaternion_to_matrix(matrix_to_quaternion(R)), R, atol=1e-12)


def test_pose_helpers():
    T = pose_from_quaternion([1.0, 2.0, 3.0], [0.1, 0.2, 0.3, 0.9])
    np.testing.assert_allclose(invert_pose(T) @ T, np.eye(4), atol=1e-12)
    t, q = pose_to_quaternion(T)
    np.testing.assert_allclose(pose_from_quaternion(t, q), T, atol=1e-12)
    moved = T.copy()
    moved[:3, 3] += T[:3, :3] @ [0.3, 0.0, 0.4]
    translation, angle = relative_motion(T, moved)
    assert translation == pytest.approx(0.5) and angle == pytest.approx(0.0, abs=1e-7)


def test_nearest_rotation_repairs_drift():
    R = random_rotations(1)[0] + 1e-3
    fixed = nearest_rotation(R)
    np.testing.assert_allclose(fixed.T @ fixed, np.eye(3), atol=1e-12)
    assert np.linalg.det(fixed) == pytest.approx(1.0)
    assert np.abs(fixed - R).max() < 5e-3


def test_umeyama_exact_recovery_sub_millimetre():
    rng = np.random.default_rng(2)
    src = rng.uniform(-2, 2, (2000, 3))
    truth = Similarity(0.37, random_rotations(1, 3)[0], np.array([1.5, -0.2, 3.0]))
    fit = fit_similarity(src, truth.apply(src))
    assert abs(fit.scale - truth.scale) < 1e-9
    np.testing.assert_allclose(fit.rotation, truth.rotation, atol=1e-9)
    np.testing.assert_allclose(fit.translation, truth.translation, atol=1e-9)
    assert similarity_residuals(fit, src, truth.apply(src)).max() < 1e-6  # far below a millimetre


def test_rigid_fit_keeps_unit_scale_and_weights_ignore_outliers():
    rng = np.random.default_rng(4)
    src = rng.uniform(-1, 1, (300, 3))
    truth = Similarity(1.0, random_rotations(1, 5)[0], np.array([0.0, 1.0, 0.0]))
    dst = truth.apply(src)
    dst[:50] += 5.0
    weights = np.ones(300)
    weights[:50] = 0.0
    fit = fit_similarity(src, dst, weights=weights, with_scale=False)
    assert fit.scale == 1.0
    np.testing.assert_allclose(fit.matrix(), truth.matrix(), atol=1e-9)


def test_robust_fit_rejects_forty_percent_outliers():
    rng = np.random.default_rng(6)
    src = rng.uniform(-1, 1, (3000, 3))
    truth = Similarity(2.5, random_rotations(1, 7)[0], np.array([0.3, -0.4, 2.0]))
    dst = truth.apply(src)
    outliers = rng.random(3000) < 0.4
    dst[outliers] += rng.normal(0, 1.0, (outliers.sum(), 3))
    plain = fit_similarity(src, dst)
    robust = fit_similarity_robust(src, dst)
    assert np.abs(plain.translation - truth.translation).max() > 0.01  # least squares is pulled away
    assert abs(robust.scale - truth.scale) < 1e-9
    np.testing.assert_allclose(robust.matrix(), truth.matrix(), atol=1e-9)
    # With noise on the inliers the error stays at the noise level (1 mm here).
    noisy = dst + rng.normal(0, 0.001, dst.shape)
    fit = fit_similarity_robust(src, noisy)
    assert similarity_residuals(fit, src, truth.apply(src)).mean() < 0.001


@pytest.mark.parametrize(
    "src, dst, message",
    [
        (np.zeros((5, 2)), np.zeros((5, 2)), "shape"),
        (np.zeros((5, 3)), np.zeros((4, 3)), "same shape"),
        (np.zeros((2, 3)), np.zeros((2, 3)), "at least 3"),
        (np.full((5, 3), np.nan), np.zeros((5, 3)), "NaN"),
        (np.outer(np.arange(5.0), [1, 1, 1]), np.outer(np.arange(5.0), [1, 1, 1]), "degenerate"),
    ],
)
def test_fit_rejects_bad_input(src, dst, message):
    with pytest.raises(ValueError, match=message):
        fit_similarity(src, dst)


def test_robust_fit_rejects_bad_weights_and_rotations():
    with pytest.raises(ValueError, match="weights"):
        fit_similarity_robust(np.eye(3), np.eye(3), weights=np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="rotation"):
        matrix_to_quaternion(np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match="non-zero"):
        quaternion_to_matrix(np.zeros(4))
