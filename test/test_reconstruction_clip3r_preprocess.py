"""CLIP3R preprocessing: the centred 224 crop, its intrinsics both ways, and focal estimation from pointmaps."""

from __future__ import annotations

import numpy as np
import pytest

from ov_mapping.core.types import CameraIntrinsics
from ov_mapping.geometry.camera import backproject_depth, project_points
from ov_mapping.reconstruction.preprocess import (
    centre_crop_box,
    estimate_intrinsics,
    image_to_model_intrinsics,
    model_to_crop_intrinsics,
    model_to_image_intrinsics,
    prepare_image,
)


def test_crop_box_is_the_centred_square():
    box = centre_crop_box(640, 480)
    assert (box.x0, box.y0, box.side) == (80, 0, 480)
    box = centre_crop_box(240, 321)
    assert (box.x0, box.y0, box.side) == (0, 40, 240)


def test_prepare_image_crops_resizes_and_scales():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    prepared = prepare_image(rgb)
    assert prepared.model_input.shape == (3, 224, 224) and prepared.model_input.dtype == np.float32
    assert -1.0 <= prepared.model_input.min() and prepared.model_input.max() <= 1.0
    np.testing.assert_array_equal(prepared.crop_rgb, rgb[:, 40:280])
    # a flat image stays flat through the Lanczos resize: value 255 -> 1, 0 -> -1
    flat = prepare_image(np.full((300, 400, 3), 255, dtype=np.uint8)).model_input
    np.testing.assert_allclose(flat, 1.0, atol=1e-6)


def test_prepare_image_of_a_224_square_is_only_scaling():
    rgb = np.random.default_rng(1).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    prepared = prepare_image(rgb)
    np.testing.assert_allclose(prepared.model_input, rgb.transpose(2, 0, 1) / 127.5 - 1.0, atol=1e-6)


def test_prepared_image_keeps_the_picture_where_it_was():
    # a bright 40 x 40 square at a known place of a 640 x 480 image lands where the crop mapping says
    rgb = np.zeros((480, 640, 3), dtype=np.uint8)
    rgb[200:240, 300:340] = 255
    prepared = prepare_image(rgb)
    bright = prepared.model_input[0] > 0.0
    rows, cols = np.nonzero(bright)
    scale = 224 / 480
    assert abs(rows.mean() - (219.5 + 0.5) * scale + 0.5) < 0.5
    assert abs(cols.mean() - (319.5 - 80 + 0.5) * scale + 0.5) < 0.5


def test_intrinsics_round_trip_and_projection_agree():
    K = CameraIntrinsics(525.0, 520.0, 319.5, 239.5, 640, 480)
    box = centre_crop_box(640, 480)
    model = image_to_model_intrinsics(K, box)
    assert (model.width, model.height) == (224, 224)
    back = model_to_image_intrinsics(model, box)
    for name in ("fx", "fy", "cx", "cy", "width", "height"):
        assert getattr(back, name) == pytest.approx(getattr(K, name), abs=1e-9)
    crop = model_to_crop_intrinsics(model, box)
    assert (crop.width, crop.height, crop.cx) == (480, 480, pytest.approx(239.5))
    # one 3D point: its pixel in the image maps to its pixel in the model input through the crop + resize
    points = np.array([[0.3, -0.2, 2.0], [-0.5, 0.4, 3.0]])
    uv_img, _ = project_points(points, K)
    uv_model, inside = project_points(points, model)
    assert inside.all()
    expected = (uv_img - [box.x0, box.y0] + 0.5) * (224 / box.side) - 0.5
    np.testing.assert_allclose(uv_model, expected, atol=1e-9)


def test_estimate_intrinsics_recovers_the_focal_length_despite_outliers():
    K = CameraIntrinsics(190.0, 190.0, 111.5, 111.5, 224, 224)
    rng = np.random.default_rng(2)
    depth = rng.uniform(1.0, 4.0, (224, 224)).astype(np.float32)
    pointmap = backproject_depth(depth, K)
    pointmap = pointmap * np.float32(0.37)  # I2P's scale is arbitrary; the focal length is not
    wild = rng.random((224, 224)) < 0.05
    pointmap[wild] += rng.normal(0, 1.0, (wild.sum(), 3)).astype(np.float32)
    estimate = estimate_intrinsics(pointmap)
    assert estimate.fx == pytest.approx(190.0, rel=2e-3) and estimate.fy == estimate.fx
    assert (estimate.cx, estimate.cy, estimate.width) == (111.5, 111.5, 224)


@pytest.mark.parametrize(
    "rgb, message",
    [
        (np.zeros((240, 320, 3), dtype=np.float32), "uint8"),
        (np.zeros((240, 320), dtype=np.uint8), r"\(H, W, 3\)"),
        (np.zeros((240, 320, 4), dtype=np.uint8), r"\(H, W, 3\)"),
        (np.zeros((8, 320, 3), dtype=np.uint8), "at least 16x16"),
        ([[1, 2, 3]], "numpy array"),
    ],
)
def test_bad_images_are_rejected_clearly(rgb, message):
    with pytest.raises(ValueError, match=message):
        prepare_image(rgb)


def test_bad_intrinsics_inputs_are_rejected_clearly():
    box = centre_crop_box(640, 480)
    with pytest.raises(ValueError, match="640x480"):
        image_to_model_intrinsics(CameraIntrinsics(500.0, 500.0, 160.0, 120.0, 320, 240), box)
    with pytest.raises(ValueError, match=r"\(h, w, 3\)"):
        estimate_intrinsics(np.zeros((224, 224)))
    behind = np.full((224, 224, 3), np.nan, dtype=np.float32)
    with pytest.raises(ValueError, match="fewer than 2 points"):
        estimate_intrinsics(behind)
