"""Image preprocessing for CLIP3R: the centred square crop at 224 x 224 and the intrinsics that go with it.

CLIP3R (like SLAM3R and DUSt3R) sees 224 x 224 images scaled to [-1, 1]. The reference recipe resizes the
short side to 224 and centre-crops; here the centred square of side ``min(W, H)`` is cut first, at an integer
offset, and then resized to 224. Both give the same picture up to a sub-pixel shift of the crop, but this order
makes the crop an exact pixel box of the original image, so intrinsics map between the two without rounding
(pixel-centre convention: pixel (v, u) has its centre at (u, v)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ov_mapping.core.types import CameraIntrinsics

MODEL_SIZE = 224  # CLIP3R's only input size
MIN_SIDE = 16  # one patch: anything smaller carries no usable content


@dataclass(frozen=True)
class CropBox:
    """The centred square ``[x0, x0 + side) x [y0, y0 + side)`` of a ``width`` x ``height`` image."""

    x0: int
    y0: int
    side: int
    width: int
    height: int


@dataclass(frozen=True)
class PreparedImage:
    """One camera image made ready for CLIP3R.

    ``model_input`` (3, 224, 224) float32 in [-1, 1]; ``crop_rgb`` (side, side, 3) uint8, the crop at the
    original resolution (the image a Keyframe carries, so that its 224 x 224 pointmap covers it exactly);
    ``box`` where the crop lies in the original image.
    """

    model_input: np.ndarray
    crop_rgb: np.ndarray
    box: CropBox


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    """Return ``rgb`` after checking it is an (H, W, 3) uint8 image with both sides >= 16."""
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"rgb must be a numpy array (H, W, 3) uint8, got {type(rgb).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must have shape (H, W, 3), got {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8 (0..255), got dtype {rgb.dtype}; convert float images first")
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise ValueError(f"rgb must be at least {MIN_SIDE}x{MIN_SIDE} pixels, got {rgb.shape[1]}x{rgb.shape[0]}")
    return rgb


def centre_crop_box(width: int, height: int) -> CropBox:
    """The centred square of a ``width`` x ``height`` image (offsets rounded down)."""
    if int(width) != width or int(height) != height or width < MIN_SIDE or height < MIN_SIDE:
        raise ValueError(f"image size must be integers >= {MIN_SIDE}, got {width}x{height}")
    width, height = int(width), int(height)
    side = min(width, height)
    return CropBox((width - side) // 2, (height - side) // 2, side, width, height)


def prepare_image(rgb: np.ndarray, size: int = MODEL_SIZE) -> PreparedImage:
    """Centre-crop ``rgb`` (H, W, 3) uint8 to a square, resize it to ``size`` (Lanczos) and scale to [-1, 1]."""
    rgb = check_rgb(rgb)
    box = centre_crop_box(rgb.shape[1], rgb.shape[0])
    crop = np.ascontiguousarray(rgb[box.y0 : box.y0 + box.side, box.x0 : box.x0 + box.side])
    resized = crop if box.side == size else np.asarray(Image.fromarray(crop).resize((size, size), Image.LANCZOS))
    # (x / 255 - 0.5) / 0.5: normalisation with mean 0.5 and std 0.5
    model_input = (resized.astype(np.float32) / np.float32(127.5) - np.float32(1.0)).transpose(2, 0, 1)
    return PreparedImage(np.ascontiguousarray(model_input), crop, box)


def _check_intrinsics(intrinsics: CameraIntrinsics, width: int, height: int, what: str) -> None:
    if not isinstance(intrinsics, CameraIntrinsics):
        raise ValueError(f"intrinsics must be a CameraIntrinsics, got {type(intrinsics).__name__}")
    if (intrinsics.width, intrinsics.height) != (width, height):
        raise ValueError(
            f"intrinsics are for {intrinsics.width}x{intrinsics.height} but {what} is {width}x{height}"
        )


def image_to_model_intrinsics(intrinsics: CameraIntrinsics, box: CropBox, size: int = MODEL_SIZE) -> CameraIntrinsics:
    """Intrinsics of the original image -> intrinsics of its ``size`` x ``size`` model input."""
    _check_intrinsics(intrinsics, box.width, box.height, "the cropped image")
    crop = CameraIntrinsics(
        intrinsics.fx, intrinsics.fy, intrinsics.cx - box.x0, intrinsics.cy - box.y0, box.side, box.side
    )
    return crop.scaled(size, size)


def model_to_crop_intrinsics(intrinsics: CameraIntrinsics, box: CropBox) -> CameraIntrinsics:
    """Intrinsics of the model input -> intrinsics of the crop at the original resolution (``crop_rgb``)."""
    if not isinstance(intrinsics, CameraIntrinsics) or intrinsics.width != intrinsics.height:
        raise ValueError(f"intrinsics must be a CameraIntrinsics of the square model input, got {intrinsics!r}")
    return intrinsics.scaled(box.side, box.side)


def model_to_image_intrinsics(intrinsics: CameraIntrinsics, box: CropBox) -> CameraIntrinsics:
    """Intrinsics of the model input -> intrinsics of the whole original image."""
    crop = model_to_crop_intrinsics(intrinsics, box)
    return CameraIntrinsics(crop.fx, crop.fy, crop.cx + box.x0, crop.cy + box.y0, box.width, box.height)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def estimate_intrinsics(
    pointmap: np.ndarray, weights: np.ndarray | None = None, trim: float = 3.0
) -> CameraIntrinsics:
    """Pinhole intrinsics of a camera-frame pointmap, principal point at the image centre.

    u - cx = f x / z and v - cy = f y / z for one focal length f (square pixels). Every pixel away from the
    centre gives its own estimate of f; their weighted median is robust to wild points (a point near z = 0
    would dominate a plain least-squares fit), and a weighted least-squares refit on the pixels that agree
    with it (residual within ``trim`` times the median residual) gives the final f.

    Args:
        pointmap: (h, w, 3) points in the camera's own frame (z forward); NaN or z <= 0 entries are ignored.
        weights: (h, w) non-negative weights (e.g. confidences); None = equal.
    Returns:
        CameraIntrinsics of the w x h image, fx = fy = f, cx = (w - 1) / 2, cy = (h - 1) / 2.
    """
    pointmap = np.asarray(pointmap)
    if pointmap.ndim != 3 or pointmap.shape[2] != 3:
        raise ValueError(f"pointmap must have shape (h, w, 3), got {pointmap.shape}")
    h, w = pointmap.shape[:2]
    weights = np.ones((h, w)) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.shape != (h, w):
        raise ValueError(f"weights must have shape {(h, w)}, got {weights.shape}")
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    pts = pointmap.astype(np.float64)
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(pts).all(axis=2) & (pts[..., 2] > 0) & np.isfinite(weights) & (weights > 0)
    if np.count_nonzero(usable) < 2:
        raise ValueError("cannot estimate intrinsics: fewer than 2 points in front of the camera with weight > 0")
    v, u = np.nonzero(usable)
    a = pts[usable, 0] / pts[usable, 2]
    b = pts[usable, 1] / pts[usable, 2]
    du, dv = u - cx, v - cy
    wt = weights[usable]
    # pixels within 2 px of the centre say nothing about f
    informative = np.hypot(du, dv) > 2.0
    ray = a**2 + b**2
    informative &= ray > 0
    if np.count_nonzero(informative) < 2:
        raise ValueError("cannot estimate intrinsics: fewer than 2 usable points away from the image centre")
    per_pixel = (a * du + b * dv)[informative] / ray[informative]
    focal = _weighted_median(per_pixel, wt[informative])
    residual = np.hypot(focal * a - du, focal * b - dv)
    agree = informative & (residual <= trim * max(float(np.median(residual[informative])), 1e-3))
    denom = np.sum(wt[agree] * ray[agree])
    if denom > 0:
        focal = float(np.sum(wt[agree] * (a[agree] * du[agree] + b[agree] * dv[agree])) / denom)
    if not (np.isfinite(focal) and focal > 0):
        raise ValueError(f"estimated focal length {focal} is not positive: is the pointmap in the camera frame?")
    return CameraIntrinsics(float(focal), float(focal), cx, cy, w, h)
