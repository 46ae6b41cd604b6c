"""Image <-> numpy: every encoding, padded rows, big-endian data and every kind of malformed message."""

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image

from ov_mapping.ros.conversions import (
    ENCODINGS,
    ConversionError,
    array_to_image,
    depth_m_to_image,
    image_to_array,
    image_to_depth_m,
    image_to_rgb,
)

RNG = np.random.default_rng(0)
SHAPES = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8UC1": 1, "mono16": 1, "16UC1": 1,
          "32FC1": 1, "32FC3": 3}


def random_pixels(encoding, height=5, width=7):
    channels = SHAPES[encoding]
    shape = (height, width) if channels == 1 else (height, width, channels)
    dtype = ENCODINGS[encoding].dtype
    if dtype.kind == "f":
        return RNG.normal(size=shape).astype(np.float32)
    return RNG.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


def raw_image(encoding, height, width, step, data, bigendian=0):
    return Image(height=height, width=width, encoding=encoding, step=step, is_bigendian=bigendian, data=bytes(data))


def test_encoding_table_matches_test_table():
    assert set(ENCODINGS) == set(SHAPES)


@pytest.mark.parametrize("encoding", sorted(SHAPES))
def test_round_trip_every_encoding(encoding):
    pixels = random_pixels(encoding)
    msg = array_to_image(pixels, encoding, stamp=12.5, frame_id="cam")
    bytes_per_pixel = SHAPES[encoding] * pixels.itemsize
    assert (msg.height, msg.width, msg.step) == (5, 7, 7 * bytes_per_pixel)
    assert msg.encoding == encoding and msg.is_bigendian == 0 and msg.header.frame_id == "cam"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 500_000_000)
    back = image_to_array(msg)
    assert back.dtype == pixels.dtype and back.shape == pixels.shape
    np.testing.assert_array_equal(back, pixels)


@pytest.mark.parametrize("encoding", ["rgb8", "16UC1", "32FC3"])
def test_round_trip_through_serialisation(encoding):
    pixels = random_pixels(encoding)
    msg = deserialize_message(serialize_message(array_to_image(pixels, encoding)), Image)
    np.testing.assert_array_equal(image_to_array(msg), pixels)


def test_bytes_are_laid_out_as_ros_expects():
    msg = array_to_image(np.array([[[1, 2, 3], [4, 5, 6]]], np.uint8), "rgb8")
    assert bytes(msg.data) == bytes([1, 2, 3, 4, 5, 6])
    msg = array_to_image(np.array([[0x0102]], np.uint16), "16UC1")
    assert bytes(msg.data) == bytes([0x02, 0x01])  # little-endian, is_bigendian = 0


def test_single_channel_accepts_trailing_axis():
    pixels = random_pixels("mono8")
    np.testing.assert_array_equal(image_to_array(array_to_image(pixels[:, :, None], "mono8")), pixels)


def test_result_does_not_alias_message():
    msg = array_to_image(np.zeros((2, 3), np.uint8), "mono8")
    pixels = image_to_array(msg)
    pixels[:] = 9
    assert bytes(msg.data) == bytes(6)


@pytest.mark.parametrize("encoding", ["rgb8", "mono16", "32FC1", "32FC3"])
def test_padded_step(encoding):
    pixels = random_pixels(encoding, 4, 3)
    row = pixels.reshape(4, -1).view(np.uint8).reshape(4, -1)
    padding = np.full((4, 5), 0xAB, np.uint8)
    data = np.concatenate([row, padding], axis=1)
    msg = raw_image(encoding, 4, 3, row.shape[1] + 5, data.tobytes())
    np.testing.assert_array_equal(image_to_array(msg), pixels)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1", "32FC3"])
def test_big_endian(encoding):
    pixels = random_pixels(encoding)
    big = pixels.astype(pixels.dtype.newbyteorder(">"))
    msg = raw_image(encoding, 5, 7, 7 * SHAPES[encoding] * pixels.itemsize, big.tobytes(), bigendian=1)
    back = image_to_array(msg)
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, pixels)


def test_big_endian_hand_value():
    msg = raw_image("16UC1", 1, 2, 4, bytes([0x01, 0x02, 0xFF, 0x00]), bigendian=1)
    np.testing.assert_array_equal(image_to_array(msg), [[0x0102, 0xFF00]])


def test_big_endian_flag_is_irrelevant_for_bytes():
    msg = raw_image("mono8", 1, 3, 3, bytes([1, 2, 3]), bigendian=1)
    np.testing.assert_array_equal(image_to_array(msg), [[1, 2, 3]])


def test_empty_image():
    msg = array_to_image(np.zeros((0, 0, 3), np.uint8), "rgb8")
    assert image_to_array(msg).shape == (0, 0, 3)


def test_conversion_error_is_value_error():
    assert issubclass(ConversionError, ValueError)


def test_unknown_encoding():
    with pytest.raises(ConversionError, match="unsupported image encoding 'yuv422'"):
        image_to_array(raw_image("yuv422", 1, 1, 2, bytes(2)))
    with pytest.raises(ConversionError, match="unsupported image encoding"):
        array_to_image(np.zeros((2, 2), np.uint8), "bayer_rggb8")


def test_step_smaller_than_row():
    with pytest.raises(ConversionError, match="step 5 is smaller than width \\* bytes per pixel = 2 \\* 3 = 6"):
        image_to_array(raw_image("rgb8", 2, 2, 5, bytes(10)))


def test_truncated_data():
    with pytest.raises(ConversionError, match="truncated: 11 bytes, expected step \\* height = 6 \\* 2 = 12"):
        image_to_array(raw_image("rgb8", 2, 2, 6, bytes(11)))


def test_extra_data():
    with pytest.raises(ConversionError, match="width, height or step is wrong"):
        image_to_array(raw_image("mono8", 2, 2, 2, bytes(5)))


@pytest.mark.parametrize(
    "array, encoding, message",
    [
        (np.zeros((2, 2), np.float32), "16UC1", "dtype uint16, got float32"),
        (np.zeros((2, 2), np.float64), "32FC1", "dtype float32, got float64"),
        (np.zeros((2, 2, 3), np.int8), "rgb8", "dtype uint8"),
        (np.zeros((2, 2, 4), np.uint8), "rgb8", "shape \\(H, W, 3\\), got \\(2, 2, 4\\)"),
        (np.zeros((2, 2, 3), np.uint8), "mono8", "shape \\(H, W\\), got \\(2, 2, 3\\)"),
        (np.zeros(4, np.uint8), "mono8", "shape \\(H, W\\)"),
        (np.zeros((2, 2), bool), "mono8", "dtype uint8, got bool"),
        ([[1, 2]], "mono8", "numpy array"),
    ],
)
def test_wrong_array(array, encoding, message):
    with pytest.raises(ConversionError, match=message):
        array_to_image(array, encoding)


def test_big_endian_array_is_written_little_endian():
    pixels = np.array([[1, 300]], dtype=">u2")
    msg = array_to_image(pixels, "mono16")
    assert bytes(msg.data) == np.array([1, 300], "<u2").tobytes()


def test_image_to_rgb_every_colour_encoding():
    rgb = random_pixels("rgb8")
    alpha = RNG.integers(0, 255, size=rgb.shape[:2] + (1,), dtype=np.uint8)
    cases = {
        "rgb8": rgb,
        "bgr8": rgb[:, :, ::-1],
        "rgba8": np.concatenate([rgb, alpha], axis=2),
        "bgra8": np.concatenate([rgb[:, :, ::-1], alpha], axis=2),
    }
    for encoding, pixels in cases.items():
        out = image_to_rgb(array_to_image(np.ascontiguousarray(pixels), encoding))
        assert out.dtype == np.uint8 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, rgb, err_msg=encoding)


def test_image_to_rgb_hand_values():
    bgr = raw_image("bgr8", 1, 1, 3, bytes([10, 20, 30]))
    np.testing.assert_array_equal(image_to_rgb(bgr), [[[30, 20, 10]]])
    grey = raw_image("mono8", 1, 2, 2, bytes([7, 200]))
    np.testing.assert_array_equal(image_to_rgb(grey), [[[7, 7, 7], [200, 200, 200]]])


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1", "32FC3", "8UC1"])
def test_image_to_rgb_refuses_non_colour(encoding):
    with pytest.raises(ConversionError, match="cannot convert"):
        image_to_rgb(array_to_image(random_pixels(encoding), encoding))


@pytest.mark.parametrize("encoding", ["16UC1", "mono16"])
def test_depth_from_millimetres(encoding):
    mm = np.array([[0, 1234], [65535, 1]], np.uint16)
    depth = image_to_depth_m(array_to_image(mm, encoding))
    assert depth.dtype == np.float32
    np.testing.assert_array_equal(depth, np.array([[0, 1.234], [65.535, 0.001]], np.float32))


def test_depth_from_metres_marks_invalid_zero():
    metres = np.array([[1.5, np.nan], [np.inf, -2.0]], np.float32)
    depth = image_to_depth_m(array_to_image(metres, "32FC1"))
    np.testing.assert_array_equal(depth, [[1.5, 0.0], [0.0, 0.0]])


def test_depth_refuses_colour():
    with pytest.raises(ConversionError, match="cannot read depth from a 'rgb8' image"):
        image_to_depth_m(array_to_image(random_pixels("rgb8"), "rgb8"))


def test_depth_m_to_image_round_trip():
    metres = np.array([[0.5, 1.2346], [np.nan, 0.0]], np.float32)
    msg = depth_m_to_image(metres, "16UC1")
    np.testing.assert_array_equal(image_to_array(msg), [[500, 1235], [0, 0]])  # rounded, not truncated
    np.testing.assert_array_equal(image_to_depth_m(depth_m_to_image(metres)), np.nan_to_num(metres))


def test_depth_m_to_image_errors():
    with pytest.raises(ConversionError, match="does not fit 16UC1"):
        depth_m_to_image(np.array([[70.0]], np.float32), "16UC1")
    with pytest.raises(ConversionError, match="float array in metres"):
        depth_m_to_image(np.array([[700]], np.uint16), "16UC1")
    with pytest.raises(ConversionError, match="32FC1 or 16UC1"):
        depth_m_to_image(np.zeros((1, 1), np.float32), "mono16")
