"""2D-instance-boundary-aware superpoints (OVSeg3R's IBSp) and superpoint-level refinement of instance labels.

A point cloud is over-segmented by graph segmentation (Felzenszwalb-Huttenlocher) on a voxel adjacency graph with
edge weights from normals and colours, under one hard constraint: every point carries the (view, mask id) pairs it
was seen with, and two regions never join when some view saw them under different mask ids. The check is made on
whole regions at every union, not only on the edge joined, so a superpoint can never bridge a mask boundary through
points that one view did not see.

Graph nodes are the points of one voxel that share the same set of (view, mask id) pairs; edges join nodes of the
same voxel and of the 26 neighbouring voxels (so ``voxel_size`` bounds the finest geometric detail resolved; mask
boundaries are kept at any voxel size). Edge weight:
``w = (1 - |n_a . n_b|) + colour_weight * |c_a - c_b| / (255 sqrt 3)`` (terms without data are left out).
Cost: vectorised graph building, then a Python loop over the edges; meant for clouds of up to ~10^5 voxels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ov_mapping.mapping.instances import compute_voxel_coords, pack_voxel_coords

# The 13 neighbour offsets with (dx, dy, dz) lexicographically after (0, 0, 0): each adjacent voxel pair once.
_FORWARD_OFFSETS = np.array(
    [(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1) if (dx, dy, dz) > (0, 0, 0)],
    dtype=np.int64,
)
_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class MaskObservations:
    """Which 2D mask saw which point: triples ``(point_index[k], view_id[k], mask_id[k])``.

    A point absent for a view was not seen by it. A point seen but outside every mask may be given a mask id of
    its own choosing (e.g. -1): it then differs from every mask of that view. Each (point, view) occurs once.
    """

    point_index: np.ndarray  # (K,) int64
    view_id: np.ndarray  # (K,) int64
    mask_id: np.ndarray  # (K,) int64

    @classmethod
    def from_arrays(cls, point_index, view_id, mask_id, num_points: int) -> "MaskObservations":
        """Validate and build; raises ValueError on shape, range or duplicate (point, view) problems."""
        arrays = []
        for name, values in (("point_index", point_index), ("view_id", view_id), ("mask_id", mask_id)):
            values = np.asarray(values)
            if values.ndim != 1 or not (values.size == 0 or np.issubdtype(values.dtype, np.integer)):
                raise ValueError(f"{name} must be a 1-D integer array, got shape {values.shape} dtype {values.dtype}")
            arrays.append(values.astype(np.int64))
        if not len(arrays[0]) == len(arrays[1]) == len(arrays[2]):
            raise ValueError(f"observation arrays differ in length: {[len(a) for a in arrays]}")
        points, views, _ = arrays
        if len(points) and (points.min() < 0 or points.max() >= num_points):
            raise ValueError(f"point_index must lie in [0, {num_points}), got [{points.min()}, {points.max()}]")
        pairs = np.stack([points, views], axis=1)
        if len(np.unique(pairs, axis=0)) != len(pairs):
            raise ValueError("a (point, view) pair occurs twice: resolve overlapping masks before building superpoints")
        return cls(*arrays)


def _hash_pairs(view_id: np.ndarray, mask_id: np.ndarray) -> np.ndarray:
    """A 64-bit mix (splitmix64 finaliser) of each (view, mask) pair, as uint64."""
    x = view_id.astype(np.uint64) * _HASH_MULTIPLIER + mask_id.astype(np.uint64)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _point_signatures(num_points: int, observations: MaskObservations) -> np.ndarray:
    """An order-independent hash (N,) int64 of each point's set of (view, mask) pairs; 0 for unseen points."""
    signature = np.zeros(num_points, dtype=np.uint64)
    with np.errstate(over="ignore"):
        np.add.at(signature, observations.point_index, _hash_pairs(observations.view_id, observations.mask_id))
    return signature.view(np.int64)


def _expand_ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges [starts[i], ends[i]): (owner index i, value) of every element, flattened."""
    counts = ends - starts
    owner = np.repeat(np.arange(len(starts)), counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, np.repeat(starts, counts) + within


def _build_edges(node_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Node pairs (a, b) in the same or adjacent voxels; ``node_keys`` (M,) sorted packed voxel keys."""
    sources, targets = [], []
    index = np.arange(len(node_keys))
    # Same voxel: every later node of that voxel.
    ends = np.searchsorted(node_keys, node_keys, side="right")
    owner, other = _expand_ranges(index + 1, ends)
    sources.append(owner)
    targets.append(other)
    coords_offsets = pack_voxel_coords(_FORWARD_OFFSETS) - pack_voxel_coords(np.zeros((1, 3), dtype=np.int64))
    for offset in coords_offsets:
        wanted = node_keys + offset
        starts = np.searchsorted(node_keys, wanted, side="left")
        stops = np.searchsorted(node_keys, wanted, side="right")
        owner, other = _expand_ranges(starts, stops)
        sources.append(owner)
        targets.append(other)
    return np.concatenate(sources), np.concatenate(targets)


def _node_masks(observations: MaskObservations, node_of_point: np.ndarray, num_nodes: int) -> list[dict]:
    """Per node, its {view: mask} map (identical for all the node's points by construction)."""
    masks: list[dict] = [{} for _ in range(num_nodes)]
    triples = np.unique(
        np.stack([node_of_point[observations.point_index], observations.view_id, observations.mask_id], axis=1), axis=0
    )
    for node, view, mask in triples.tolist():
        masks[node][view] = mask
    return masks


def _compatible(a: dict, b: dict) -> bool:
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    return all(large.get(view, mask) == mask for view, mask in small.items())


def _check_cloud_attribute(name: str, values: Optional[np.ndarray], n: int) -> Optional[np.ndarray]:
    if values is None:
        return None
    values = np.asarray(values)
    if values.shape != (n, 3) or not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"{name} must be a numeric (N, 3) array with N = {n}, got shape {values.shape}")
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{name} must be finite")
    return values


def compute_superpoints(
    points: np.ndarray,
    observations: MaskObservations,
    voxel_size: float,
    normals: Optional[np.ndarray] = None,
    colours: Optional[np.ndarray] = None,
    threshold: float = 0.05,
    colour_weight: float = 1.0,
    min_size: int = 1,
) -> np.ndarray:
    """Over-segment points into superpoints that never cross a 2D mask boundary.

    Args:
        points: (N, 3) finite world points.
        observations: which view's mask saw which point (see MaskObservations).
        voxel_size: adjacency scale in metres: points in the same or touching voxels are neighbours.
        normals: optional (N, 3) unit normals (sign-agnostic), e.g. from ``estimate_normals``.
        colours: optional (N, 3) RGB in [0, 255].
        threshold: Felzenszwalb's k, in weight units per point: larger gives larger superpoints.
        min_size: afterwards, superpoints with fewer points join their lowest-weight compatible neighbour.
    Returns:
        (N,) int64 superpoint ids 0..S-1, numbered by first point.
    """
    points = _check_cloud_attribute("points", points, len(np.asarray(points)))
    n = len(points)
    normals = _check_cloud_attribute("normals", normals, n)
    colours = _check_cloud_attribute("colours", colours, n)
    if not isinstance(observations, MaskObservations):
        raise ValueError("observations must be a MaskObservations (use MaskObservations.from_arrays)")
    if len(observations.point_index) and observations.point_index.max() >= n:
        raise ValueError(f"observations refer to point {observations.point_index.max()} of {n}")
    if not (np.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be finite and >= 0, got {threshold}")
    if not (np.isfinite(colour_weight) and colour_weight >= 0):
        raise ValueError(f"colour_weight must be finite and >= 0, got {colour_weight}")
    if isinstance(min_size, bool) or int(min_size) != min_size or min_size < 1:
        raise ValueError(f"min_size must be a positive integer, got {min_size!r}")
    if n == 0:
        return np.zeros(0, dtype=np.int64)

    keys = pack_voxel_coords(compute_voxel_coords(points, voxel_size))
    signature = _point_signatures(n, observations)
    nodes, node_of_point = np.unique(np.stack([keys, signature], axis=1), axis=0, return_inverse=True)
    node_of_point = node_of_point.reshape(-1)
    num_nodes = len(nodes)
    node_size = np.bincount(node_of_point, minlength=num_nodes).astype(np.float64)
    a, b = _build_edges(nodes[:, 0])
    weights = _edge_weights(a, b, node_of_point, num_nodes, normals, colours, colour_weight)

    order = np.argsort(weights, kind="stable")
    a, b, weights = a[order].tolist(), b[order].tolist(), weights[order].tolist()
    masks = _node_masks(observations, node_of_point, num_nodes)
    parent = list(range(num_nodes))
    size = node_size.tolist()
    internal = [0.0] * num_nodes

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(ra: int, rb: int, w: float) -> None:
        if size[ra] < size[rb]:
            ra, rb = rb, ra
        parent[rb] = ra
        size[ra] += size[rb]
        internal[ra] = max(internal[ra], internal[rb], w)
        if len(masks[ra]) < len(masks[rb]):
            masks[ra], masks[rb] = masks[rb], masks[ra]
        masks[ra].update(masks[rb])
        masks[rb] = {}

    for u, v, w in zip(a, b, weights):
        ru, rv = find(u), find(v)
        if ru == rv:
            continue
        if w <= min(internal[ru] + threshold / size[ru], internal[rv] + threshold / size[rv]) and _compatible(
            masks[ru], masks[rv]
        ):
            union(ru, rv, w)
    if min_size > 1:
        for u, v, w in zip(a, b, weights):
            ru, rv = find(u), find(v)
            if ru != rv and min(size[ru], size[rv]) < min_size and _compatible(masks[ru], masks[rv]):
                union(ru, rv, w)

    roots = np.array([find(x) for x in range(num_nodes)], dtype=np.int64)[node_of_point]
    _, first, inverse = np.unique(roots, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)]


def _edge_weights(
    a: np.ndarray,
    b: np.ndarray,
    node_of_point: np.ndarray,
    num_nodes: int,
    normals: Optional[np.ndarray],
    colours: Optional[np.ndarray],
    colour_weight: float,
) -> np.ndarray:
    weights = np.zeros(len(a), dtype=np.float64)
    if normals is not None:
        # Normals are sign-ambiguous: align each to its node's first normal before averaging.
        first = np.full(num_nodes, -1, dtype=np.int64)
        first[node_of_point[::-1]] = np.arange(len(node_of_point))[::-1]
        reference = normals[first[node_of_point]]
        signs = np.where(np.sum(normals * reference, axis=1) < 0, -1.0, 1.0)
        node_normals = _node_means(normals * signs[:, None], node_of_point, num_nodes)
        node_normals /= np.maximum(np.linalg.norm(node_normals, axis=1, keepdims=True), 1e-12)
        weights += 1.0 - np.abs(np.sum(node_normals[a] * node_normals[b], axis=1))
    if colours is not None and colour_weight > 0:
        node_colours = _node_means(colours, node_of_point, num_nodes)
        weights += colour_weight * np.linalg.norm(node_colours[a] - node_colours[b], axis=1) / (255.0 * np.sqrt(3.0))
    return weights


def _node_means(values: np.ndarray, node_of_point: np.ndarray, num_nodes: int) -> np.ndarray:
    counts = np.bincount(node_of_point, minlength=num_nodes)
    sums = np.stack([np.bincount(node_of_point, weights=values[:, k], minlength=num_nodes) for k in range(3)], axis=1)
    return sums / counts[:, None]


def estimate_normals(points: np.ndarray, radius: float, max_neighbours: int = 30) -> np.ndarray:
    """Unit normals (N, 3) float64 of points (N, 3) from local PCA (open3d), sign arbitrary."""
    points = _check_cloud_attribute("points", points, len(np.asarray(points)))
    if not (np.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a positive number of metres, got {radius}")
    import open3d as o3d  # heavy import, only needed here

    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=radius, max_nn=int(max_neighbours)))
    return np.asarray(cloud.normals, dtype=np.float64)


def refine_with_superpoints(superpoint_ids: np.ndarray, instance_ids: np.ndarray, unassigned: int = -1) -> np.ndarray:
    """Give each superpoint wholly to the instance holding most of its points.

    Args:
        superpoint_ids: (N,) int superpoint of each point (from ``compute_superpoints``).
        instance_ids: (N,) int instance of each point, ``unassigned`` where none.
    Returns:
        (N,) int64 refined instance ids; a superpoint with no assigned point stays ``unassigned``; ties go to the
        smaller instance id.
    """
    superpoint_ids = np.asarray(superpoint_ids)
    instance_ids = np.asarray(instance_ids)
    for name, values in (("superpoint_ids", superpoint_ids), ("instance_ids", instance_ids)):
        if values.ndim != 1 or not (values.size == 0 or np.issubdtype(values.dtype, np.integer)):
            raise ValueError(f"{name} must be a 1-D integer array, got shape {values.shape} dtype {values.dtype}")
    if superpoint_ids.shape != instance_ids.shape:
        raise ValueError(f"superpoint_ids {superpoint_ids.shape} and instance_ids {instance_ids.shape} differ")
    out = np.full(len(instance_ids), unassigned, dtype=np.int64)
    assigned = instance_ids != unassigned
    if not assigned.any():
        return out
    stacked = np.stack([superpoint_ids[assigned], instance_ids[assigned]], axis=1).astype(np.int64)
    pairs, counts = np.unique(stacked, axis=0, return_counts=True)
    # Sort by superpoint, then count descending, then instance id ascending; the first row of each superpoint wins.
    order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))
    pairs = pairs[order]
    winners = pairs[np.r_[True, pairs[1:, 0] != pairs[:-1, 0]]]
    superpoints, owner = winners[:, 0], winners[:, 1]
    index = np.searchsorted(superpoints, superpoint_ids)
    index = np.minimum(index, len(superpoints) - 1)
    has_owner = superpoints[index] == superpoint_ids
    out[has_owner] = owner[index[has_owner]]
    return out
