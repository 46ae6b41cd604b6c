"""``sensor_msgs/CompressedImage`` (jpeg, png) <-> numpy through PIL.

The ``format`` written follows image_transport's compressed plugin, ``"<encoding>; <jpeg|png> compressed <target>"``
(e.g. ``"rgb8; jpeg compressed bgr8"``); plain ``"jpeg"`` / ``"png"`` are read too. The compressed bytes are
ordinary jpeg/png files, so the leading encoding only says which channel order the sender had; decoding restores it
when the decoded pixels can express it (rgb8 <-> bgr8, rgba8 <-> bgra8, mono8 <-> 8UC1, mono16 <-> 16UC1) and
otherwise returns the decoded encoding (a jpeg of an rgba8 image comes back as rgb8). ``compressedDepth`` (a
different container) is not supported.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError
from sensor_msgs.msg import CompressedImage

from ov_mapping.ros.conversions.buffers import byte_view, fill_byte_field, new_message
from ov_mapping.ros.conversions.errors import ConversionError
from ov_mapping.ros.conversions.header import Stamp, make_header
from ov_mapping.ros.conversions.image import ENCODINGS, check_pixels, pixels_to_depth_m, pixels_to_rgb

# Encodings each container can hold losslessly in layout, and the target named in the format string.
_JPEG_ENCODINGS = ("rgb8", "bgr8", "mono8", "8UC1")
_PNG_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "mono16", "16UC1")
_TARGETS = {"rgb8": "bgr8", "bgr8": "bgr8", "rgba8": "bgra8", "bgra8": "bgra8", "mono8": "mono8", "8UC1": "mono8",
            "mono16": "mono16", "16UC1": "mono16"}
# PIL modes that are converted before reading, to a mode below (palette images: see _readable_mode).
_PIL_CONVERSIONS = {"1": "L", "PA": "RGBA", "LA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "RGBX": "RGB"}
_PIL_MODES = {"RGB": "rgb8", "RGBA": "rgba8", "L": "mono8", "I;16": "mono16", "I;16B": "mono16", "I;16L": "mono16"}


def array_to_compressed(
    array: np.ndarray,
    encoding: str,
    fmt: str = "jpeg",
    quality: int = 90,
    stamp: Stamp = 0.0,
    frame_id: str = "",
) -> CompressedImage:
    """A CompressedImage of ``array`` (pixels of ``encoding``) as jpeg or png.

    Args:
        fmt: "jpeg" (rgb8, bgr8, mono8, 8UC1) or "png" (those plus rgba8, bgra8, mono16, 16UC1: 16-bit depth).
        quality: jpeg quality 1..95; ignored for png (lossless).
    """
    fmt = fmt.lower()
    allowed = {"jpeg": _JPEG_ENCODINGS, "png": _PNG_ENCODINGS}.get(fmt)
    if allowed is None:
        raise ConversionError(f"compressed format must be 'jpeg' or 'png', got {fmt!r}")
    if encoding not in allowed:
        raise ConversionError(f"{fmt} cannot hold {encoding!r} images; it takes {', '.join(allowed)}")
    if not 1 <= int(quality) <= 95:
        raise ConversionError(f"jpeg quality must be in 1..95, got {quality}")
    pixels = check_pixels(array, encoding)
    if encoding.startswith("bgr"):
        pixels = _swap_red_blue(pixels)
    picture = PILImage.fromarray(pixels)  # uint16 (H, W) becomes mode I;16, written as a 16-bit grey png
    buffer = io.BytesIO()
    if fmt == "jpeg":
        picture.save(buffer, format="JPEG", quality=int(quality))
    else:
        picture.save(buffer, format="PNG")
    fmt_string = f"{encoding}; {fmt} compressed {_TARGETS[encoding]}"
    msg = new_message(CompressedImage, header=make_header(stamp, frame_id), format=fmt_string)
    msg.data = fill_byte_field(np.frombuffer(buffer.getvalue(), dtype=np.uint8))
    return msg


def _source_encoding(fmt: str) -> str | None:
    """The sender's encoding named at the start of a format string, if any."""
    if "compresseddepth" in fmt.lower():
        raise ConversionError(f"compressedDepth images are not supported (format {fmt!r}); publish png depth instead")
    head = fmt.split(";")[0].strip()
    return head if head in ENCODINGS else None


def _swap_red_blue(pixels: np.ndarray) -> np.ndarray:
    """RGB(A) <-> BGR(A) for (H, W, 3 or 4) pixels; returns a new C-contiguous array."""
    return np.concatenate([pixels[:, :, 2::-1], pixels[:, :, 3:]], axis=2)


def _readable_mode(picture: PILImage.Image) -> PILImage.Image:
    """``picture`` converted, where needed, to one of the modes in _PIL_MODES."""
    if picture.mode == "P":
        return picture.convert("RGBA" if "transparency" in picture.info else "RGB")
    if picture.mode in _PIL_CONVERSIONS:
        return picture.convert(_PIL_CONVERSIONS[picture.mode])
    return picture


def compressed_to_array(msg: CompressedImage) -> tuple[np.ndarray, str]:
    """Decode a jpeg/png CompressedImage.

    Returns:
        (pixels, encoding): a new array laid out as for ``image_to_array`` and its ROS encoding
        (the sender's, from ``msg.format``, when the decoded pixels can express it).
    """
    source = _source_encoding(msg.format)
    try:
        picture = PILImage.open(io.BytesIO(byte_view(msg.data).tobytes()))
    except (UnidentifiedImageError, OSError, PILImage.DecompressionBombError) as error:
        raise ConversionError(
            f"corrupt or truncated compressed image, or not an image (format {msg.format!r}): {error}"
        ) from error
    if picture.format not in ("JPEG", "PNG"):
        raise ConversionError(f"compressed image is {picture.format}, expected jpeg or png (format {msg.format!r})")
    try:
        picture.load()
    except (OSError, SyntaxError, ValueError) as error:  # PIL's ways of reporting corrupt or truncated data
        raise ConversionError(f"corrupt or truncated {picture.format} data (format {msg.format!r}): {error}") from error
    picture = _readable_mode(picture)
    if picture.mode not in _PIL_MODES:
        raise ConversionError(f"unsupported decoded image mode {picture.mode!r} (format {msg.format!r})")
    decoded = _PIL_MODES[picture.mode]
    pixels = np.array(picture)
    pixels = pixels.astype(pixels.dtype.newbyteorder("="), copy=False)
    if source is None or ENCODINGS[source] != ENCODINGS[decoded]:
        return pixels, decoded
    if source.startswith("bgr"):  # PIL decodes colour as RGB(A)
        pixels = _swap_red_blue(pixels)
    return pixels, source


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a colour or mono8 jpeg/png CompressedImage (like ``image_to_rgb``)."""
    return pixels_to_rgb(*compressed_to_array(msg))


def compressed_to_depth_m(msg: CompressedImage) -> np.ndarray:
    """(H, W) float32 metres, 0 where invalid, from a 16-bit png CompressedImage in millimetres."""
    return pixels_to_depth_m(*compressed_to_array(msg))
