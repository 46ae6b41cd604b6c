"""Efficient graph-based segmentation (Felzenszwalb & Huttenlocher 2004) in numpy, optionally 3D-aware.

The image is an 8-connected pixel graph. Edge weights are colour distances of the Gaussian-smoothed image; when a
pointmap is given, a geometric term is added so that a depth edge separates regions even between
same-coloured surfaces. Edges are processed by increasing weight and two components merge when the edge is no
heavier than both components' internal variation plus ``k / size``. Components smaller than ``min_size``, and thin
bands along edges, are then merged into a neighbour. Union-find runs in Python, so the image is segmented at a working resolution of at most
``max_side`` pixels per side and the labels are upsampled (nearest) to the input size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class GraphSegmentationParams:
    """Parameters of :func:`segment_graph`.

    k: scale of the merge threshold, in units of RGB distance (0..441); larger gives larger regions.
    sigma: Gaussian smoothing of the image before weighting edges, in working-resolution pixels.
    min_size: smallest region, in input-image pixels.
    min_width: regions whose mean width (2 * area / boundary length, working pixels) is below this are merged
        into a neighbour: they are the bands a blurred step edge leaves around objects, not surfaces.
    max_side: working resolution (longest side, pixels).
    geometry_weight: RGB-distance units added per "typical neighbour 3D step" of a pointmap edge beyond the slack.
    geometry_slack: 3D steps up to this many typical steps add nothing (sensor noise, slanted surfaces).
    geometry_cap: a 3D step counts at most this many typical steps; weight x cap (400) exceeds k, so even single
        pixels never merge across a large depth jump (Felzenszwalb lets singletons merge below k).
    """

    k: float = 300.0
    sigma: float = 0.8
    min_size: int = 200
    min_width: float = 2.5
    max_side: int = 160
    geometry_weight: float = 20.0
    geometry_slack: float = 2.0
    geometry_cap: float = 20.0

    def __post_init__(self) -> None:
        if self.k <= 0 or self.sigma < 0 or self.min_size < 1 or self.max_side < 8 or self.min_width < 0:
            raise ValueError(f"invalid graph segmentation parameters: {self}")
        if self.geometry_weight < 0 or self.geometry_slack < 0 or self.geometry_cap <= 0:
            raise ValueError("geometry_weight and geometry_slack must be >= 0 and geometry_cap > 0")


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of (H, W, C) float32 with edge replication; sigma 0 returns a copy."""
    if sigma <= 0:
        return image.astype(np.float32, copy=True)
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    out = image.astype(np.float32)
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(kernel))
    return out.astype(np.float32)


def resize_nearest(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of the first two axes (pixel-centre sampling)."""
    H, W = array.shape[:2]
    rows = np.minimum(((np.arange(height) + 0.5) * H / height).astype(np.int64), H - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * W / width).astype(np.int64), W - 1)
    return array[rows][:, cols]


def _grid_edges(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Endpoints (flat indices) of the 8-connected grid's edges, each once."""
    idx = np.arange(h * w).reshape(h, w)
    pairs = [
        (idx[:, :-1], idx[:, 1:]),  # right
        (idx[:-1, :], idx[1:, :]),  # down
        (idx[:-1, :-1], idx[1:, 1:]),  # down-right
        (idx[:-1, 1:], idx[1:, :-1]),  # down-left
    ]
    a = np.concatenate([p[0].ravel() for p in pairs])
    b = np.concatenate([p[1].ravel() for p in pairs])
    return a, b


def typical_step(pointmap: np.ndarray) -> Optional[float]:
    """Median 3D distance between 4-neighbours of a (h, w, 3) pointmap; None without finite neighbours."""
    steps = np.concatenate([
        np.linalg.norm(pointmap[:, 1:] - pointmap[:, :-1], axis=2).ravel(),
        np.linalg.norm(pointmap[1:] - pointmap[:-1], axis=2).ravel(),
    ])
    steps = steps[np.isfinite(steps)]
    return max(float(np.median(steps)), 1e-9) if steps.size else None


def edge_weights(colour: np.ndarray, points: Optional[np.ndarray], typical: Optional[float], a: np.ndarray,
                 b: np.ndarray, params: GraphSegmentationParams) -> np.ndarray:
    """Weight of each edge (a, b): colour distance plus the capped excess 3D distance.

    Args:
        colour: (h, w, 3) float smoothed image; points: (h, w, 3) or None; typical: the pointmap's neighbour
            step at working resolution, which sets the 3D scale (metric and up-to-scale pointmaps behave alike).
    """
    flat = colour.reshape(-1, 3)
    weights = np.linalg.norm(flat[a] - flat[b], axis=1)
    if points is not None and typical is not None and params.geometry_weight > 0:
        flat_points = points.reshape(-1, 3)
        step = np.linalg.norm(flat_points[a] - flat_points[b], axis=1)
        # Steps up to ``geometry_slack`` typical steps are surface (noise, slanted planes); only the excess is
        # a 3D edge. Unknown points add nothing.
        excess = np.clip(np.nan_to_num(step / typical - params.geometry_slack, nan=0.0), 0.0, params.geometry_cap)
        weights = weights + params.geometry_weight * excess
    return weights.astype(np.float32)


def _felzenszwalb(n: int, a: np.ndarray, b: np.ndarray, weights: np.ndarray, k: float, min_size: int,
                  min_width: float, n_axis_edges: int) -> np.ndarray:
    """Component root of each of ``n`` nodes; the first ``n_axis_edges`` edges are the 4-connected ones."""
    order = np.argsort(weights, kind="stable")
    a_l, b_l, w_l = a[order].tolist(), b[order].tolist(), weights[order].tolist()
    parent = list(range(n))
    size = [1] * n
    threshold = [k] * n  # internal variation (0 for a single pixel) + k / size

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for u, v, wt in zip(a_l, b_l, w_l):
        ru, rv = find(u), find(v)
        if ru != rv and wt <= threshold[ru] and wt <= threshold[rv]:
            if size[ru] < size[rv]:
                ru, rv = rv, ru
            parent[rv] = ru
            size[ru] += size[rv]
            threshold[ru] = wt + k / size[ru]
    # Blurred step edges leave bands of in-between colour one or two pixels wide around objects; a region is
    # such a band when its mean width, 2 * area / boundary length, is below ``min_width``.
    roots = np.array([find(i) for i in range(n)])
    ra, rb = roots[a[:n_axis_edges]], roots[b[:n_axis_edges]]
    cut = ra != rb
    boundary = np.bincount(ra[cut], minlength=n) + np.bincount(rb[cut], minlength=n)
    thin = (2.0 * np.array(size) < min_width * boundary).tolist()
    # Small and thin components join the neighbour across their lightest edge (edges are still sorted).
    for u, v in zip(a_l, b_l):
        ru, rv = find(u), find(v)
        if ru != rv and (size[ru] < min_size or size[rv] < min_size or thin[ru] or thin[rv]):
            if size[ru] < size[rv]:
                ru, rv = rv, ru
            parent[rv] = ru
            size[ru] += size[rv]
            thin[ru] = thin[ru] and thin[rv]
    return np.array([find(i) for i in range(n)])


def segment_graph(rgb: np.ndarray, pointmap: Optional[np.ndarray] = None,
                  params: GraphSegmentationParams = GraphSegmentationParams()) -> np.ndarray:
    """Label every pixel of ``rgb`` with a region index.

    Args:
        rgb: (H, W, 3) uint8.
        pointmap: optional (h, w, 3) float points (any resolution; NaN where unknown) adding 3D edges.
    Returns:
        (H, W) int32 labels 0..n-1, numbered in raster order of each region's first working-resolution pixel.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    if pointmap is not None and (pointmap.ndim != 3 or pointmap.shape[2] != 3):
        raise ValueError(f"pointmap must be (h, w, 3), got {pointmap.shape}")
    H, W = rgb.shape[:2]
    if H == 0 or W == 0:
        return np.zeros((H, W), np.int32)
    scale = min(1.0, params.max_side / max(H, W))
    h, w = max(1, round(H * scale)), max(1, round(W * scale))
    small = resize_nearest(rgb, h, w)
    points, typical = None, None
    if pointmap is not None and pointmap.shape[0] > 0 and pointmap.shape[1] > 0:
        points = resize_nearest(pointmap.astype(np.float32), h, w)
        native = typical_step(pointmap.astype(np.float32))
        # A working pixel spans this many pointmap pixels (at least one: upsampled neighbours repeat points).
        span = max(1.0, pointmap.shape[0] / h, pointmap.shape[1] / w)
        typical = None if native is None else native * span
    a, b = _grid_edges(h, w)
    weights = edge_weights(gaussian_blur(small, params.sigma), points, typical, a, b, params)
    min_size = max(1, round(params.min_size * (h * w) / (H * W)))
    n_axis_edges = h * (w - 1) + (h - 1) * w
    roots = _felzenszwalb(h * w, a, b, weights, params.k, min_size, params.min_width, n_axis_edges)
    _, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int32)
    rank[np.argsort(first)] = np.arange(len(first), dtype=np.int32)
    labels = rank[inverse].reshape(h, w)
    return resize_nearest(labels, H, W)
