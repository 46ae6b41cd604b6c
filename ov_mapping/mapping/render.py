"""Pictures of coloured point clouds without a display: numpy z-buffer splatting, PNG via Pillow.

``render_views`` draws a top view (orthographic, looking down) and a perspective view (from above
and aside, looking at the centre) side by side.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np


def _check_cloud(points: np.ndarray, colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    points = np.asarray(points)
    colours = np.asarray(colours)
    if points.ndim != 2 or points.shape[1] != 3 or not np.issubdtype(points.dtype, np.number):
        raise ValueError(f"points must be a numeric (N, 3) array, got {points.dtype} {points.shape}")
    if colours.shape != points.shape or colours.dtype != np.uint8:
        raise ValueError(f"colours must be uint8 with shape {points.shape}, got {colours.dtype} {colours.shape}")
    keep = np.isfinite(points).all(axis=1)
    return points[keep].astype(np.float64), colours[keep]


def _dot(points: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """(N, 3) . (3,) per column: BLAS matrix-vector products with 3 columns are slow."""
    return points[:, 0] * vector[0] + points[:, 1] * vector[1] + points[:, 2] * vector[2]


def estimate_up(points: np.ndarray) -> np.ndarray:
    """Guess the up direction (3,) of an indoor scan: the axis of least spread (rooms are wider than
    tall), signed so that the denser half (floor, tables: what a camera sees most) lies below."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) < 3:
        raise ValueError(f"points must have shape (N >= 3, 3), got {points.shape}")
    centred = points - points.mean(axis=0)
    _, _, Vt = np.linalg.svd(centred[:: max(1, len(points) // 20000)], full_matrices=False)
    axis = Vt[2]
    heights = _dot(centred, axis)
    return axis if np.count_nonzero(heights < 0) >= np.count_nonzero(heights > 0) else -axis


def _horizontal_basis(up: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors spanning the plane normal to ``up``; the first along the widest spread."""
    flat = points - np.outer(_dot(points, up), up)
    flat = flat - flat.mean(axis=0)
    _, _, Vt = np.linalg.svd(flat[:: max(1, len(flat) // 20000)], full_matrices=False)
    first = Vt[0] - (Vt[0] @ up) * up
    if np.linalg.norm(first) < 1e-6:  # no horizontal spread at all: any horizontal axis will do
        first = np.cross(up, np.eye(3)[np.argmin(np.abs(up))])
    first /= np.linalg.norm(first)
    return first, np.cross(up, first)


def _splat(pixels: np.ndarray, depth: np.ndarray, colours: np.ndarray, size: tuple[int, int], radius: int,
           background: np.ndarray) -> np.ndarray:
    """Draw each point as a (2r+1)^2 square; the nearest (smallest depth) point wins each pixel."""
    width, height = size
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = background
    base = np.rint(pixels).astype(np.int64)
    span = np.arange(-radius, radius + 1)
    du, dv = (grid.ravel() for grid in np.meshgrid(span, span))
    cols = (base[:, 0:1] + du[None]).ravel()
    rows = (base[:, 1:2] + dv[None]).ravel()
    owner = np.repeat(np.arange(len(base)), len(du))
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    flat = rows[inside] * width + cols[inside]
    owner = owner[inside]
    order = np.lexsort((depth[owner], flat))
    flat, owner = flat[order], owner[order]
    first = np.concatenate([[True], flat[1:] != flat[:-1]]) if len(flat) else np.zeros(0, dtype=bool)
    image.reshape(-1, 3)[flat[first]] = colours[owner[first]]
    return image


def _top_view(points, colours, up, size, radius, background) -> np.ndarray:
    a, b = _horizontal_basis(up, points)
    # Looking down (-up) with image x along a: image y = (-up) x a, keeping the view unmirrored.
    x, y = _dot(points, a), _dot(points, np.cross(-up, a))
    lo_x, hi_x = np.percentile(x, [0.5, 99.5])
    lo_y, hi_y = np.percentile(y, [0.5, 99.5])
    width, height = size
    scale = 0.92 * min(width / max(hi_x - lo_x, 1e-9), height / max(hi_y - lo_y, 1e-9))
    pixels = np.stack([(x - (lo_x + hi_x) / 2) * scale + width / 2, (y - (lo_y + hi_y) / 2) * scale + height / 2], 1)
    return _splat(pixels, -_dot(points, up), colours, size, radius, background)


def _perspective_view(points, colours, up, size, radius, background, fov_deg=60.0) -> np.ndarray:
    a, b = _horizontal_basis(up, points)
    centre = np.median(points, axis=0)
    extent = np.percentile(np.linalg.norm(points - centre, axis=1), 98)
    half_fov = math.radians(fov_deg) / 2
    distance = 0.8 * max(extent, 1e-6) / math.sin(half_fov)  # rooms are flat: a tight sphere wastes the frame
    # From 40 degrees above the horizon, 45 degrees round from the widest axis.
    elevation, azimuth = math.radians(40.0), math.radians(45.0)
    direction = math.cos(elevation) * (math.cos(azimuth) * a + math.sin(azimuth) * b) + math.sin(elevation) * up
    eye = centre + distance * direction
    z = -direction
    y = -up - (-up @ z) * z
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    rel = points - eye
    depth = _dot(rel, z)
    in_front = depth > 1e-6
    width, height = size
    focal = (min(width, height) / 2) / math.tan(half_fov)
    rel, depth = rel[in_front], depth[in_front]
    pixels = np.stack([focal * _dot(rel, x) / depth + width / 2, focal * _dot(rel, y) / depth + height / 2], 1)
    return _splat(pixels, depth, colours[in_front], size, radius, background)


def render_views(
    points: np.ndarray,
    colours: np.ndarray,
    view_size: tuple[int, int] = (640, 480),
    up: Optional[np.ndarray] = None,
    point_radius: int = 1,
    background: tuple[int, int, int] = (255, 255, 255),
    max_points: int = 500_000,
) -> np.ndarray:
    """Top view and perspective view of a coloured cloud, side by side.

    Args:
        points: (N, 3) world points (non-finite rows are ignored).
        colours: (N, 3) uint8 RGB.
        view_size: (width, height) of each view in pixels.
        up: (3,) up direction of the world (e.g. (0, 0, 1) for a ROS map frame); None guesses it.
        point_radius: each point covers a (2r+1)^2 pixel square.
        max_points: clouds larger than this are subsampled (deterministically) first.
    Returns:
        (height, 2 * width, 3) uint8 image.
    """
    points, colours = _check_cloud(points, colours)
    width, height = (int(v) for v in view_size)
    if width < 8 or height < 8:
        raise ValueError(f"view_size must be at least 8x8 pixels, got {view_size}")
    if int(point_radius) != point_radius or not 0 <= point_radius <= 8:
        raise ValueError(f"point_radius must be an integer in [0, 8], got {point_radius}")
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    fill = np.asarray(background, dtype=np.uint8)
    if fill.shape != (3,):
        raise ValueError(f"background must be an (r, g, b) triple, got {background}")
    if len(points) < 3:
        image = np.empty((height, 2 * width, 3), dtype=np.uint8)
        image[:] = fill
        return image
    if len(points) > max_points:
        keep = np.random.default_rng(0).choice(len(points), size=max_points, replace=False)
        points, colours = points[keep], colours[keep]
    if up is None:
        up = estimate_up(points)
    up = np.asarray(up, dtype=np.float64)
    if up.shape != (3,) or not np.isfinite(up).all() or np.linalg.norm(up) < 1e-9:
        raise ValueError(f"up must be a finite non-zero (3,) vector, got {up}")
    up = up / np.linalg.norm(up)
    size = (width, height)
    top = _top_view(points, colours, up, size, int(point_radius), fill)
    side = _perspective_view(points, colours, up, size, int(point_radius), fill)
    return np.concatenate([top, side], axis=1)


def save_views_png(
    path: str | Path, points: np.ndarray, colours: np.ndarray, title: Optional[str] = None, **options
) -> Path:
    """Render ``render_views(points, colours, **options)`` and write it as a PNG file.

    ``title``, when given, is written on a strip above the views.
    """
    from PIL import Image, ImageDraw  # Pillow is needed only to write the file

    image = render_views(points, colours, **options)
    if title:
        strip = np.full((24,) + image.shape[1:], 255, dtype=np.uint8)
        picture = Image.fromarray(np.concatenate([strip, image], axis=0))
        ImageDraw.Draw(picture).text((6, 5), str(title), fill=(0, 0, 0))
    else:
        picture = Image.fromarray(image)
    path = Path(path)
    picture.save(path, format="PNG")
    return path
