"""``sensor_msgs/Image`` <-> numpy, honouring ``step`` (row padding) and ``is_bigendian``.

Supported encodings and the arrays they map to:

==========================  =========  ==========
encoding                    dtype      shape
==========================  =========  ==========
rgb8, bgr8                  uint8      (H, W, 3)
rgba8, bgra8                uint8      (H, W, 4)
mono8, 8UC1                 uint8      (H, W)
mono16, 16UC1               uint16     (H, W)
32FC1                       float32    (H, W)
32FC3 (pointmaps)           float32    (H, W, 3)
==========================  =========  ==========

Arrays returned are always new, native-endian and C-contiguous; they never alias ``msg.data``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from sensor_msgs.msg import Image

from ov_mapping.geometry.camera import depth_to_metres
from ov_mapping.ros.conversions.buffers import fill_byte_field, new_message, row_view
from ov_mapping.ros.conversions.errors import ConversionError
from ov_mapping.ros.conversions.header import Stamp, make_header


class PixelFormat(NamedTuple):
    dtype: np.dtype  # little-endian element type
    channels: int


ENCODINGS: dict[str, PixelFormat] = {
    "rgb8": PixelFormat(np.dtype("<u1"), 3),
    "bgr8": PixelFormat(np.dtype("<u1"), 3),
    "rgba8": PixelFormat(np.dtype("<u1"), 4),
    "bgra8": PixelFormat(np.dtype("<u1"), 4),
    "mono8": PixelFormat(np.dtype("<u1"), 1),
    "8UC1": PixelFormat(np.dtype("<u1"), 1),
    "mono16": PixelFormat(np.dtype("<u2"), 1),
    "16UC1": PixelFormat(np.dtype("<u2"), 1),
    "32FC1": PixelFormat(np.dtype("<f4"), 1),
    "32FC3": PixelFormat(np.dtype("<f4"), 3),
}
COLOUR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")
_MM_PER_M = 1000.0


def pixel_format(encoding: str) -> PixelFormat:
    """The element dtype and channel count of a supported encoding; ConversionError otherwise."""
    try:
        return ENCODINGS[encoding]
    except (KeyError, TypeError):
        raise ConversionError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(ENCODINGS)}"
        ) from None


def check_pixels(array: np.ndarray, encoding: str) -> np.ndarray:
    """Check that ``array`` can be stored as ``encoding``; returns it little-endian and C-contiguous.

    Single-channel encodings take (H, W) or (H, W, 1); others (H, W, C). The dtype must match exactly
    (a float depth image is never silently truncated to 16UC1).
    """
    fmt = pixel_format(encoding)
    if not isinstance(array, np.ndarray):
        raise ConversionError(f"{encoding} image must be a numpy array, got {type(array).__name__}")
    if array.dtype.kind != fmt.dtype.kind or array.dtype.itemsize != fmt.dtype.itemsize:
        raise ConversionError(f"{encoding} image must have dtype {fmt.dtype.name}, got {array.dtype}")
    if fmt.channels == 1 and array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    want = "(H, W)" if fmt.channels == 1 else f"(H, W, {fmt.channels})"
    if array.ndim != (2 if fmt.channels == 1 else 3) or (fmt.channels > 1 and array.shape[2] != fmt.channels):
        raise ConversionError(f"{encoding} image must have shape {want}, got {array.shape}")
    return np.ascontiguousarray(array, dtype=fmt.dtype)


def array_to_image(array: np.ndarray, encoding: str, stamp: Stamp = 0.0, frame_id: str = "") -> Image:
    """An Image message (little-endian, unpadded rows) holding ``array`` as ``encoding``.

    Args:
        array: pixels matching ``encoding`` (see the module table).
        stamp: float seconds or a builtin_interfaces/Time.
    """
    pixels = check_pixels(array, encoding)
    height, width = pixels.shape[:2]
    msg = new_message(
        Image,
        header=make_header(stamp, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * pixel_format(encoding).channels * pixels.itemsize,
    )
    msg.data = fill_byte_field(pixels)  # no copy: see buffers.py
    return msg


def image_to_array(msg: Image) -> np.ndarray:
    """The pixels of an Image as a new native-endian array, shaped as in the module table."""
    fmt = pixel_format(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * fmt.channels * fmt.dtype.itemsize
    # Copying the used bytes of each row drops the padding and detaches the result from msg.data.
    formula = f"width * bytes per pixel = {width} * {fmt.channels * fmt.dtype.itemsize}"
    rows = row_view(f"{msg.encoding} image", msg.data, step, height, row_bytes, formula).copy()
    dtype = fmt.dtype.newbyteorder(">" if msg.is_bigendian else "<")
    pixels = rows.view(dtype).astype(fmt.dtype.newbyteorder("="), copy=False)
    shape = (height, width) if fmt.channels == 1 else (height, width, fmt.channels)
    return pixels.reshape(shape)


def pixels_to_rgb(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB from pixels of a colour encoding (mono8 is replicated to grey RGB)."""
    if encoding not in COLOUR_ENCODINGS:
        raise ConversionError(
            f"cannot convert a {encoding!r} image to RGB; colour encodings: {', '.join(COLOUR_ENCODINGS)}"
        )
    pixels = check_pixels(pixels, encoding)
    if encoding == "mono8":
        rgb = np.repeat(pixels[:, :, None], 3, axis=2)
    elif encoding.startswith("bgr"):
        rgb = pixels[:, :, 2::-1]
    else:
        rgb = pixels[:, :, :3]
    return np.ascontiguousarray(rgb)


def pixels_to_depth_m(pixels: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W) float32 metres, 0 where invalid, from 16UC1/mono16 millimetres or 32FC1 metres.

    NaN, inf and negative depths become 0 (the project's invalid marker, see geometry.camera.depth_to_metres).
    """
    if encoding not in DEPTH_ENCODINGS:
        raise ConversionError(
            f"cannot read depth from a {encoding!r} image; depth encodings: {', '.join(DEPTH_ENCODINGS)}"
        )
    return depth_to_metres(check_pixels(pixels, encoding), depth_scale=_MM_PER_M)


def image_to_rgb(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an Image of any colour encoding (rgb8, bgr8, rgba8, bgra8, mono8)."""
    return pixels_to_rgb(image_to_array(msg), msg.encoding)


def image_to_depth_m(msg: Image) -> np.ndarray:
    """(H, W) float32 metres, 0 where invalid, from a 16UC1/mono16 (millimetres) or 32FC1 (metres) Image."""
    return pixels_to_depth_m(image_to_array(msg), msg.encoding)


def depth_m_to_image(depth: np.ndarray, encoding: str = "32FC1", stamp: Stamp = 0.0, frame_id: str = "") -> Image:
    """An Image of a (H, W) float depth map in metres; NaN/inf/negative become 0 (invalid).

    Args:
        encoding: "32FC1" (metres) or "16UC1" (millimetres, rounded; depths over 65.535 m raise).
    """
    if encoding not in ("32FC1", "16UC1"):
        raise ConversionError(f"depth images are written as 32FC1 or 16UC1, got {encoding!r}")
    if not isinstance(depth, np.ndarray) or depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
        raise ConversionError(
            f"depth must be a (H, W) float array in metres, got {getattr(depth, 'shape', None)} "
            f"{getattr(depth, 'dtype', type(depth).__name__)}"
        )
    metres = depth_to_metres(depth)
    if encoding == "32FC1":
        return array_to_image(metres, encoding, stamp, frame_id)
    millimetres = np.rint(metres.astype(np.float64) * _MM_PER_M)
    if millimetres.size and millimetres.max() > np.iinfo(np.uint16).max:
        raise ConversionError(f"depth {metres.max():.3f} m does not fit 16UC1 millimetres (max 65.535 m); use 32FC1")
    return array_to_image(millimetres.astype(np.uint16), encoding, stamp, frame_id)
