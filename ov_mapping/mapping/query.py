"""Text queries over the instance map, and a navigation goal in front of a found instance.

Relevancy (LERF's canonical-negative normalisation, one value per instance, in [0, 1]):
    ``s_q = e . t_q``, ``s_i = e . t_neg_i`` (cosines of unit vectors), ``tau`` the temperature (LERF uses 10);
    ``relevancy = min_i softmax([tau s_q, tau s_i])[0] = min_i 1 / (1 + exp(tau (s_i - s_q)))
               = sigmoid(tau (s_q - max_i s_i))``.
0.5 means "as close to the query as to the closest generic negative"; the default ``min_score`` keeps only
instances above that. For vocabulary labelling with per-class normalisation see ``mapping.vocabulary``.

Cost with a ``QueryIndex``: one (N, D) matrix-vector product over the map's contiguous embedding matrix, the
negatives' part refreshed only for instances changed since the last query, and an O(N) partial sort.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ov_mapping.geometry.transforms import matrix_to_quaternion
from ov_mapping.mapping.instances import Instance, InstanceMap
from ov_mapping.mapping.vocabulary import Vocabulary, normalise_rows


@dataclass(frozen=True)
class QueryResult:
    """The best instances for one query, best first."""

    instance_ids: np.ndarray  # (k,) int64
    scores: np.ndarray  # (k,) float32 relevancy in [0, 1]
    similarities: np.ndarray  # (k,) float32 raw cosine to the query

    def __len__(self) -> int:
        return len(self.instance_ids)


def relevancy_from_similarities(similarity: np.ndarray, max_negative: np.ndarray, temperature: float) -> np.ndarray:
    """``sigmoid(temperature * (similarity - max_negative))`` as float32 (N,); see the module docstring."""
    margin = similarity.astype(np.float64) - max_negative  # float64: tiny relevancies stay exact
    return (0.5 * (1.0 + np.tanh(0.5 * temperature * margin))).astype(np.float32)  # sigmoid without exp overflow


def compute_max_similarity(embeddings: np.ndarray, probes: np.ndarray) -> np.ndarray:
    """max_i embeddings @ probes[i]: (N,) float64 for (N, D) and (M >= 1, D).

    One matrix-vector product per probe: with few probes this streams the matrix at memory speed, where a
    (N, D) x (D, M) product spends its time packing the big matrix.
    """
    best = np.full(len(embeddings), -np.inf)
    for probe in probes:
        np.maximum(best, embeddings @ probe, out=best)
    return best


def compute_relevancy(
    embeddings: np.ndarray, query: np.ndarray, negatives: np.ndarray, temperature: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """Relevancy (N,) and raw cosine (N,) of unit embeddings (N, D) to a unit query (D,) against negatives (M, D).

    Inputs are trusted to be unit-norm (the callers normalise); shapes are checked.
    """
    if embeddings.ndim != 2 or query.shape != (embeddings.shape[1],) or negatives.ndim != 2:
        raise ValueError(
            f"expected embeddings (N, D), query (D,), negatives (M, D); got {embeddings.shape}, {query.shape}, "
            f"{negatives.shape}"
        )
    if negatives.shape[0] == 0 or negatives.shape[1] != query.shape[0]:
        raise ValueError(f"negatives must have shape (M >= 1, {query.shape[0]}), got {negatives.shape}")
    similarity = embeddings @ query.astype(embeddings.dtype)
    max_negative = compute_max_similarity(embeddings, negatives.astype(embeddings.dtype))
    return relevancy_from_similarities(similarity, max_negative, temperature), similarity.astype(np.float32)


def _check_query_options(top_k: int, min_score: float, temperature: float) -> None:
    if isinstance(top_k, bool) or int(top_k) != top_k or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    if not (0.0 <= float(min_score) <= 1.0):
        raise ValueError(f"min_score must be in [0, 1], got {min_score}")
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature}")


def _select_top(ids: np.ndarray, relevancy: np.ndarray, similarity: np.ndarray, top_k: int, min_score: float):
    rows = np.flatnonzero(relevancy >= min_score)
    if len(rows) > top_k:
        rows = rows[np.argpartition(-relevancy[rows], top_k - 1)[:top_k]]
    rows = rows[np.lexsort((rows, -relevancy[rows]))]
    return QueryResult(ids[rows].copy(), relevancy[rows], similarity[rows].astype(np.float32))


class QueryIndex:
    """Answers queries on one InstanceMap, caching each instance's max similarity to the negatives.

    The negatives are fixed per vocabulary, so ``max_i s_neg_i`` depends only on the instance: it is cached and
    refreshed for just the rows the map changed since the last query (``InstanceMap.embedding_changes``), or
    wholly when other negatives are passed. A query then costs one matrix-vector product over the map.
    """

    def __init__(self, instance_map: InstanceMap) -> None:
        if not isinstance(instance_map, InstanceMap):
            raise ValueError(f"instance_map must be an InstanceMap, got {type(instance_map).__name__}")
        self.instance_map = instance_map
        self._negatives: Optional[np.ndarray] = None
        self._max_negative = np.zeros(0, dtype=np.float64)
        self._synced_stamp = -1

    def _refresh(self, embeddings: np.ndarray, negatives: np.ndarray) -> np.ndarray:
        stamps, current = self.instance_map.embedding_changes()
        n = len(embeddings)
        same = self._negatives is not None and np.array_equal(self._negatives, negatives)
        if not same or self._synced_stamp < 0:
            self._max_negative = compute_max_similarity(embeddings, negatives)
        else:
            if len(self._max_negative) < n:
                self._max_negative = np.concatenate([self._max_negative, np.zeros(n - len(self._max_negative))])
            stale = np.flatnonzero(stamps > self._synced_stamp)
            if len(stale):
                self._max_negative[stale] = compute_max_similarity(embeddings[stale], negatives)
        self._negatives = negatives
        self._synced_stamp = current
        return self._max_negative[:n]

    def query(
        self,
        query_embedding: np.ndarray,
        negative_embeddings: np.ndarray,
        top_k: int = 5,
        min_score: float = 0.5,
        temperature: float = 10.0,
        min_observations: int = 1,
    ) -> QueryResult:
        """The ``top_k`` instances with relevancy >= ``min_score``, best first (ties: lower matrix row first).

        Args:
            query_embedding: (D,) query text embedding (normalised here).
            negative_embeddings: (M, D) canonical negatives, M >= 1 (e.g. ``Vocabulary.negative_embeddings``).
            min_observations: instances merged from fewer views are not answers. A fragment seen once carries one
                view's CLIP noise; agreement across views is what a map knows better than an image.
        Returns:
            QueryResult, empty when the map is empty or nothing reaches ``min_score``.
        Raises:
            ValueError on bad options, a non-finite / zero query, or a dimension that differs from the map's;
            the cache is then unchanged.
        """
        _check_query_options(top_k, min_score, temperature)
        query = normalise_rows("query_embedding", np.asarray(query_embedding).reshape(1, -1), 1)[0]
        negatives = np.asarray(negative_embeddings)
        if negatives.ndim != 2 or negatives.shape[0] == 0:
            raise ValueError(f"negative_embeddings must have shape (M >= 1, D), got {negatives.shape}")
        negatives = normalise_rows("negative_embeddings", negatives, negatives.shape[0], len(query))
        dim = self.instance_map.embedding_dim
        if dim is not None and dim != len(query):
            raise ValueError(f"query embedding has dimension {len(query)}, the map's embeddings have {dim}")
        ids, embeddings = self.instance_map.embedding_matrix()
        if len(ids) == 0:
            empty = np.zeros(0, dtype=np.float32)
            return QueryResult(np.zeros(0, dtype=np.int64), empty, empty)
        max_negative = self._refresh(embeddings, negatives)
        similarity = embeddings @ query
        relevancy = relevancy_from_similarities(similarity, max_negative, temperature)
        if min_observations > 1:
            relevancy = np.where(self.instance_map.observation_counts() >= min_observations, relevancy, -1.0)
        return _select_top(ids, relevancy, similarity, int(top_k), float(min_score))


def query_instances(
    instance_map: InstanceMap,
    query_embedding: np.ndarray,
    negative_embeddings: np.ndarray,
    top_k: int = 5,
    min_score: float = 0.5,
    temperature: float = 10.0,
) -> QueryResult:
    """One uncached query (see ``QueryIndex.query``); keep a QueryIndex to answer repeated queries faster."""
    return QueryIndex(instance_map).query(query_embedding, negative_embeddings, top_k, min_score, temperature)


def query_text(
    index: QueryIndex | InstanceMap,
    vocabulary: Vocabulary,
    text: str,
    top_k: int = 5,
    min_score: float = 0.5,
    temperature: float = 10.0,
) -> QueryResult:
    """A query for a text, embedded by the vocabulary's encoder and contrasted with its negatives.

    Raises ValueError for an empty text or one longer than ``vocabulary.max_text_chars`` (nothing is embedded).
    """
    _check_query_options(top_k, min_score, temperature)
    if isinstance(index, InstanceMap):
        index = QueryIndex(index)
    query = vocabulary.embed_query(text)
    return index.query(query, vocabulary.negative_embeddings, top_k, min_score, temperature)


# --------------------------------------------------------------------------------------------------- goal pose


@dataclass(frozen=True)
class GoalPose:
    """A robot goal: base frame x forward (towards the object), z along ``up``; quaternion (x, y, z, w)."""

    position: np.ndarray  # (3,) float64, on the floor plane
    quaternion: np.ndarray  # (4,) float64 (x, y, z, w)
    matrix: np.ndarray  # (4, 4) float64 T_world_goal
    free: bool  # False when every candidate collided with ``obstacles`` (the preferred one is returned anyway)


def _check_vector(name: str, value, shape: tuple) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape or not np.isfinite(array).all():
        raise ValueError(f"{name} must be a finite array of shape {shape}, got shape {array.shape}")
    return array


def _check_points(name: str, value) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 3 and array.shape[1:] == (4, 4):
        array = array[:, :3, 3]  # camera poses: their positions
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"{name} must be (N, 3) positions or (N, 4, 4) poses, got shape {array.shape}")
    return array[np.isfinite(array).all(axis=1)]


def compute_goal_pose(
    instance: Instance,
    trajectory: Optional[np.ndarray] = None,
    room_centre: Optional[np.ndarray] = None,
    obstacles: Optional[np.ndarray] = None,
    blocked: Optional[Callable[[np.ndarray], np.ndarray]] = None,
    standoff: float = 0.5,
    robot_radius: float = 0.3,
    floor_height: float = 0.0,
    up: np.ndarray = (0.0, 0.0, 1.0),
    obstacle_height: tuple = (0.05, 2.0),
    num_directions: int = 16,
) -> GoalPose:
    """A pose in front of an instance, on the floor, facing its centroid.

    Candidates lie on a circle around the centroid's floor projection, of radius (the oriented box's horizontal
    extent from the centroid) + ``standoff``, at ``num_directions`` evenly spaced headings. A candidate is free
    when no ``obstacles`` point between ``obstacle_height`` above the floor lies within ``robot_radius`` of it
    horizontally. Among free candidates the one nearest the camera ``trajectory`` (places the camera has been, so
    likely reachable) wins; without a trajectory, the one nearest ``room_centre``; without either, the first.

    Args:
        instance: the target (its centroid and oriented box are used).
        trajectory: (T, 3) camera positions or (T, 4, 4) T_world_camera poses.
        room_centre: (3,) fallback preference point.
        obstacles: (P, 3) occupied map points (e.g. the map cloud), tested brute force (O(16 P)).
        blocked: instead of ``obstacles``, a clearance test: candidates (K, 3) on the floor -> (K,) bool, True
            where an obstacle lies within ``robot_radius``; lets a caller with a spatial index (``MapStore`` with
            its voxel keys, via ``find_blocked_candidates``) answer without handing over the whole cloud.
        up: world up direction (normalised here); the floor is the plane ``up . x = floor_height``.
    """
    if obstacles is not None and blocked is not None:
        raise ValueError("give obstacles or blocked, not both")
    if blocked is not None and not callable(blocked):
        raise ValueError(f"blocked must be callable, got {type(blocked).__name__}")
    up = _check_vector("up", up, (3,))
    if np.linalg.norm(up) < 1e-9:
        raise ValueError("up must be non-zero")
    up = up / np.linalg.norm(up)
    for name, value in (("standoff", standoff), ("robot_radius", robot_radius)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    if standoff <= 0:
        raise ValueError(f"standoff must be positive, got {standoff}")
    if not np.isfinite(floor_height):
        raise ValueError(f"floor_height must be finite, got {floor_height}")
    if isinstance(num_directions, bool) or int(num_directions) != num_directions or num_directions < 1:
        raise ValueError(f"num_directions must be a positive integer, got {num_directions!r}")
    low_h, high_h = (float(v) for v in obstacle_height)
    if not (np.isfinite(low_h) and np.isfinite(high_h) and low_h < high_h):
        raise ValueError(f"obstacle_height must be (low, high) with low < high, got {obstacle_height}")

    def to_floor(points: np.ndarray) -> np.ndarray:
        return points - ((points @ up) - floor_height)[..., None] * up

    centre = to_floor(_check_vector("instance.centroid", instance.centroid, (3,)))
    half = _check_vector("instance.obb_size", instance.obb_size, (3,)) / 2.0
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    corners = instance.obb_centre + (signs * half) @ np.asarray(instance.obb_rotation, dtype=np.float64).T
    extent = np.linalg.norm(to_floor(corners) - centre, axis=1).max()
    radius = extent + standoff

    helper = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(up, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    angles = 2.0 * np.pi * np.arange(num_directions) / num_directions
    directions = np.cos(angles)[:, None] * e1 + np.sin(angles)[:, None] * e2
    candidates = centre + radius * directions  # (K, 3)

    free = np.ones(num_directions, dtype=bool)
    if obstacles is not None:
        cloud = _check_points("obstacles", obstacles)
        height = cloud @ up - floor_height
        cloud = to_floor(cloud[(height >= low_h) & (height <= high_h)])
        cloud = cloud[np.linalg.norm(cloud - centre, axis=1) <= radius + robot_radius]
        if len(cloud):
            gaps = np.linalg.norm(candidates[:, None, :] - cloud[None, :, :], axis=2).min(axis=1)
            free = gaps > robot_radius
    elif blocked is not None:
        answer = np.asarray(blocked(candidates))
        if answer.shape != (num_directions,) or answer.dtype != bool:
            raise ValueError(f"blocked must return a ({num_directions},) bool array, got {answer.dtype} "
                             f"{answer.shape}")
        free = ~answer

    cost = np.zeros(num_directions)
    path = _check_points("trajectory", trajectory) if trajectory is not None else None
    if path is not None and len(path):
        cost = np.sqrt(_min_squared_distances(candidates, to_floor(path)))
    elif room_centre is not None:
        cost = np.linalg.norm(candidates - to_floor(_check_vector("room_centre", room_centre, (3,))), axis=1)
    usable = free if free.any() else np.ones_like(free)
    best = int(np.argmin(np.where(usable, cost, np.inf)))

    position = candidates[best]
    forward = centre - position
    forward /= np.linalg.norm(forward)
    rotation = np.stack([forward, np.cross(up, forward), up], axis=1)
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = position
    return GoalPose(position, matrix_to_quaternion(rotation), matrix, bool(free[best]))


def _min_squared_distances(queries: np.ndarray, points: np.ndarray) -> np.ndarray:
    """min_j |queries[i] - points[j]|^2 (K,) for (K, 3) and (P >= 1, 3).

    Summed per axis in the order ``np.linalg.norm`` sums, so ``sqrt`` of this equals the min of the norms bit for
    bit, at a fraction of the cost (no (K, P, 3) temporary, no reduction over a length-3 axis).
    """
    total = np.zeros((len(queries), len(points)))
    for axis in range(3):
        gap = queries[:, axis, None] - points[None, :, axis]
        total += gap * gap
    return total.min(axis=1)


def find_blocked_candidates(
    candidates: np.ndarray,
    points: np.ndarray,
    owners: np.ndarray,
    robot_radius: float,
    floor_height: float = 0.0,
    up: np.ndarray = (0.0, 0.0, 1.0),
    obstacle_height: tuple = (0.05, 2.0),
) -> np.ndarray:
    """Which floor candidates (K, 3) have an obstacle point within ``robot_radius`` horizontally: (K,) bool.

    Each point (P, 3) is tested against its own candidate ``owners`` (P,) int only, so a caller that gathers the
    points near each candidate (a spatial index) pays O(P), not O(K P). Points outside ``obstacle_height`` above
    the floor are ignored; the test is ``compute_goal_pose``'s brute-force one, expression for expression.
    """
    candidates = np.asarray(candidates, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    owners = np.asarray(owners)
    if candidates.ndim != 2 or candidates.shape[1] != 3:
        raise ValueError(f"candidates must have shape (K, 3), got {candidates.shape}")
    if points.ndim != 2 or points.shape[1] != 3 or owners.shape != (len(points),) or owners.dtype.kind not in "iu":
        raise ValueError(f"points must be (P, 3) with integer owners (P,); got {points.shape} and {owners.shape} "
                         f"{owners.dtype}")
    if len(owners) and (owners.min() < 0 or owners.max() >= len(candidates)):
        raise ValueError(f"owners must index the {len(candidates)} candidates")
    up = _check_vector("up", up, (3,))
    up = up / np.linalg.norm(up)
    low_h, high_h = (float(v) for v in obstacle_height)
    height = points @ up - floor_height
    band = (height >= low_h) & (height <= high_h)
    flat = points[band]
    flat = flat - ((flat @ up) - floor_height)[:, None] * up
    mine = owners[band]
    near = np.linalg.norm(candidates[mine] - flat, axis=1) <= robot_radius
    blocked = np.zeros(len(candidates), dtype=bool)
    blocked[mine[near]] = True
    return blocked
