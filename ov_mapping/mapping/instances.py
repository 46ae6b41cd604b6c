"""Object instances fused from per-keyframe segments: association, descriptor fusion, cross-view labels.

Association rule (one ``add_segments`` call = one view):

* a segment ``s`` may join instance ``i`` only if all of these hold
    - ``overlap(s, i) = |V(s) & V(i)| / min(|V(s)|, |V(i)|) >= overlap_threshold``, with ``V`` the sets of occupied
      voxels at ``i``'s voxel size (the base ``voxel_size`` until ``i`` is downsampled, see below);
    - ``cos(d_s, d_i) >= similarity_threshold`` for the L2-normalised descriptors;
    - ``i`` holds no segment of this keyframe yet (OVSeg3R's View-wise Instance Partition: two masks of one view
      are two objects, so segments of one view never end up in one instance);
* among the admissible (segment, instance) pairs, pairs are taken greedily by the combined score
  ``overlap * similarity``, each segment and each instance at most once; a segment left over starts a new instance.

Fusion: an instance's descriptor (and semantic embedding) is the running weighted mean of its segments' vectors,
re-normalised, with weight ``segment.score * support`` (support = the segment's occupied base voxels).

Labels (OV-NeRF's cross-view self-enhancement, in mapping form): every view that saw an instance votes for its
segment's label with weight ``label_score * score``; the instance's label is the label with the largest summed
weight, and ``label_score = sum(weights of that label) / sum(score of every labelled view)`` (views that disagree
count as 0). ``relabel_views()`` hands the consensus back to the views that disagreed.

Periodic merge (``merge_every`` calls, or ``merge_instances()``): two instances merge when their overlap ratio is
``>= merge_overlap_threshold``, their descriptor cosine ``>= merge_similarity_threshold`` and they share no view.

Bounded memory: an instance keeps at most ``max_points_per_instance`` voxel means (its voxel size doubles until it
fits), its ``max_views_per_instance`` most recent view records, and ``max_labels_per_instance`` label tallies.
At ``max_instances``, creating an instance evicts the one with the fewest observations, the least recently seen
among equals; instances touched by the current call are never evicted (their segments are dropped instead).

Bad input: structural errors (shapes, dimensions, non-finite descriptors or scores) raise ``ValueError`` before
anything changes. Non-finite points are dropped and counted; segments with fewer than ``min_segment_points`` finite
points are skipped and counted (``stats``). Not thread-safe: the caller serialises access.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import numpy as np

from ov_mapping.core.types import Segment

_KEY_BITS = 21
_KEY_OFFSET = 1 << (_KEY_BITS - 1)
_KEY_MASK = (1 << _KEY_BITS) - 1
SEMANTIC_SOURCES = ("descriptor", "clip_embedding")


# --------------------------------------------------------------------------------------------------- voxel keys


def compute_voxel_coords(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """Integer voxel coordinates (N, 3) int64 of finite points (N, 3) for cubic voxels of ``voxel_size``."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {points.shape}")
    if not (np.isfinite(voxel_size) and voxel_size > 0):
        raise ValueError(f"voxel_size must be a positive number, got {voxel_size}")
    coords = np.floor(points / voxel_size)
    if coords.size and np.abs(coords).max() >= _KEY_OFFSET:
        raise ValueError(
            f"points reach {np.abs(points).max():.3g} m, beyond the voxel key range "
            f"(+-{(_KEY_OFFSET - 1) * voxel_size:.3g} m at voxel size {voxel_size})"
        )
    return coords.astype(np.int64)


def pack_voxel_coords(coords: np.ndarray) -> np.ndarray:
    """Pack voxel coordinates (N, 3) int64 (each within +-2**20) into single int64 keys (N,).

    Neighbouring keys differ by ``dx << 42 | dy << 21 | dz``, so offsets can be added to packed keys directly.
    """
    shifted = np.asarray(coords, dtype=np.int64) + _KEY_OFFSET
    return (shifted[:, 0] << (2 * _KEY_BITS)) | (shifted[:, 1] << _KEY_BITS) | shifted[:, 2]


def unpack_voxel_keys(keys: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_voxel_coords`: keys (N,) -> coords (N, 3) int64."""
    keys = np.asarray(keys, dtype=np.int64)
    return np.stack(
        [(keys >> (2 * _KEY_BITS)) & _KEY_MASK, (keys >> _KEY_BITS) & _KEY_MASK, keys & _KEY_MASK], axis=1
    ) - _KEY_OFFSET


def compute_voxel_keys(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """Packed voxel keys (N,) int64 of points (N, 3)."""
    return pack_voxel_coords(compute_voxel_coords(points, voxel_size))


def downsample_points(
    points: np.ndarray, weights: np.ndarray, voxel_size: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted voxel means of points (N, 3) with weights (N,).

    Returns:
        keys (M,) int64 sorted unique, means (M, 3) float64, summed weights (M,) float64.
    """
    keys = compute_voxel_keys(points, voxel_size)
    unique, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.reshape(-1)
    total = np.bincount(inverse, weights=weights, minlength=len(unique))
    sums = np.stack(
        [np.bincount(inverse, weights=weights * points[:, k], minlength=len(unique)) for k in range(3)], axis=1
    )
    return unique, sums / total[:, None], total


def count_shared_keys(sorted_keys: np.ndarray, keys: np.ndarray) -> int:
    """How many of ``keys`` (unique) occur in ``sorted_keys`` (sorted, unique)."""
    if len(sorted_keys) == 0 or len(keys) == 0:
        return 0
    index = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return int(np.count_nonzero(sorted_keys[index] == keys))


def compute_oriented_box(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA-oriented bounding box of weighted points (N, 3), N >= 1.

    Returns:
        centre (3,), rotation (3, 3) whose columns are the box axes (largest variance first, right-handed),
        size (3,) extents along those axes; all float64.
    """
    mean = np.average(points, axis=0, weights=weights)
    centred = points - mean
    covariance = (centred * weights[:, None]).T @ centred / weights.sum()
    _, vectors = np.linalg.eigh(covariance)
    rotation = vectors[:, ::-1].copy()
    if np.linalg.det(rotation) < 0:
        rotation[:, 2] *= -1.0
    local = centred @ rotation
    low, high = local.min(axis=0), local.max(axis=0)
    return mean + rotation @ ((low + high) / 2.0), rotation, high - low


# --------------------------------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class ViewLabel:
    """One view's label of one instance, as recorded or as corrected by the consensus."""

    keyframe_id: int
    segment_id: int
    instance_id: int
    label: str  # the consensus label
    previous_label: str  # what the view said


@dataclass(frozen=True)
class Instance:
    """A read-only snapshot of one instance (arrays are copies)."""

    instance_id: int
    centroid: np.ndarray  # (3,) float64, point-count weighted
    aabb_min: np.ndarray  # (3,) float64
    aabb_max: np.ndarray  # (3,) float64
    obb_centre: np.ndarray  # (3,) float64
    obb_rotation: np.ndarray  # (3, 3) float64, columns = box axes
    obb_size: np.ndarray  # (3,) float64
    points: np.ndarray  # (M, 3) float32 voxel means, M <= max_points_per_instance
    voxel_size: float  # the voxel size ``points`` are kept at
    num_points: int  # raw finite points integrated over all views
    observation_count: int  # segments merged into this instance
    descriptor: np.ndarray  # (D,) float32, unit norm
    embedding: np.ndarray  # (Ds,) float32, unit norm; the vector text queries are scored against
    label: str
    label_score: float
    label_votes: dict  # label -> summed vote weight
    view_labels: dict  # keyframe_id -> (segment_id, label) of the retained views
    first_seen: int  # add_segments call counter
    last_seen: int


@dataclass(frozen=True)
class AddResult:
    """What one ``add_segments`` call did; ``instance_ids[k]`` is segment k's instance, -1 if it was skipped."""

    instance_ids: tuple
    created: int
    associated: int
    skipped: int


@dataclass
class InstanceMapStats:
    """Running counters of what the map skipped, dropped, evicted and merged."""

    segments_added: int = 0
    segments_skipped: int = 0  # empty or fewer than min_segment_points finite points
    segments_dropped_capacity: int = 0  # no instance could be evicted to make room
    points_dropped_nonfinite: int = 0
    instances_created: int = 0
    instances_evicted: int = 0
    instances_merged: int = 0


# --------------------------------------------------------------------------------------------------- internals


@dataclass
class _ViewVote:
    segment_id: int
    label: str
    label_score: float
    score: float


@dataclass
class _Record:
    """Mutable per-instance state that does not live in the map's contiguous arrays."""

    instance_id: int
    level: int  # points are kept at voxel_size * 2**level
    keys: np.ndarray  # (M,) int64 sorted unique
    points: np.ndarray  # (M, 3) float64 voxel means
    counts: np.ndarray  # (M,) float64 raw points per voxel
    num_points: int
    views: "OrderedDict[int, _ViewVote]" = field(default_factory=OrderedDict)
    label_weights: dict = field(default_factory=dict)
    labelled_score: float = 0.0  # sum of ``score`` over views that carried a label
    observation_count: int = 0
    first_seen: int = 0


@dataclass
class _Prepared:
    """A validated segment, ready to associate."""

    index: int
    segment_id: int
    points: np.ndarray  # (N, 3) float64 finite
    descriptor: np.ndarray  # (D,) float32 unit
    embedding: np.ndarray  # (Ds,) float32 unit
    score: float
    label: str
    label_score: float
    support: int  # occupied base voxels
    low: np.ndarray
    high: np.ndarray
    keys_by_level: dict = field(default_factory=dict)

    def keys_at(self, voxel_size: float, level: int) -> np.ndarray:
        if level not in self.keys_by_level:
            self.keys_by_level[level] = np.unique(compute_voxel_keys(self.points, voxel_size * 2**level))
        return self.keys_by_level[level]


def _unit_vector(name: str, value, dim: Optional[int]) -> np.ndarray:
    """Check a 1-D finite non-zero vector (of length ``dim`` when given) and return it normalised, float32."""
    if value is None:
        raise ValueError(f"{name} is missing")
    vector = np.asarray(value)
    if vector.ndim != 1 or vector.size == 0 or not np.issubdtype(vector.dtype, np.number) or np.iscomplexobj(vector):
        raise ValueError(f"{name} must be a non-empty real 1-D vector, got shape {vector.shape} dtype {vector.dtype}")
    if dim is not None and vector.shape[0] != dim:
        raise ValueError(f"{name} has dimension {vector.shape[0]}, the map uses {dim}")
    vector = vector.astype(np.float64)
    norm = np.linalg.norm(vector)
    if not np.isfinite(vector).all() or norm < 1e-12:
        raise ValueError(f"{name} must be finite and non-zero")
    return (vector / norm).astype(np.float32)


def _check_fraction(name: str, value: float) -> float:
    value = float(value)
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def _check_positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------------- the map


class InstanceMap:
    """A bounded table of 3D object instances; see the module docstring for the rules.

    Descriptors and semantic embeddings of all instances are kept as contiguous float32 matrices whose first
    ``len(self)`` rows are live (removal swaps the last row in), so queries read them without copying.
    """

    def __init__(
        self,
        voxel_size: float = 0.05,
        overlap_threshold: float = 0.25,
        similarity_threshold: float = 0.75,
        merge_overlap_threshold: float = 0.5,
        merge_similarity_threshold: float = 0.85,
        merge_every: int = 10,
        max_instances: int = 20000,
        max_points_per_instance: int = 4096,
        max_views_per_instance: int = 64,
        max_labels_per_instance: int = 16,
        min_segment_points: int = 10,
        semantic_source: str = "descriptor",
    ) -> None:
        """
        Args:
            voxel_size: base voxel edge in metres for overlap tests and point downsampling.
            overlap_threshold, similarity_threshold: association thresholds in [0, 1] (see module docstring).
            merge_overlap_threshold, merge_similarity_threshold: thresholds in [0, 1] of the periodic merge.
            merge_every: run ``merge_instances`` after every this many ``add_segments`` calls; 0 disables.
            max_instances, max_points_per_instance, max_views_per_instance, max_labels_per_instance: memory bounds.
            min_segment_points: segments with fewer finite points are skipped.
            semantic_source: which segment vector text queries are scored against: "descriptor" (the fused
                descriptor, as in Ov3R) or "clip_embedding" (then every segment must carry one).
        """
        if not (np.isfinite(voxel_size) and voxel_size > 0):
            raise ValueError(f"voxel_size must be a positive number of metres, got {voxel_size}")
        if semantic_source not in SEMANTIC_SOURCES:
            raise ValueError(f"semantic_source must be one of {SEMANTIC_SOURCES}, got {semantic_source!r}")
        if isinstance(merge_every, bool) or int(merge_every) != merge_every or merge_every < 0:
            raise ValueError(f"merge_every must be a non-negative integer, got {merge_every!r}")
        self.voxel_size = float(voxel_size)
        self.overlap_threshold = _check_fraction("overlap_threshold", overlap_threshold)
        self.similarity_threshold = _check_fraction("similarity_threshold", similarity_threshold)
        self.merge_overlap_threshold = _check_fraction("merge_overlap_threshold", merge_overlap_threshold)
        self.merge_similarity_threshold = _check_fraction("merge_similarity_threshold", merge_similarity_threshold)
        self.merge_every = int(merge_every)
        self.max_instances = _check_positive_int("max_instances", max_instances)
        self.max_points_per_instance = _check_positive_int("max_points_per_instance", max_points_per_instance)
        self.max_views_per_instance = _check_positive_int("max_views_per_instance", max_views_per_instance)
        self.max_labels_per_instance = _check_positive_int("max_labels_per_instance", max_labels_per_instance)
        self.min_segment_points = _check_positive_int("min_segment_points", min_segment_points)
        self.semantic_source = semantic_source
        self.stats = InstanceMapStats()
        self.version = 0  # bumped by every change, for callers that cache derived data
        self._calls = 0
        self._stamp = 0
        self._next_id = 0
        self._size = 0
        self._descriptor_dim: Optional[int] = None
        self._embedding_dim: Optional[int] = None
        self._records: list[_Record] = []
        self._slot_of: dict[int, int] = {}
        self._dirty: set[int] = set()  # instance ids changed since the last merge pass
        # (kept id, absorbed id) of each merge of the latest pass, so owners of per-point instance ids can follow.
        self.last_merges: tuple[tuple[int, int], ...] = ()
        self._allocate(16, 1, 1)

    # ----------------------------------------------------------------------------------------- storage

    def _allocate(self, capacity: int, descriptor_dim: int, embedding_dim: int) -> None:
        self._ids = np.zeros(capacity, dtype=np.int64)
        self._descriptors = np.zeros((capacity, descriptor_dim), dtype=np.float32)
        self._embeddings = (
            self._descriptors
            if self.semantic_source == "descriptor"
            else np.zeros((capacity, embedding_dim), dtype=np.float32)
        )
        self._weights = np.zeros(capacity, dtype=np.float64)
        self._low = np.zeros((capacity, 3), dtype=np.float64)
        self._high = np.zeros((capacity, 3), dtype=np.float64)
        self._margin = np.zeros(capacity, dtype=np.float64)
        self._observations = np.zeros(capacity, dtype=np.int64)
        self._last_seen = np.zeros(capacity, dtype=np.int64)
        self._row_stamps = np.zeros(capacity, dtype=np.int64)

    def _grow(self) -> None:
        names = ("_ids", "_descriptors", "_weights", "_low", "_high", "_margin", "_observations", "_last_seen",
                 "_row_stamps")
        old = {name: getattr(self, name) for name in names}
        old_embeddings = self._embeddings
        self._allocate(max(16, 2 * len(self._ids)), self._descriptors.shape[1], self._embeddings.shape[1])
        for name, array in old.items():
            getattr(self, name)[: len(array)] = array
        if self._embeddings is not self._descriptors:
            self._embeddings[: len(old_embeddings)] = old_embeddings

    def _vector_matrices(self) -> tuple:
        """The matrices of running-mean unit vectors (one when the embedding is the descriptor)."""
        if self._embeddings is self._descriptors:
            return (self._descriptors,)
        return (self._descriptors, self._embeddings)

    def _remove_slot(self, slot: int) -> None:
        last = self._size - 1
        removed = self._records[slot]
        if slot != last:
            for array in (self._ids, self._descriptors, self._weights, self._low, self._high, self._margin,
                          self._observations, self._last_seen):
                array[slot] = array[last]
            if self._embeddings is not self._descriptors:
                self._embeddings[slot] = self._embeddings[last]
            self._records[slot] = self._records[last]
            self._slot_of[self._records[slot].instance_id] = slot
            self._touch(slot)
        self._records.pop()
        del self._slot_of[removed.instance_id]
        self._dirty.discard(removed.instance_id)
        self._size -= 1

    def _touch(self, slot: int) -> None:
        """Stamp a row whose embedding changed or moved, so query caches refresh just that row."""
        self._stamp += 1
        self._row_stamps[slot] = self._stamp

    def _refresh_geometry(self, slot: int) -> None:
        record = self._records[slot]
        self._low[slot] = record.points.min(axis=0)
        self._high[slot] = record.points.max(axis=0)
        self._margin[slot] = self.voxel_size * 2**record.level

    # ----------------------------------------------------------------------------------------- read access

    def __len__(self) -> int:
        return self._size

    def __contains__(self, instance_id: int) -> bool:
        return instance_id in self._slot_of

    @property
    def instance_ids(self) -> np.ndarray:
        """(N,) int64 ids of the live instances, in matrix row order (a copy)."""
        return self._ids[: self._size].copy()

    def descriptor_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """Read-only views (ids (N,) int64, descriptors (N, D) float32) of the live rows, valid until a change."""
        return self._read_only(self._ids), self._read_only(self._descriptors)

    def embedding_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """Read-only views (ids (N,) int64, embeddings (N, Ds) float32, unit rows) for text queries."""
        return self._read_only(self._ids), self._read_only(self._embeddings)

    def observation_counts(self) -> np.ndarray:
        """Read-only view (N,) int64 of how many segments (views) each embedding row's instance merged."""
        return self._read_only(self._observations)

    def embedding_changes(self) -> tuple[np.ndarray, int]:
        """Read-only view (N,) int64 of the stamp of each embedding row's last change (write or move), and the
        current stamp: rows with a stamp above one seen earlier changed since then."""
        return self._read_only(self._row_stamps), self._stamp

    @property
    def embedding_dim(self) -> Optional[int]:
        """Dimension of the semantic embeddings, None until the first segment fixed it."""
        return self._embedding_dim

    def _read_only(self, array: np.ndarray) -> np.ndarray:
        view = array[: self._size]
        view.flags.writeable = False
        return view

    def get(self, instance_id: int) -> Instance:
        """A snapshot of one instance; KeyError if there is none with this id."""
        if instance_id not in self._slot_of:
            raise KeyError(f"no instance with id {instance_id}")
        return self._snapshot(self._slot_of[instance_id])

    def instances(self) -> Iterator[Instance]:
        """Snapshots of all live instances, in matrix row order."""
        for slot in range(self._size):
            yield self._snapshot(slot)

    def _snapshot(self, slot: int) -> Instance:
        record = self._records[slot]
        centre, rotation, size = compute_oriented_box(record.points, record.counts)
        label, label_score = self._consensus(record)
        return Instance(
            instance_id=record.instance_id,
            centroid=np.average(record.points, axis=0, weights=record.counts),
            aabb_min=self._low[slot].copy(),
            aabb_max=self._high[slot].copy(),
            obb_centre=centre,
            obb_rotation=rotation,
            obb_size=size,
            points=record.points.astype(np.float32),
            voxel_size=self.voxel_size * 2**record.level,
            num_points=record.num_points,
            observation_count=record.observation_count,
            descriptor=self._descriptors[slot].copy(),
            embedding=self._embeddings[slot].copy(),
            label=label,
            label_score=label_score,
            label_votes=dict(record.label_weights),
            view_labels={k: (v.segment_id, v.label) for k, v in record.views.items()},
            first_seen=record.first_seen,
            last_seen=int(self._last_seen[slot]),
        )

    @staticmethod
    def _consensus(record: _Record) -> tuple[str, float]:
        if not record.label_weights or record.labelled_score <= 0:
            return "", 0.0
        # Ties go to the alphabetically first label so the result does not depend on insertion order.
        label = min(record.label_weights, key=lambda name: (-record.label_weights[name], name))
        return label, float(min(1.0, record.label_weights[label] / record.labelled_score))

    # ----------------------------------------------------------------------------------------- adding

    def add_segments(self, keyframe_id: int, segments: Sequence[Segment]) -> AddResult:
        """Associate the segments of one keyframe with instances, or create instances for them.

        Args:
            keyframe_id: the view the segments come from (an int; View-wise Instance Partition is per id).
            segments: the keyframe's segments; ``points`` (N, 3) world, ``descriptor`` (D,), ``score``,
                ``label`` / ``label_score`` (an empty label casts no vote).
        Returns:
            AddResult with each segment's instance id (-1 when skipped or dropped for capacity).
        Raises:
            ValueError on malformed input; the map is then unchanged.
        """
        if isinstance(keyframe_id, bool) or not isinstance(keyframe_id, (int, np.integer)):
            raise ValueError(f"keyframe_id must be an int, got {keyframe_id!r}")
        keyframe_id = int(keyframe_id)
        prepared, dropped_points = self._prepare_all(segments)

        # Association is planned on the unchanged map; nothing below may raise on valid input.
        matches = self._match(keyframe_id, [p for p in prepared if p is not None])
        self._calls += 1
        self.version += 1
        if self._descriptor_dim is None and any(p is not None for p in prepared):
            first = next(p for p in prepared if p is not None)
            self._descriptor_dim, self._embedding_dim = first.descriptor.shape[0], first.embedding.shape[0]
            self._allocate(len(self._ids), self._descriptor_dim, self._embedding_dim)

        result = [-1] * len(prepared)
        touched: set[int] = set()
        for index, slot in matches.items():
            result[index] = self._records[slot].instance_id
            touched.add(result[index])
        for index, slot in matches.items():
            self._integrate(slot, prepared[index], keyframe_id)
        created = 0
        for p in prepared:
            if p is None or p.index in matches:
                continue
            instance_id = self._create(p, keyframe_id, touched)
            if instance_id >= 0:
                touched.add(instance_id)
                created += 1
            result[p.index] = instance_id

        skipped = sum(p is None for p in prepared)
        self.stats.segments_added += len(prepared) - skipped
        self.stats.segments_skipped += skipped
        self.stats.points_dropped_nonfinite += dropped_points
        self._dirty.update(touched)
        if self.merge_every and self._calls % self.merge_every == 0:
            self.merge_instances()
        return AddResult(tuple(result), created, len(matches), skipped)

    def _prepare_all(self, segments: Sequence[Segment]) -> tuple[list, int]:
        if isinstance(segments, (str, bytes)) or not hasattr(segments, "__iter__"):
            raise ValueError(f"segments must be a sequence of Segment, got {type(segments).__name__}")
        prepared, dropped = [], 0
        descriptor_dim, embedding_dim = self._descriptor_dim, self._embedding_dim
        for index, segment in enumerate(segments):
            try:
                item, n_dropped = self._prepare(index, segment, descriptor_dim, embedding_dim)
            except ValueError as error:
                raise ValueError(f"segment {index}: {error}") from None
            if item is not None and descriptor_dim is None:
                # The first valid segment fixes the dimensions for the rest of this call too.
                descriptor_dim, embedding_dim = item.descriptor.shape[0], item.embedding.shape[0]
            prepared.append(item)
            dropped += n_dropped
        return prepared, dropped

    def _prepare(
        self, index: int, segment: Segment, descriptor_dim: Optional[int], embedding_dim: Optional[int]
    ) -> tuple[Optional[_Prepared], int]:
        for name in ("segment_id", "points", "descriptor", "score", "label", "label_score"):
            if not hasattr(segment, name):
                raise ValueError(f"is not a Segment (no attribute {name!r})")
        points = np.asarray(segment.points)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"points must have shape (N, 3), got {points.shape}")
        if not np.issubdtype(points.dtype, np.number) or np.iscomplexobj(points):
            raise ValueError(f"points must be real numbers, got dtype {points.dtype}")
        descriptor = _unit_vector("descriptor", segment.descriptor, descriptor_dim)
        if self.semantic_source == "clip_embedding":
            embedding = _unit_vector("clip_embedding", segment.clip_embedding, embedding_dim)
        else:
            embedding = descriptor
        if isinstance(segment.segment_id, bool) or not isinstance(segment.segment_id, (int, np.integer)):
            raise ValueError(f"segment_id must be an int, got {segment.segment_id!r}")
        try:
            score, label_score = float(segment.score), float(segment.label_score)
        except (TypeError, ValueError):
            raise ValueError(f"score and label_score must be numbers, got {segment.score!r}, {segment.label_score!r}")
        if not (np.isfinite(score) and score >= 0):
            raise ValueError(f"score must be finite and >= 0, got {segment.score}")
        if not (np.isfinite(label_score) and label_score >= 0):
            raise ValueError(f"label_score must be finite and >= 0, got {segment.label_score}")
        if not isinstance(segment.label, str):
            raise ValueError(f"label must be a str, got {type(segment.label).__name__}")
        finite = np.isfinite(points).all(axis=1)
        points = points[finite].astype(np.float64)
        dropped = int(np.count_nonzero(~finite))
        if len(points) < self.min_segment_points:
            return None, dropped
        base_keys = np.unique(compute_voxel_keys(points, self.voxel_size))
        item = _Prepared(
            index=index,
            segment_id=int(segment.segment_id),
            points=points,
            descriptor=descriptor,
            embedding=embedding,
            score=score,
            label=segment.label.strip(),
            label_score=label_score,
            support=len(base_keys),
            low=points.min(axis=0),
            high=points.max(axis=0),
            keys_by_level={0: base_keys},
        )
        return item, dropped

    def _overlap_ratio(self, slot: int, keys: np.ndarray) -> float:
        record = self._records[slot]
        shared = count_shared_keys(record.keys, keys)
        return shared / max(1, min(len(keys), len(record.keys)))

    def _candidate_slots(self, low: np.ndarray, high: np.ndarray, descriptor: np.ndarray, threshold: float):
        """Slots whose (margin-grown) box meets [low, high] and whose descriptor cosine >= threshold."""
        n = self._size
        if n == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        margin = self._margin[:n, None]
        near = np.all(self._low[:n] - margin <= high, axis=1) & np.all(self._high[:n] + margin >= low, axis=1)
        slots = np.flatnonzero(near)
        similarity = self._descriptors[slots] @ descriptor
        keep = similarity >= threshold
        return slots[keep], similarity[keep]

    def _match(self, keyframe_id: int, prepared: list[_Prepared]) -> dict:
        """Greedy one-to-one assignment {segment index: slot} of segments to instances by overlap * similarity."""
        pairs = []
        for p in prepared:
            if self._descriptor_dim is None:
                break
            slots, similarity = self._candidate_slots(p.low, p.high, p.descriptor, self.similarity_threshold)
            for slot, sim in zip(slots.tolist(), similarity.tolist()):
                record = self._records[slot]
                if keyframe_id in record.views:
                    continue  # View-wise Instance Partition
                overlap = self._overlap_ratio(slot, p.keys_at(self.voxel_size, record.level))
                if overlap >= self.overlap_threshold:
                    pairs.append((overlap * sim, p.index, slot))
        pairs.sort(key=lambda pair: (-pair[0], pair[1], pair[2]))
        matches, used_slots = {}, set()
        for _, index, slot in pairs:
            if index in matches or slot in used_slots:
                continue
            matches[index] = slot
            used_slots.add(slot)
        return matches

    def _integrate(self, slot: int, p: _Prepared, keyframe_id: int) -> None:
        record = self._records[slot]
        weight = p.score * p.support
        total = self._weights[slot] + weight
        if total > 0:
            for matrix, vector in zip(self._vector_matrices(), (p.descriptor, p.embedding)):
                mixed = (self._weights[slot] * matrix[slot] + weight * vector) / total
                norm = np.linalg.norm(mixed)
                if norm > 1e-12:  # opposite vectors of equal weight cancel; keep the old direction then
                    matrix[slot] = mixed / norm
        self._weights[slot] = total
        self._add_points(record, p.points)
        record.num_points += len(p.points)
        record.observation_count += 1
        self._vote(record, keyframe_id, p)
        self._observations[slot] = record.observation_count
        self._last_seen[slot] = self._calls
        self._refresh_geometry(slot)
        self._touch(slot)

    def _add_points(self, record: _Record, points: np.ndarray) -> None:
        size = self.voxel_size * 2**record.level
        all_points = np.concatenate([record.points, points])
        all_weights = np.concatenate([record.counts, np.ones(len(points))])
        keys, means, counts = downsample_points(all_points, all_weights, size)
        record.keys, record.points, record.counts = keys, means, counts
        self._enforce_point_budget(record)

    def _enforce_point_budget(self, record: _Record) -> None:
        while len(record.keys) > self.max_points_per_instance:
            record.level += 1
            record.keys, record.points, record.counts = downsample_points(
                record.points, record.counts, self.voxel_size * 2**record.level
            )

    def _vote(self, record: _Record, keyframe_id: int, p: _Prepared) -> None:
        record.views[keyframe_id] = _ViewVote(p.segment_id, p.label, p.label_score, p.score)
        while len(record.views) > self.max_views_per_instance:
            record.views.popitem(last=False)  # the tallies below keep the dropped views' votes
        if p.label:
            record.label_weights[p.label] = record.label_weights.get(p.label, 0.0) + p.label_score * p.score
            record.labelled_score += p.score
            self._prune_labels(record)

    def _prune_labels(self, record: _Record) -> None:
        if len(record.label_weights) > self.max_labels_per_instance:
            ranked = sorted(record.label_weights.items(), key=lambda kv: (-kv[1], kv[0]))
            record.label_weights = dict(ranked[: self.max_labels_per_instance])

    def _create(self, p: _Prepared, keyframe_id: int, protected: set) -> int:
        if self._size >= self.max_instances and not self._evict(protected):
            self.stats.segments_dropped_capacity += 1
            return -1
        if self._size == len(self._ids):
            self._grow()
        slot = self._size
        instance_id = self._next_id
        self._next_id += 1
        keys, means, counts = downsample_points(p.points, np.ones(len(p.points)), self.voxel_size)
        record = _Record(instance_id, 0, keys, means, counts, 0, first_seen=self._calls)
        self._enforce_point_budget(record)
        record.num_points = len(p.points)
        record.observation_count = 1
        self._vote(record, keyframe_id, p)
        self._records.append(record)
        self._slot_of[instance_id] = slot
        self._size += 1
        self._ids[slot] = instance_id
        self._descriptors[slot] = p.descriptor
        self._embeddings[slot] = p.embedding
        self._weights[slot] = p.score * p.support
        self._observations[slot] = 1
        self._last_seen[slot] = self._calls
        self._refresh_geometry(slot)
        self._touch(slot)
        self.stats.instances_created += 1
        return instance_id

    def _evict(self, protected: set) -> bool:
        """Remove the least-observed, least recently seen instance not in ``protected``; False if none."""
        n = self._size
        order = np.lexsort((self._last_seen[:n], self._observations[:n]))
        for slot in order.tolist():
            if int(self._ids[slot]) not in protected:
                self._remove_slot(slot)
                self.stats.instances_evicted += 1
                return True
        return False

    # ----------------------------------------------------------------------------------------- maintenance

    def remove(self, instance_id: int) -> None:
        """Delete one instance; KeyError if there is none with this id."""
        if instance_id not in self._slot_of:
            raise KeyError(f"no instance with id {instance_id}")
        self._remove_slot(self._slot_of[instance_id])
        self.version += 1

    def merge_instances(self) -> int:
        """Merge pairs of instances that now overlap strongly and agree; returns how many merges were made.

        Only instances changed since the last pass are tested (against all others). Each instance takes part in
        at most one merge per pass; the older (lower id) instance survives and absorbs the other. The pairs are
        in ``last_merges`` until the next pass.
        """
        pairs = []
        for instance_id in sorted(self._dirty):
            slot = self._slot_of[instance_id]
            record = self._records[slot]
            slots, similarity = self._candidate_slots(
                self._low[slot], self._high[slot], self._descriptors[slot], self.merge_similarity_threshold
            )
            for other, sim in zip(slots.tolist(), similarity.tolist()):
                other_record = self._records[other]
                other_id = other_record.instance_id
                if other == slot or (other_id in self._dirty and other_id < instance_id):
                    continue  # the pair is visited once, from its lower dirty id
                if record.views.keys() & other_record.views.keys():
                    continue  # View-wise Instance Partition: one view saw them as two objects
                overlap = self._pair_overlap(record, other_record)
                if overlap >= self.merge_overlap_threshold:
                    pairs.append((overlap * sim, instance_id, other_record.instance_id))
        self._dirty.clear()
        pairs.sort(key=lambda pair: (-pair[0], pair[1], pair[2]))
        used: set[int] = set()
        merged = []
        for _, a, b in pairs:
            if a in used or b in used:
                continue
            used.update((a, b))
            keep, gone = min(a, b), max(a, b)
            self._absorb(self._slot_of[keep], self._slot_of[gone])
            merged.append((keep, gone))
        self.last_merges = tuple(merged)
        merges = len(merged)
        if merges:
            self.version += 1
            self.stats.instances_merged += merges
        return merges

    def _pair_overlap(self, a: _Record, b: _Record) -> float:
        level = max(a.level, b.level)
        size = self.voxel_size * 2**level
        keys_a = a.keys if a.level == level else np.unique(compute_voxel_keys(a.points, size))
        keys_b = b.keys if b.level == level else np.unique(compute_voxel_keys(b.points, size))
        return count_shared_keys(keys_a, keys_b) / max(1, min(len(keys_a), len(keys_b)))

    def _absorb(self, keep_slot: int, gone_slot: int) -> None:
        keep, gone = self._records[keep_slot], self._records[gone_slot]
        total = self._weights[keep_slot] + self._weights[gone_slot]
        if total > 0:
            for matrix in self._vector_matrices():
                mixed = self._weights[keep_slot] * matrix[keep_slot] + self._weights[gone_slot] * matrix[gone_slot]
                norm = np.linalg.norm(mixed)
                if norm > 1e-12:
                    matrix[keep_slot] = mixed / norm
        self._weights[keep_slot] = total
        keep.level = max(keep.level, gone.level)
        keep.keys, keep.points, keep.counts = downsample_points(
            np.concatenate([keep.points, gone.points]),
            np.concatenate([keep.counts, gone.counts]),
            self.voxel_size * 2**keep.level,
        )
        self._enforce_point_budget(keep)
        keep.num_points += gone.num_points
        keep.observation_count += gone.observation_count
        keep.first_seen = min(keep.first_seen, gone.first_seen)
        merged_views = sorted({**keep.views, **gone.views}.items(), key=lambda kv: kv[0])
        keep.views = OrderedDict(merged_views[-self.max_views_per_instance :])
        for label, weight in gone.label_weights.items():
            keep.label_weights[label] = keep.label_weights.get(label, 0.0) + weight
        keep.labelled_score += gone.labelled_score
        self._prune_labels(keep)
        self._observations[keep_slot] = keep.observation_count
        self._last_seen[keep_slot] = max(self._last_seen[keep_slot], self._last_seen[gone_slot])
        self._refresh_geometry(keep_slot)
        self._touch(keep_slot)
        self._remove_slot(gone_slot)

    # ----------------------------------------------------------------------------------------- labels

    def relabel_views(self, only_changed: bool = True) -> list[ViewLabel]:
        """The consensus label of every retained view of every labelled instance (cross-view self-enhancement).

        Args:
            only_changed: return only views whose own label differs from their instance's consensus.
        Returns:
            ViewLabel records sorted by (keyframe_id, segment_id); feed ``label`` back to each view.
        """
        out = []
        for record in self._records[: self._size]:
            label, _ = self._consensus(record)
            if not label:
                continue
            for keyframe_id, vote in record.views.items():
                if only_changed and vote.label == label:
                    continue
                out.append(ViewLabel(keyframe_id, vote.segment_id, record.instance_id, label, vote.label))
        out.sort(key=lambda v: (v.keyframe_id, v.segment_id))
        return out

    # ----------------------------------------------------------------------------------------- state (persistence)

    def export_state(self) -> dict[str, np.ndarray]:
        """Copies of everything ``from_state`` needs to rebuild this map, as flat numeric and str arrays.

        Rows follow the matrix order (N instances). Variable-length per-instance data (points, label tallies,
        view records) is concatenated, with (N + 1,) offsets; label strings are indices into ``label_names``.
        Construction parameters are not included, except ``voxel_size`` and ``semantic_source`` which give the
        stored points and embeddings their meaning.
        """
        n = self._size
        records = self._records[:n]
        names: dict[str, int] = {}

        def name_index(label: str) -> int:
            return names.setdefault(label, len(names))

        vote_labels, vote_weights, views = [], [], []
        for record in records:
            for label, weight in record.label_weights.items():
                vote_labels.append(name_index(label))
                vote_weights.append(weight)
            for keyframe_id, vote in record.views.items():
                views.append((keyframe_id, vote.segment_id, name_index(vote.label), vote.label_score, vote.score))
        view_columns = np.array(views, dtype=np.float64).reshape(-1, 5)

        def offsets(lengths) -> np.ndarray:
            return np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64))]).astype(np.int64)

        def rows(name: str, dtype) -> np.ndarray:
            return np.array([getattr(r, name) for r in records], dtype=dtype)

        state = {
            "voxel_size": np.array(self.voxel_size),
            "semantic_source": np.array(self.semantic_source),
            "counters": np.array(
                [self._calls, self._next_id, self._descriptor_dim or -1, self._embedding_dim or -1], dtype=np.int64
            ),
            "stats": np.array([getattr(self.stats, f) for f in _STATS_FIELDS], dtype=np.int64),
            "ids": self._ids[:n].copy(),
            "descriptors": self._descriptors[:n].copy(),
            "weights": self._weights[:n].copy(),
            "observations": self._observations[:n].copy(),
            "last_seen": self._last_seen[:n].copy(),
            "levels": rows("level", np.int64),
            "num_points": rows("num_points", np.int64),
            "first_seen": rows("first_seen", np.int64),
            "labelled_score": rows("labelled_score", np.float64),
            "dirty": np.array(sorted(self._dirty), dtype=np.int64),
            "point_offsets": offsets([len(r.keys) for r in records]),
            "point_keys": np.concatenate([r.keys for r in records] or [np.zeros(0, np.int64)]),
            "points": np.concatenate([r.points for r in records] or [np.zeros((0, 3))]),
            "point_counts": np.concatenate([r.counts for r in records] or [np.zeros(0)]),
            "label_names": np.array(list(names), dtype=np.str_),
            "vote_offsets": offsets([len(r.label_weights) for r in records]),
            "vote_labels": np.array(vote_labels, dtype=np.int64),
            "vote_weights": np.array(vote_weights, dtype=np.float64),
            "view_offsets": offsets([len(r.views) for r in records]),
            "view_keyframes": view_columns[:, 0].astype(np.int64),
            "view_segments": view_columns[:, 1].astype(np.int64),
            "view_labels": view_columns[:, 2].astype(np.int64),
            "view_label_scores": view_columns[:, 3].copy(),
            "view_scores": view_columns[:, 4].copy(),
        }
        if self._embeddings is not self._descriptors:
            state["embeddings"] = self._embeddings[:n].copy()
        return state

    @classmethod
    def from_state(cls, state: dict, **params) -> "InstanceMap":
        """Rebuild a map from ``export_state`` arrays with construction ``params``, validating everything.

        ``params`` must keep the saved ``semantic_source``. With another ``voxel_size`` the points are
        downsampled again; smaller point / view / label bounds are enforced on the way in.
        Raises:
            ValueError naming the first problem found (missing or malformed arrays, inconsistent values).
        """
        instance_map = cls(**params)
        reader = _StateReader(state)
        n = reader.array("ids", np.int64, (None,)).shape[0]
        source = reader.text("semantic_source")
        if source != instance_map.semantic_source:
            raise ValueError(f"the state's embeddings come from {source!r}, the map is set to use "
                             f"{instance_map.semantic_source!r}")
        if n > instance_map.max_instances:
            raise ValueError(f"the state holds {n} instances, max_instances is {instance_map.max_instances}")
        saved_voxel_size = float(reader.array("voxel_size", np.float64, ()))
        calls, next_id, descriptor_dim, embedding_dim = reader.array("counters", np.int64, (4,)).tolist()
        ids = reader.array("ids", np.int64, (n,))
        descriptors = reader.unit_rows("descriptors", n)
        embeddings = reader.unit_rows("embeddings", n) if source == "clip_embedding" else descriptors
        per_row = {
            name: reader.array(name, dtype, (n,))
            for name, dtype in (("weights", np.float64), ("observations", np.int64), ("last_seen", np.int64),
                                ("levels", np.int64), ("num_points", np.int64), ("first_seen", np.int64),
                                ("labelled_score", np.float64))
        }
        label_names = reader.array("label_names", np.str_, (None,)).tolist()
        point_keys = reader.array("point_keys", np.int64, (None,))
        points = reader.array("points", np.float64, (len(point_keys), 3))
        point_counts = reader.array("point_counts", np.float64, (len(point_keys),))
        vote_labels = reader.array("vote_labels", np.int64, (None,))
        vote_weights = reader.array("vote_weights", np.float64, (len(vote_labels),))
        view_columns = [reader.array("view_keyframes", np.int64, (None,))]
        view_columns += [reader.array(name, dtype, (len(view_columns[0]),)) for name, dtype in (
            ("view_segments", np.int64), ("view_labels", np.int64), ("view_label_scores", np.float64),
            ("view_scores", np.float64))]
        points_at = reader.offsets("point_offsets", n, len(point_keys))
        votes_at = reader.offsets("vote_offsets", n, len(vote_labels))
        views_at = reader.offsets("view_offsets", n, len(view_columns[0]))
        dirty = reader.array("dirty", np.int64, (None,))
        stats = reader.array("stats", np.int64, (len(_STATS_FIELDS),))

        if len(set(ids.tolist())) != n or (n and (ids.min() < 0 or ids.max() >= next_id)):
            raise ValueError(f"ids must be distinct and in [0, next_id={next_id})")
        if n and (descriptors.shape[1] != descriptor_dim or embeddings.shape[1] != embedding_dim):
            raise ValueError("descriptor / embedding widths disagree with the recorded dimensions")
        if (descriptor_dim > 0) != (embedding_dim > 0):
            raise ValueError("descriptor and embedding dimensions must be both known or both unknown (-1)")
        if calls < 0 or (stats < 0).any() or not set(dirty.tolist()) <= set(ids.tolist()):
            raise ValueError("counters must be >= 0 and dirty ids must be live ids")
        if (per_row["levels"] < 0).any() or (per_row["levels"] > 40).any():
            raise ValueError("levels must lie in [0, 40]")
        if (per_row["weights"] < 0).any() or (per_row["labelled_score"] < 0).any():
            raise ValueError("weights and labelled_score must be >= 0")
        if (np.diff(points_at) < 1).any() or (point_counts <= 0).any():
            raise ValueError("every instance needs at least one point, each with a count > 0")
        for name, labels in (("vote_labels", vote_labels), ("view_labels", view_columns[2])):
            if len(labels) and (labels.min() < 0 or labels.max() >= len(label_names)):
                raise ValueError(f"{name} must index label_names ({len(label_names)} names)")
        if (vote_weights < 0).any() or (view_columns[3] < 0).any() or (view_columns[4] < 0).any():
            raise ValueError("vote weights and view scores must be >= 0")

        if descriptor_dim > 0:  # the dimensions stay fixed once a segment set them, even if no instance is left
            instance_map._descriptor_dim, instance_map._embedding_dim = descriptor_dim, embedding_dim
        instance_map._allocate(max(16, n), max(descriptor_dim, 1), max(embedding_dim, 1))
        same_voxels = saved_voxel_size == instance_map.voxel_size
        for slot in range(n):
            span = slice(points_at[slot], points_at[slot + 1])
            level = int(per_row["levels"][slot]) if same_voxels else 0
            keys, means, counts = point_keys[span], points[span], point_counts[span]
            size = instance_map.voxel_size * 2**level
            if same_voxels:
                expected = compute_voxel_keys(means, size)
                # A mean lies in its voxel; one ulp of rounding may put it on the neighbouring face.
                drift = np.abs(unpack_voxel_keys(keys) - unpack_voxel_keys(expected)).max()
                if (np.diff(keys) <= 0).any() or drift > 1:
                    raise ValueError(f"instance {ids[slot]}: point keys are unsorted or do not match the points")
            else:
                keys, means, counts = downsample_points(means, counts, size)
            record = _Record(int(ids[slot]), level, keys.copy(), means.copy(), counts.copy(),
                             int(per_row["num_points"][slot]), first_seen=int(per_row["first_seen"][slot]),
                             labelled_score=float(per_row["labelled_score"][slot]),
                             observation_count=int(per_row["observations"][slot]))
            instance_map._enforce_point_budget(record)
            for k in range(votes_at[slot], votes_at[slot + 1]):
                record.label_weights[label_names[vote_labels[k]]] = float(vote_weights[k])
            instance_map._prune_labels(record)
            span = range(max(views_at[slot], views_at[slot + 1] - instance_map.max_views_per_instance),
                          views_at[slot + 1])
            for k in span:
                keyframe_id, segment_id, label, label_score, score = (column[k] for column in view_columns)
                record.views[int(keyframe_id)] = _ViewVote(int(segment_id), label_names[label], float(label_score),
                                                           float(score))
            instance_map._records.append(record)
            instance_map._slot_of[record.instance_id] = slot
        instance_map._size = n
        instance_map._ids[:n] = ids
        instance_map._descriptors[:n] = descriptors
        if instance_map._embeddings is not instance_map._descriptors:
            instance_map._embeddings[:n] = embeddings
        instance_map._weights[:n] = per_row["weights"]
        instance_map._observations[:n] = per_row["observations"]
        instance_map._last_seen[:n] = per_row["last_seen"]
        for slot in range(n):
            instance_map._refresh_geometry(slot)
            instance_map._touch(slot)
        instance_map._calls, instance_map._next_id = calls, next_id
        instance_map._dirty = set(dirty.tolist())
        instance_map.stats = InstanceMapStats(*stats.tolist())
        return instance_map


_STATS_FIELDS = tuple(InstanceMapStats.__dataclass_fields__)


class _StateReader:
    """Typed, shape-checked access to the arrays of an exported state (ValueError on any mismatch)."""

    def __init__(self, state: dict) -> None:
        if not isinstance(state, dict):
            raise ValueError(f"state must be a dict of arrays, got {type(state).__name__}")
        self.state = state

    def array(self, name: str, dtype, shape: tuple) -> np.ndarray:
        if name not in self.state:
            raise ValueError(f"state lacks {name!r}")
        array = np.asarray(self.state[name])
        kinds = {np.int64: "iu", np.float64: "iuf", np.float32: "iuf", np.str_: "U"}[dtype]
        if array.dtype.kind not in kinds:
            raise ValueError(f"{name} must have a {np.dtype(dtype).name} dtype, got {array.dtype}")
        if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
            raise ValueError(f"{name} must have shape {shape} (None = any), got {array.shape}")
        if dtype is not np.str_:
            if not np.isfinite(array).all():
                raise ValueError(f"{name} must be finite")
            return array.astype(dtype)
        return array

    def text(self, name: str) -> str:
        return str(self.array(name, np.str_, ()))

    def unit_rows(self, name: str, n: int) -> np.ndarray:
        matrix = self.array(name, np.float32, (n, None))
        if n and np.abs(np.linalg.norm(matrix.astype(np.float64), axis=1) - 1.0).max() > 1e-3:
            raise ValueError(f"{name} rows must be unit vectors")
        return matrix

    def offsets(self, name: str, n: int, total: int) -> np.ndarray:
        """(n + 1,) offsets into a concatenation of ``total`` rows: from 0, non-decreasing, ending at ``total``."""
        offsets = self.array(name, np.int64, (n + 1,))
        if offsets[0] != 0 or (np.diff(offsets) < 0).any() or offsets[-1] != total:
            raise ValueError(f"{name} must rise from 0 to {total}")
        return offsets
