import numpy as np
import pytest

from ov_mapping.geometry.tf_buffer import TransformBuffer, TransformLookupError
from ov_mapping.geometry.transforms import pose_from_quaternion


def _yaw(angle: float, t) -> np.ndarray:
    return pose_from_quaternion(np.asarray(t, float), np.array([0, 0, np.sin(angle / 2), np.cos(angle / 2)]))


def test_lookup_interpolates_and_chains_static_and_dynamic_edges():
    buffer = TransformBuffer()
    buffer.set_transform("odom", "base", 0.0, _yaw(0.0, [0, 0, 0]))
    buffer.set_transform("odom", "base", 1.0, _yaw(np.pi / 2, [2, 0, 0]))
    buffer.set_transform("base", "camera", 0.0, _yaw(0.0, [0, 0, 1]), static=True)
    T = buffer.lookup("odom", "camera", 0.5)
    expected = _yaw(np.pi / 4, [1, 0, 0]) @ _yaw(0.0, [0, 0, 1])
    assert np.allclose(T, expected, atol=1e-9)
    # The inverse direction and a frame to itself.
    assert np.allclose(buffer.lookup("camera", "odom", 0.5) @ T, np.eye(4), atol=1e-9)
    assert np.allclose(buffer.lookup("camera", "camera", 7.0), np.eye(4))


def test_lookup_refuses_extrapolation_and_unconnected_frames():
    buffer = TransformBuffer(max_extrapolation=0.05)
    buffer.set_transform("odom", "camera", 1.0, np.eye(4))
    buffer.set_transform("odom", "camera", 2.0, np.eye(4))
    assert buffer.can_lookup("odom", "camera", 2.04) is None
    with pytest.raises(TransformLookupError, match="no transform"):
        buffer.lookup("odom", "camera", 3.0)
    with pytest.raises(TransformLookupError, match="not connected"):
        buffer.lookup("map", "camera", 1.5)
    with pytest.raises(ValueError):
        buffer.set_transform("odom", "camera", 1.0, np.full((4, 4), np.nan))
    with pytest.raises(ValueError):
        buffer.set_transform("odom", "odom", 1.0, np.eye(4))
