"""Reading image files into the project's array conventions, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


def read_rgb(path: Path) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 RGB (grey, palette and alpha images are converted)."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise FileNotFoundError(f"colour image {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"cannot read colour image {path}: {error}") from error


def read_depth(path: Path, units_per_metre: float) -> np.ndarray:
    """A 16-bit depth PNG -> (H, W) float32 metres; 0 and 65535 (both used as 'no reading') become 0."""
    if not units_per_metre > 0:
        raise ValueError(f"depth units per metre must be positive, got {units_per_metre}")
    try:
        with Image.open(path) as image:
            raw = np.asarray(image)
    except FileNotFoundError:
        raise FileNotFoundError(f"depth image {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"cannot read depth image {path}: {error}") from error
    if raw.ndim != 2 or raw.dtype.kind not in "ui" or raw.dtype.itemsize < 2:
        raise ValueError(f"depth image {path} must be single-channel 16-bit, got {raw.dtype} {raw.shape}")
    depth = raw.astype(np.float32) / np.float32(units_per_metre)
    depth[(raw == 0) | (raw == 65535)] = 0.0
    return depth


def read_image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file without decoding its pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        raise FileNotFoundError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from error


def check_same_size(what: str, path: Path, array: np.ndarray, width: int, height: int) -> None:
    """Raise ValueError unless ``array`` is ``height`` x ``width`` pixels."""
    if array.shape[:2] != (height, width):
        raise ValueError(f"{what} {path} is {array.shape[1]}x{array.shape[0]} but the sequence is {width}x{height}")
