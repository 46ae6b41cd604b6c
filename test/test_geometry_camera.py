import numpy as np
import pytest

from ov_mapping.core.types import CameraIntrinsics
from ov_mapping.geometry.camera import (
    backproject_depth,
    depth_to_metres,
    pointmap_to_world,
    project_points,
    transform_points,
)

INTR = CameraIntrinsics(fx=500.0, fy=480.0, cx=31.5, cy=23.5, width=64, height=48)


def test_backproject_then_project_returns_pixels():
    depth = np.random.default_rng(0).uniform(0.5, 4.0, (48, 64)).astype(np.float32)
    pointmap = backproject_depth(depth, INTR)
    assert pointmap.shape == (48, 64, 3) and pointmap.dtype == np.float32
    np.testing.assert_allclose(pointmap[..., 2], depth)
    uv, inside = project_points(pointmap.reshape(-1, 3), INTR)
    rows, cols = np.mgrid[0:48, 0:64]
    np.testing.assert_allclose(uv[:, 0], cols.ravel(), atol=1e-4)
    np.testing.assert_allclose(uv[:, 1], rows.ravel(), atol=1e-4)
    assert inside.all()


def test_invalid_depth_becomes_nan_and_range_applies():
    depth = np.full((48, 64), 2.0, dtype=np.float32)
    depth[0, 0] = 0.0
    depth[0, 1] = np.nan
    depth[0, 2] = 9.0
    pointmap = backproject_depth(depth, INTR, max_depth=5.0)
    assert np.isnan(pointmap[0, :3]).all()
    assert np.isfinite(pointmap[1:]).all()


def test_integer_depth_uses_scale_and_stride():
    raw = np.full((48, 64), 1500, dtype=np.uint16)
    pointmap = backproject_depth(raw, INTR, stride=4, depth_scale=1000.0)
    assert pointmap.shape == (12, 16, 3)
    np.testing.assert_allclose(pointmap[..., 2], 1.5)
    # Cell (v, u) of a strided map is pixel (4v, 4u).
    np.testing.assert_allclose(pointmap[2, 3, 0], (12 - INTR.cx) / INTR.fx * 1.5, rtol=1e-6)


def test_depth_to_metres_marks_invalid_as_zero():
    out = depth_to_metres(np.array([[np.nan, -1.0, np.inf, 2.0]], dtype=np.float32))
    np.testing.assert_array_equal(out, [[0.0, 0.0, 0.0, 2.0]])
    with pytest.raises(ValueError, match="dtype"):
        depth_to_metres(np.zeros((2, 2), dtype=bool))


def test_project_marks_behind_and_outside():
    uv, inside = project_points(np.array([[0.0, 0.0, -1.0], [10.0, 0.0, 1.0], [0.0, 0.0, 1.0]]), INTR)
    assert np.isnan(uv[0]).all()
    assert inside.tolist() == [False, False, True]


def test_transform_points_keeps_shape_dtype_and_nan():
    T = np.eye(4)
    T[:3, 3] = [1.0, 2.0, 3.0]
    pm = np.zeros((2, 2, 3), dtype=np.float32)
    pm[0, 0] = np.nan
    out = pointmap_to_world(pm, T)
    assert out.dtype == np.float32 and out.shape == (2, 2, 3)
    assert np.isnan(out[0, 0]).all()
    np.testing.assert_allclose(out[1, 1], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(transform_points(T, np.zeros((1, 3))), [[1.0, 2.0, 3.0]])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: backproject_depth(np.zeros((10, 10)), INTR), "intrinsics"),
        (lambda: backproject_depth(np.zeros((48, 64, 1)), INTR), "shape"),
        (lambda: backproject_depth(np.zeros((48, 64)), INTR, stride=0), "stride"),
        (lambda: transform_points(np.eye(3), np.zeros((1, 3))), "4, 4"),
        (lambda: transform_points(np.eye(4), np.zeros((1, 2))), "3"),
        (lambda: project_points(np.zeros((2, 2, 3)), INTR), "N, 3"),
    ],
)
def test_bad_input_raises_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
