"""CompressedImage (jpeg, png) <-> numpy via PIL, including 16-bit png depth and corrupt data."""

import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage

from ov_mapping.ros.conversions import (
    ConversionError,
    array_to_compressed,
    compressed_to_array,
    compressed_to_depth_m,
    compressed_to_rgb,
)

RNG = np.random.default_rng(1)


def smooth_rgb(height=32, width=48):
    """A gradient image jpeg reproduces closely (noise would not survive lossy compression)."""
    v, u = np.mgrid[0:height, 0:width]
    return np.stack([u * 255 // width, v * 255 // height, np.full_like(u, 60)], axis=2).astype(np.uint8)


LOSSLESS = {
    "rgb8": RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8),
    "bgr8": RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8),
    "rgba8": RNG.integers(0, 256, (6, 5, 4), dtype=np.uint8),
    "bgra8": RNG.integers(0, 256, (6, 5, 4), dtype=np.uint8),
    "mono8": RNG.integers(0, 256, (6, 5), dtype=np.uint8),
    "8UC1": RNG.integers(0, 256, (6, 5), dtype=np.uint8),
    "mono16": RNG.integers(0, 65536, (6, 5), dtype=np.uint16),
    "16UC1": RNG.integers(0, 65536, (6, 5), dtype=np.uint16),
}


@pytest.mark.parametrize("encoding", sorted(LOSSLESS))
def test_png_round_trip_is_exact(encoding):
    msg = array_to_compressed(LOSSLESS[encoding], encoding, fmt="png", stamp=3.0, frame_id="cam")
    assert msg.format.startswith(f"{encoding}; png compressed ")
    assert bytes(msg.data[:8]) == b"\x89PNG\r\n\x1a\n"
    assert msg.header.frame_id == "cam" and msg.header.stamp.sec == 3
    pixels, decoded = compressed_to_array(msg)
    assert decoded == encoding and pixels.dtype == LOSSLESS[encoding].dtype
    np.testing.assert_array_equal(pixels, LOSSLESS[encoding])


def test_jpeg_round_trip_rgb_is_close():
    rgb = smooth_rgb()
    msg = array_to_compressed(rgb, "rgb8", fmt="jpeg", quality=95)
    assert msg.format == "rgb8; jpeg compressed bgr8"
    assert bytes(msg.data[:2]) == b"\xff\xd8"
    pixels, encoding = compressed_to_array(msg)
    assert encoding == "rgb8" and pixels.shape == rgb.shape
    assert np.abs(pixels.astype(int) - rgb).mean() < 2.0


def test_jpeg_keeps_bgr_channel_order():
    rgb = smooth_rgb()
    msg = array_to_compressed(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr8", fmt="jpeg", quality=95)
    pixels, encoding = compressed_to_array(msg)
    assert encoding == "bgr8"
    assert np.abs(pixels[:, :, ::-1].astype(int) - rgb).mean() < 2.0
    assert np.abs(compressed_to_rgb(msg).astype(int) - rgb).mean() < 2.0


def test_jpeg_grey():
    grey = smooth_rgb()[:, :, 0]
    pixels, encoding = compressed_to_array(array_to_compressed(grey, "mono8", fmt="jpeg", quality=95))
    assert encoding == "mono8" and pixels.shape == grey.shape
    assert np.abs(pixels.astype(int) - grey).mean() < 2.0


def test_plain_format_string_gives_decoded_encoding():
    msg = array_to_compressed(LOSSLESS["rgba8"], "rgba8", fmt="png")
    msg.format = "png"
    pixels, encoding = compressed_to_array(msg)
    assert encoding == "rgba8"
    np.testing.assert_array_equal(pixels, LOSSLESS["rgba8"])


def test_sender_encoding_the_pixels_cannot_express_is_not_claimed():
    msg = array_to_compressed(LOSSLESS["mono8"], "mono8", fmt="png")
    msg.format = "rgb8; png compressed mono8"
    pixels, encoding = compressed_to_array(msg)
    assert encoding == "mono8"
    np.testing.assert_array_equal(compressed_to_rgb(msg), np.repeat(LOSSLESS["mono8"][:, :, None], 3, axis=2))


def test_png_depth_in_millimetres():
    mm = np.array([[0, 1500], [65535, 7]], np.uint16)
    depth = compressed_to_depth_m(array_to_compressed(mm, "16UC1", fmt="png"))
    assert depth.dtype == np.float32
    np.testing.assert_array_equal(depth, np.array([[0, 1.5], [65.535, 0.007]], np.float32))


def test_png_depth_of_big_endian_array():
    mm = np.array([[1, 258]], dtype=">u2")
    pixels, _ = compressed_to_array(array_to_compressed(mm, "16UC1", fmt="png"))
    np.testing.assert_array_equal(pixels, [[1, 258]])


def test_rgb_of_depth_is_refused():
    with pytest.raises(ConversionError, match="cannot convert a '16UC1' image to RGB"):
        compressed_to_rgb(array_to_compressed(LOSSLESS["16UC1"], "16UC1", fmt="png"))


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_jpeg(keep):
    msg = array_to_compressed(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8), "rgb8", fmt="jpeg")
    msg.data = msg.data[: int(len(msg.data) * keep)]
    with pytest.raises(ConversionError, match="corrupt or truncated"):
        compressed_to_array(msg)


def test_corrupt_png_body():
    msg = array_to_compressed(LOSSLESS["rgb8"], "rgb8", fmt="png")
    data = bytearray(msg.data)
    data[60:70] = b"\xff" * 10  # inside the compressed IDAT stream: the checksum no longer matches
    msg.data = bytes(data)
    with pytest.raises(ConversionError, match="corrupt or truncated"):
        compressed_to_array(msg)


def test_garbage_data():
    msg = CompressedImage(format="jpeg", data=b"definitely not an image")
    with pytest.raises(ConversionError, match="corrupt or truncated compressed image, or not an image"):
        compressed_to_array(msg)


def test_empty_data():
    with pytest.raises(ConversionError, match="corrupt or truncated compressed image, or not an image"):
        compressed_to_array(CompressedImage(format="png"))


def test_other_container_is_refused():
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.fromarray(LOSSLESS["rgb8"]).save(buffer, format="BMP")
    with pytest.raises(ConversionError, match="compressed image is BMP"):
        compressed_to_array(CompressedImage(format="bmp", data=buffer.getvalue()))


def test_compressed_depth_is_refused():
    with pytest.raises(ConversionError, match="compressedDepth"):
        compressed_to_array(CompressedImage(format="16UC1; compressedDepth png", data=b"\0" * 16))


@pytest.mark.parametrize(
    "encoding, fmt, quality, message",
    [
        ("rgba8", "jpeg", 90, "jpeg cannot hold 'rgba8'"),
        ("16UC1", "jpeg", 90, "jpeg cannot hold '16UC1'"),
        ("32FC1", "png", 90, "png cannot hold '32FC1'"),
        ("rgb8", "webp", 90, "'jpeg' or 'png'"),
        ("rgb8", "jpeg", 0, "quality must be in 1..95"),
    ],
)
def test_encoding_errors(encoding, fmt, quality, message):
    with pytest.raises(ConversionError, match=message):
        array_to_compressed(np.zeros((2, 2, 4), np.uint8), encoding, fmt=fmt, quality=quality)


def test_wrong_dtype_is_refused():
    with pytest.raises(ConversionError, match="dtype uint16, got float32"):
        array_to_compressed(np.zeros((2, 2), np.float32), "16UC1", fmt="png")


def test_palette_png_is_expanded():
    from io import BytesIO

    from PIL import Image

    rgb = np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8)
    palette = Image.fromarray(rgb).quantize(colors=2)
    assert palette.mode == "P"
    buffer = BytesIO()
    palette.save(buffer, format="PNG")
    pixels, encoding = compressed_to_array(CompressedImage(format="png", data=buffer.getvalue()))
    assert encoding == "rgb8"
    np.testing.assert_array_equal(pixels, rgb)


def test_rgb_of_8uc1_is_refused_like_raw_images():
    with pytest.raises(ConversionError, match="cannot convert a '8UC1' image to RGB"):
        compressed_to_rgb(array_to_compressed(LOSSLESS["8UC1"], "8UC1", fmt="png"))
