"""The map server's state, without ROS: voxel map, instances, vocabulary labels, trajectory, queries, save / load.

One lock guards everything, because integration runs on a worker thread while services read and replace the map.
The text encoder is fixed at construction and has its own lock, so embedding a query or a vocabulary (a network
pass) never blocks integration; only the bookkeeping around it takes the map lock.

Invariants kept by every method:

* every voxel's instance id is -1 or a live instance (ids of instances merged away follow the survivor, ids of
  evicted instances become -1);
* every voxel's label id / score is its instance's vocabulary label (index into ``vocabulary``, -1 / 0 without);
* instance labels are the 3D-OVS per-class normalised labelling of the instance embeddings against the current
  vocabulary, refreshed on each ``integrate_segmented`` (cost O(instances x labels x dim)) and ``set_vocabulary``.

A call that raises changes nothing. A load builds and validates a complete new state first and swaps it in only when
it succeeded; a failed save leaves the file on disk as it was (persistence writes atomically).
"""

from __future__ import annotations

import inspect
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Optional, Sequence

import numpy as np

from ov_mapping.core.types import Keyframe, SegmentedKeyframe
from ov_mapping.mapping.instances import InstanceMap
from ov_mapping.mapping.persistence import MapFileError, export_ply, load_map, save_map
from ov_mapping.mapping.query import QueryIndex, compute_goal_pose, find_blocked_candidates
from ov_mapping.mapping.vocabulary import Vocabulary, check_text, label_instances
from ov_mapping.mapping.voxel_map import VoxelArrays, VoxelMap, pack_keys

STORE_FORMAT = 1  # version of what MapStore adds to a map file (instance table, vocabulary, labels, trajectory)
MAX_LABELS = 5000
MAX_TEXT_CHARS = 256
MAX_TOP_K = 100
GOAL_PARAM_NAMES = ("standoff", "robot_radius", "floor_height", "up", "obstacle_height", "num_directions")
_INSTANCE_PREFIX = "instances_"
_INDEX_LIMIT = (1 << 20) - 1  # voxel indices pack_keys accepts: |index| < 2**20


class MapPathError(ValueError):
    """A requested map path is outside the map directory or otherwise unusable."""


class TextEncoderMissingError(RuntimeError):
    """A text operation (query, vocabulary, embedding) was asked of a store built without ``embed_text``."""


def resolve_map_path(map_dir: Path, requested: str, suffix: str = ".npz") -> Path:
    """The file a SaveMap / LoadMap request names, refused unless it lies inside ``map_dir``.

    ``requested`` may be a bare name, a relative path inside the directory, or an absolute path that resolves inside
    it; the suffix is added when missing. Symlinks are resolved before the check, so a link cannot lead outside.
    """
    if not isinstance(requested, str) or not requested.strip():
        raise MapPathError("map path is empty")
    if "\x00" in requested:
        raise MapPathError("map path contains a NUL character")
    root = Path(map_dir).expanduser().resolve()
    candidate = Path(requested).expanduser()
    if not candidate.is_absolute():
        candidate = root / candidate
    if candidate.suffix != suffix:
        candidate = candidate.with_name(candidate.name + suffix)
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise MapPathError(f"refusing {requested!r}: maps are read and written only inside {root}")
    if resolved.is_dir():
        raise MapPathError(f"{resolved} is a directory")
    return resolved


def check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    """A vocabulary as a tuple of stripped labels; ValueError unless 0..MAX_LABELS distinct non-empty strings."""
    if isinstance(labels, (str, bytes)) or not hasattr(labels, "__iter__"):
        raise ValueError(f"labels must be a sequence of str, got {type(labels).__name__}")
    labels = list(labels)
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{len(labels)} labels given, the limit is {MAX_LABELS}")
    cleaned = tuple(check_text(label, MAX_TEXT_CHARS) for label in labels)
    if len(set(cleaned)) != len(cleaned):
        duplicates = sorted({label for label in cleaned if cleaned.count(label) > 1})
        raise ValueError(f"labels must be distinct; repeated: {duplicates[:5]}")
    return cleaned


def lookup_instance_labels(table: "LabelTable", instance_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label index (M,) int32 and score (M,) float32 of instance ids (M,) (-1 / 0 for -1 or ids not in the table).

    A dense table indexed by id makes this one gather, O(M), for millions of voxels.
    """
    instance_ids = np.asarray(instance_ids, dtype=np.int64)
    size = int(max(table.ids.max(initial=-1), instance_ids.max(initial=-1))) + 2
    index = np.full(size, -1, dtype=np.int32)
    score = np.zeros(size, dtype=np.float32)
    index[table.ids + 1] = table.index
    score[table.ids + 1] = table.scores
    rows = np.maximum(instance_ids, -1) + 1
    return index[rows], score[rows]


@dataclass(frozen=True)
class LabelTable:
    """Vocabulary label of each labelled instance (K rows)."""

    ids: np.ndarray  # (K,) int64 instance ids
    index: np.ndarray  # (K,) int32 index into the vocabulary
    scores: np.ndarray  # (K,) float32 per-class normalised relevancy in [0, 1]

    @classmethod
    def empty(cls) -> "LabelTable":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32))

    def restricted_to(self, live_ids: np.ndarray) -> "LabelTable":
        keep = np.isin(self.ids, live_ids)
        return LabelTable(self.ids[keep], self.index[keep], self.scores[keep])


@dataclass(frozen=True)
class QueryHit:
    """One instance answering a text query."""

    instance_id: int
    score: float  # relevancy in [0, 1] (canonical-negative normalised)
    similarity: float  # raw cosine between the query and the instance embedding
    record: dict  # as in ``MapStore.instance_records``
    goal: np.ndarray  # (4, 4) float64 T_world_goal: on the floor, x axis facing the object
    goal_free: bool  # False when every candidate pose collided with the map (the preferred one is given anyway)
    points: np.ndarray  # (N, 3) float32 map voxels of the instance
    colours: np.ndarray  # (N, 3) uint8


@dataclass
class IntegrationStats:
    keyframes: int = 0
    points_in: int = 0
    points_rejected: int = 0
    seconds: float = 0.0
    segmented_keyframes: int = 0
    segments: int = 0


def _check_goal_params(goal_params: Optional[dict]) -> dict:
    """Every ``compute_goal_pose`` option (defaults filled in), tried once on a unit box so that a bad value fails
    here rather than in every query."""
    goal_params = dict(goal_params or {})
    unknown = sorted(set(goal_params) - set(GOAL_PARAM_NAMES))
    if unknown:
        raise ValueError(f"unknown goal_params {unknown}; known: {list(GOAL_PARAM_NAMES)}")
    defaults = inspect.signature(compute_goal_pose).parameters
    goal_params = {name: goal_params.get(name, defaults[name].default) for name in GOAL_PARAM_NAMES}
    box = SimpleNamespace(centroid=np.zeros(3), obb_centre=np.zeros(3), obb_size=np.ones(3), obb_rotation=np.eye(3))
    try:
        compute_goal_pose(box, **goal_params)
    except (TypeError, ValueError) as error:
        raise ValueError(f"bad goal_params: {error}") from None
    return goal_params


class MapStore:
    """The map server's complete state and operations; thread-safe (see the module docstring)."""

    def __init__(
        self,
        voxel_size: float = 0.02,
        max_points: Optional[int] = None,
        frame_id: str = "map",
        min_confidence: float = 0.0,
        instance_params: Optional[dict] = None,
        embed_text: Optional[Callable[[list[str]], np.ndarray]] = None,
        goal_params: Optional[dict] = None,
        trajectory_capacity: int = 4096,
        query_min_observations: int = 2,
    ) -> None:
        """
        Args:
            voxel_size, max_points, frame_id: of the voxel map (see ``VoxelMap``).
            min_confidence: pointmap points at or below this confidence are not integrated.
            instance_params: keyword arguments of ``InstanceMap`` (association, merging, bounds).
            embed_text: texts -> (N, D) text embeddings in the instances' embedding space; None disables queries,
                vocabularies and embedding (they raise TextEncoderMissingError).
            goal_params: options of ``compute_goal_pose`` (standoff, robot_radius, floor_height, up, ...).
            trajectory_capacity: camera positions kept for goal poses; past it every second one is dropped, so
                the kept ones still span the whole run.
            query_min_observations: only instances seen in at least this many views answer queries (fragments
                seen once were most wrong answers on the synthetic check).
        """
        if isinstance(query_min_observations, bool) or int(query_min_observations) != query_min_observations \
                or query_min_observations < 1:
            raise ValueError(f"query_min_observations must be an integer >= 1, got {query_min_observations!r}")
        self.query_min_observations = int(query_min_observations)
        self._map = VoxelMap(voxel_size, max_points, frame_id)
        self.min_confidence = float(min_confidence)
        if instance_params is not None and not isinstance(instance_params, dict):
            raise ValueError(f"instance_params must be a dict or None, got {type(instance_params).__name__}")
        self._instance_params = dict(instance_params or {})
        self._instances = self._new_instance_map()
        self._goal_params = _check_goal_params(goal_params)
        if isinstance(trajectory_capacity, bool) or int(trajectory_capacity) != trajectory_capacity \
                or trajectory_capacity < 2:
            raise ValueError(f"trajectory_capacity must be an integer >= 2, got {trajectory_capacity!r}")
        self._trajectory_capacity = int(trajectory_capacity)
        self._embed_text = embed_text
        self._encoder_lock = threading.Lock()
        # A vocabulary without labels: the query encoder and its canonical negatives.
        self._encoder = self._new_vocabulary(()) if embed_text is not None else None
        self._lock = threading.RLock()
        self.stats = IntegrationStats()
        self._generation = 0  # bumped when a load swaps the state, whose own version counters start afresh
        self._label_revision = 0
        self._index = QueryIndex(self._instances)  # kept across queries: it caches the negatives' similarities
        self._labels: tuple[str, ...] = ()
        self._label_vocabulary: Optional[Vocabulary] = None  # the labels' embeddings (None without an encoder)
        self._label_table = LabelTable.empty()
        self._trajectory = np.zeros((0, 3))
        self._geometry_cache: dict[int, tuple[int, dict, SimpleNamespace]] = {}  # id -> (stamp, geometry, shape)

    def _new_instance_map(self, state: Optional[dict] = None) -> InstanceMap:
        try:
            if state is None:
                return InstanceMap(**self._instance_params)
            return InstanceMap.from_state(state, **self._instance_params)
        except TypeError as error:  # an unknown keyword in instance_params
            raise ValueError(f"bad instance_params: {error}") from None

    def _new_vocabulary(self, labels: Sequence[str]) -> Vocabulary:
        with self._encoder_lock:
            return Vocabulary(self._embed_text, labels, max_labels=MAX_LABELS, max_text_chars=MAX_TEXT_CHARS)

    # ------------------------------------------------------------------ read access
    @property
    def lock(self) -> threading.RLock:
        return self._lock

    @property
    def voxel_map(self) -> VoxelMap:
        return self._map

    @property
    def version(self) -> tuple[int, int, int, int]:
        """(load generation, voxel map, instance map, label revision) counters; changes whenever the content does."""
        with self._lock:
            return self._generation, self._map.version, self._instances.version, self._label_revision

    def __len__(self) -> int:
        with self._lock:
            return len(self._map)

    @property
    def num_instances(self) -> int:
        with self._lock:
            return len(self._instances)

    @property
    def vocabulary(self) -> list[str]:
        """The labels voxel and instance label ids index into."""
        with self._lock:
            return list(self._labels)

    @property
    def trajectory(self) -> np.ndarray:
        """(T, 3) float64 copy of the kept camera positions, oldest first."""
        with self._lock:
            return self._trajectory.copy()

    def snapshot(self) -> tuple[tuple[int, int, int, int], VoxelArrays]:
        """(version, copies of the per-voxel arrays), taken atomically; label_ids index into ``vocabulary``."""
        with self._lock:
            return self.version, self._map.to_arrays()

    def instance_records(self) -> list[dict]:
        """One dict per instance, in matrix row order:

        instance_id (int), centroid (3,), box_pose (4, 4) (oriented box centre and axes), box_size (3,) (extents
        along those axes), label (str, "" without vocabulary), label_id (int, -1 without), label_score (float),
        num_points (int), num_observations (int), segment_label / segment_label_score (the cross-view consensus
        of the segments' own labels). Arrays are read-only.
        """
        with self._lock:
            ids = self._instances.instance_ids
            stamps, _ = self._instances.embedding_changes()
            labels = self._label_lookup()
            records = [self._record(int(i), int(s), labels) for i, s in zip(ids, stamps)]
            live = set(ids.tolist())
            for gone in [i for i in self._geometry_cache if i not in live]:
                del self._geometry_cache[gone]
            return records

    def _label_lookup(self) -> dict[int, tuple[int, float]]:
        table = self._label_table
        return dict(zip(table.ids.tolist(), zip(table.index.tolist(), table.scores.tolist())))

    def _record(self, instance_id: int, stamp: int, labels: dict) -> dict:
        """The record of one instance; its geometry (and query shape) is recomputed only when the instance's row
        changed."""
        cached = self._geometry_cache.get(instance_id)
        if cached is None or cached[0] != stamp:
            instance = self._instances.get(instance_id)
            box_pose = np.eye(4)
            box_pose[:3, :3] = instance.obb_rotation
            box_pose[:3, 3] = instance.obb_centre
            geometry = {
                "centroid": instance.centroid, "box_pose": box_pose, "box_size": instance.obb_size,
                "num_points": instance.num_points, "num_observations": instance.observation_count,
                "segment_label": instance.label, "segment_label_score": instance.label_score,
            }
            for value in geometry.values():
                if isinstance(value, np.ndarray):
                    value.flags.writeable = False  # shared by every record handed out until the instance changes
            # What queries need for goals and voxel look-ups, without the instance's points (memory).
            shape = SimpleNamespace(instance_id=instance_id, centroid=instance.centroid,
                                    obb_centre=instance.obb_centre, obb_rotation=instance.obb_rotation,
                                    obb_size=instance.obb_size, aabb_min=instance.aabb_min,
                                    aabb_max=instance.aabb_max, voxel_size=instance.voxel_size)
            cached = (stamp, geometry, shape)
            self._geometry_cache[instance_id] = cached
        label_id, label_score = labels.get(instance_id, (-1, 0.0))
        return {
            "instance_id": instance_id, **cached[1], "label": self._labels[label_id] if label_id >= 0 else "",
            "label_id": label_id, "label_score": float(label_score),
        }

    # ------------------------------------------------------------------ integration
    def integrate_keyframe(self, keyframe: Keyframe) -> int:
        """Add a keyframe's confident, finite points (geometry only); returns the number of new voxels."""
        points, colours = keyframe.valid_points(self.min_confidence)
        total = keyframe.pointmap.shape[0] * keyframe.pointmap.shape[1]
        start = time.perf_counter()
        with self._lock:
            added = self._map.integrate(points, colours) if len(points) else 0
            self.stats.keyframes += 1
            self.stats.points_in += len(points)
            self.stats.points_rejected += total - len(points)
            self.stats.seconds += time.perf_counter() - start
        return added

    def integrate_segmented(self, segmented: SegmentedKeyframe) -> dict:
        """Integrate a keyframe's geometry and its segments.

        Segments are fused into instances; the voxels under each fused segment take its instance id and label;
        the camera position joins the trajectory. Raises ValueError on malformed input (nothing changes then).
        Returns:
            counts: voxels_added, points, segments, segments_skipped, instances_created, instances_associated,
            instances_removed (merged or evicted), voxels_stamped, instances (live after the call).
        """
        keyframe = getattr(segmented, "keyframe", None)
        segments = getattr(segmented, "segments", None)
        if not isinstance(keyframe, Keyframe) or isinstance(segments, (str, bytes)) \
                or not hasattr(segments, "__iter__"):
            raise ValueError(f"expected a SegmentedKeyframe (keyframe + segments), got {type(segmented).__name__}")
        segments = list(segments)
        self._check_semantic_dims(segments)
        points, colours = keyframe.valid_points(self.min_confidence)
        position = np.asarray(keyframe.pose, dtype=np.float64)[:3, 3]
        start = time.perf_counter()
        with self._lock:
            before = set(self._instances.instance_ids.tolist())
            result = self._instances.add_segments(keyframe.keyframe_id, segments)  # validates before changing
            added = self._map.integrate(points, colours) if len(points) else 0
            removed = self._removed_instances(before, result.instance_ids)
            if removed:
                self._follow_removed(removed)
            stamped = self._stamp_segments(segments, result.instance_ids, removed)
            if self._labels:
                if self._label_vocabulary is not None:
                    self._label_table = self._compute_labels(self._label_vocabulary)
                else:  # labels loaded into a store without encoder: keep them, new instances stay unlabelled
                    self._label_table = self._label_table.restricted_to(self._instances.instance_ids)
                self._restamp_labels()
            if np.isfinite(position).all():
                self._add_position(position)
            self.stats.keyframes += 1
            self.stats.segmented_keyframes += 1
            self.stats.segments += len(segments)
            self.stats.points_in += len(points)
            self.stats.points_rejected += keyframe.pointmap.shape[0] * keyframe.pointmap.shape[1] - len(points)
            self.stats.seconds += time.perf_counter() - start
            return {
                "voxels_added": added, "points": len(points), "segments": len(segments),
                "segments_skipped": result.skipped, "instances_created": result.created,
                "instances_associated": result.associated, "instances_removed": len(removed),
                "voxels_stamped": stamped, "instances": len(self._instances),
            }

    def _check_semantic_dims(self, segments: list) -> None:
        """Refuse segments whose query vectors the text encoder could never be compared with (before any change)."""
        if self._encoder is None:
            return
        name = self._instances.semantic_source
        for index, segment in enumerate(segments):
            vector = np.asarray(getattr(segment, name, None))
            if vector.ndim == 1 and vector.shape[0] != self._encoder.dim:
                raise ValueError(f"segment {index}: {name} has dimension {vector.shape[0]}, the text encoder gives "
                                 f"{self._encoder.dim}")

    def _removed_instances(self, before: set, new_ids: tuple) -> dict[int, int]:
        """{id: id it now lives on (-1 if evicted)} for instances that existed during the last add and are gone."""
        live = set(self._instances.instance_ids.tolist())
        vanished = (before | {i for i in new_ids if i >= 0}) - live
        merged_into = {gone: kept for kept, gone in self._instances.last_merges}
        return {gone: merged_into.get(gone, -1) for gone in vanished}

    def _follow_removed(self, removed: dict[int, int]) -> None:
        voxel_ids = self._map.instance_ids
        old = np.array(sorted(removed), dtype=np.int64)
        hit = np.flatnonzero(np.isin(voxel_ids, old))
        if len(hit):
            new = np.array([removed[i] for i in old.tolist()], dtype=np.int32)
            self._map.set_fields(hit, instance_ids=new[np.searchsorted(old, voxel_ids[hit])])

    def _stamp_segments(self, segments: list, instance_ids: tuple, removed: dict[int, int]) -> int:
        """Give the voxels under each fused segment its instance id (later segments win overlaps)."""
        indices, values = [], []
        for segment, instance_id in zip(segments, instance_ids):
            instance_id = removed.get(instance_id, instance_id)
            if instance_id < 0:
                continue
            found = self._map.lookup(np.asarray(segment.points, dtype=np.float64))
            found = found[found >= 0]
            indices.append(found)
            values.append(np.full(len(found), instance_id, dtype=np.int32))
        if not indices:
            return 0
        indices, values = np.concatenate(indices), np.concatenate(values)
        self._map.set_fields(indices, instance_ids=values, label_ids=-1, label_scores=0.0)
        return len(np.unique(indices))

    def _add_position(self, position: np.ndarray) -> None:
        trajectory = np.concatenate([self._trajectory, position[None, :]])
        if len(trajectory) > self._trajectory_capacity:
            trajectory = trajectory[(len(trajectory) - 1) % 2 :: 2]  # every second one, keeping the newest
        self._trajectory = trajectory

    # ------------------------------------------------------------------ labels
    def _compute_labels(self, vocabulary: Optional[Vocabulary]) -> LabelTable:
        """3D-OVS labelling of every instance; ValueError when the vocabulary's space is not the instances'."""
        ids, embeddings = self._instances.embedding_matrix()
        if vocabulary is None or len(vocabulary) == 0 or len(ids) == 0:
            return LabelTable.empty()
        if embeddings.shape[1] != vocabulary.dim:
            raise ValueError(f"the text encoder gives {vocabulary.dim}-d embeddings, the instances have "
                             f"{embeddings.shape[1]}-d ones")
        labelled = label_instances(vocabulary, embeddings)
        return LabelTable(ids.copy(), labelled.label_index.astype(np.int32), labelled.scores.astype(np.float32))

    def _restamp_labels(self) -> None:
        """Make every voxel's label fields its instance's label, writing only voxels that differ."""
        label_ids, label_scores = lookup_instance_labels(self._label_table, self._map.instance_ids)
        changed = np.flatnonzero((label_ids != self._map.label_ids) | (label_scores != self._map.label_scores))
        if len(changed):
            self._map.set_fields(changed, label_ids=label_ids[changed], label_scores=label_scores[changed])

    def set_vocabulary(self, labels: Sequence[str]) -> int:
        """Replace the vocabulary and relabel every instance and voxel; returns the number of instances labelled.

        An empty list clears every label (instances "" / -1, voxels -1 / 0). Raises ValueError for a bad list
        (non-str or empty entries, duplicates, more than MAX_LABELS, texts over MAX_TEXT_CHARS) or an encoder
        whose space differs from the instances', TextEncoderMissingError for labels without an encoder; nothing
        changes then.
        """
        labels = check_labels(labels)
        if labels:
            self._require_encoder()
        vocabulary = self._new_vocabulary(labels) if labels else None
        with self._lock:
            table = self._compute_labels(vocabulary)
            self._labels, self._label_vocabulary, self._label_table = labels, vocabulary, table
            self._label_revision += 1
            self._restamp_labels()
            return len(table.ids)

    # ------------------------------------------------------------------ text
    def _require_encoder(self) -> Vocabulary:
        if self._encoder is None:
            raise TextEncoderMissingError("this map store has no text encoder (embed_text)")
        return self._encoder

    def embed(self, text: str) -> np.ndarray:
        """Unit text embedding (D,) float32; ValueError for an empty text or one over MAX_TEXT_CHARS."""
        check_text(text, MAX_TEXT_CHARS)
        encoder = self._require_encoder()
        with self._encoder_lock:
            return encoder.embed_query(text).copy()

    def query(self, text: str, top_k: int = 5, min_score: float = 0.0) -> list[QueryHit]:
        """The ``top_k`` instances most relevant to ``text`` with relevancy >= ``min_score``, best first.

        Each hit carries its record, a reachable goal pose facing it (``compute_goal_pose`` with the camera
        trajectory as the reachable region and the map voxels as obstacles) and its voxels. Empty on an empty
        map. Raises ValueError for an empty text, one over MAX_TEXT_CHARS, top_k outside 1..MAX_TOP_K or
        min_score outside [0, 1].
        """
        check_text(text, MAX_TEXT_CHARS)
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not 1 <= top_k <= MAX_TOP_K:
            raise ValueError(f"top_k must be an integer in [1, {MAX_TOP_K}], got {top_k!r}")
        if not isinstance(min_score, (int, float, np.number)) or not 0.0 <= float(min_score) <= 1.0:
            raise ValueError(f"min_score must be a number in [0, 1], got {min_score!r}")
        encoder = self._require_encoder()
        with self._lock:
            if len(self._instances) == 0:
                return []
        with self._encoder_lock:
            embedding = encoder.embed_query(text)
        with self._lock:
            result = self._index.query(embedding, encoder.negative_embeddings, int(top_k), float(min_score),
                                       min_observations=self.query_min_observations)
            if len(result) == 0:
                return []
            ids = result.instance_ids.tolist()
            labels = self._label_lookup()
            all_ids, _ = self._instances.embedding_matrix()
            stamps, _ = self._instances.embedding_changes()
            hits = []
            for instance_id, score, similarity in zip(ids, result.scores.tolist(), result.similarities.tolist()):
                stamp = int(stamps[np.flatnonzero(all_ids == instance_id)[0]])
                record = self._record(instance_id, stamp, labels)
                shape = self._geometry_cache[instance_id][2]
                goal = self._goal(shape)
                mine = self._instance_voxels(shape)
                if len(mine):
                    points = self._map.positions[mine].astype(np.float32)
                    colours = np.clip(np.rint(self._map.colours[mine]), 0, 255).astype(np.uint8)
                else:  # no voxel carries the id (e.g. all its points were below min_confidence)
                    points = self._instances.get(instance_id).points
                    colours = np.full(points.shape, 128, dtype=np.uint8)
                hits.append(QueryHit(instance_id, score, similarity, record, goal.matrix, goal.free, points, colours))
            return hits

    def _instance_voxels(self, instance: SimpleNamespace) -> np.ndarray:
        """Indices (ascending) of the voxels carrying the instance's id, found without scanning the map.

        A voxel takes an id from a segment point inside it, and the instance keeps the voxel means (at its own
        voxel size) of every point of its segments and merged instances: so its voxels lie within its points'
        box grown by its voxel size plus the map's (a coarsened map voxel's mean stays in its cell).
        """
        grow = instance.voxel_size + self._map.voxel_size
        low = np.asarray(instance.aabb_min, dtype=np.float64)[None] - grow
        high = np.asarray(instance.aabb_max, dtype=np.float64)[None] + grow
        indices, _ = self._voxels_in_boxes(low, high)
        return indices[self._map.instance_ids[indices] == instance.instance_id]

    def _goal(self, instance: SimpleNamespace):
        params = self._goal_params
        trajectory = self._trajectory if len(self._trajectory) else None
        return compute_goal_pose(instance, trajectory=trajectory, blocked=self._blocked_candidates, **params)

    def _blocked_candidates(self, candidates: np.ndarray) -> np.ndarray:
        """``compute_goal_pose``'s clearance test (K,) bool for floor candidates (K, 3), on the voxel keys.

        Only voxels in each candidate's obstacle cylinder (radius ``robot_radius``, the obstacle height band
        above it) can block it: their bounding boxes' voxels are gathered by binary search on the sorted keys,
        each tested against its own candidate, so the cost follows the cylinders' contents, not the map's size.
        """
        params = self._goal_params
        up = np.asarray(params["up"], dtype=np.float64)
        up = up / np.linalg.norm(up)
        low, high = (float(h) for h in params["obstacle_height"])
        radius = float(params["robot_radius"])
        spread = radius * np.sqrt(np.clip(1.0 - up**2, 0.0, None))  # the disk's half extent along each axis
        bottom, top = candidates + low * up, candidates + high * up
        indices, owners = self._voxels_in_boxes(np.minimum(bottom, top) - spread, np.maximum(bottom, top) + spread)
        return find_blocked_candidates(candidates, self._map.positions[indices], owners, radius,
                                       float(params["floor_height"]), up, params["obstacle_height"])

    def _voxels_in_boxes(self, lows: np.ndarray, highs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Voxels whose cells meet axis-aligned boxes [lows[b], highs[b]] (B, 3): indices (V,) and box (V,).

        A superset (callers test the positions): one voxel of margin absorbs means lying on their cell's face.
        Voxel keys sort by x cell, then y cell, then z cell, so the voxels of one x cell within a y cell range are
        one contiguous run: one binary search pair per x cell and box instead of a scan of the whole map. Each
        box's indices come out ascending.
        """
        size = self._map.voxel_size
        cell_low = np.clip(np.floor(lows / size) - 1, -_INDEX_LIMIT, _INDEX_LIMIT).astype(np.int64)
        cell_high = np.clip(np.floor(highs / size) + 1, -_INDEX_LIMIT, _INDEX_LIMIT).astype(np.int64)
        widths = cell_high[:, 0] - cell_low[:, 0] + 1
        box = np.repeat(np.arange(len(lows)), widths)
        xs = cell_low[box, 0] + np.arange(int(widths.sum())) - np.repeat(np.cumsum(widths) - widths, widths)
        keys = self._map.keys
        edge = np.full_like(xs, _INDEX_LIMIT)
        starts = np.searchsorted(keys, pack_keys(np.stack([xs, cell_low[box, 1], -edge], 1)))
        stops = np.searchsorted(keys, pack_keys(np.stack([xs, cell_high[box, 1], edge], 1)), side="right")
        lengths = stops - starts
        # The runs' indices, concatenated: each run's start, plus the position inside its run.
        shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        return np.arange(int(lengths.sum())) + shift, np.repeat(box, lengths)

    # ------------------------------------------------------------------ persistence
    def save(self, path: Path, ply: bool = False) -> Path:
        """Save the voxel map, the instance table, the vocabulary, the labels and the trajectory atomically."""
        with self._lock:
            extra = {_INSTANCE_PREFIX + name: array for name, array in self._instances.export_state().items()}
            extra.update({
                "vocabulary": np.array(self._labels, dtype=np.str_).reshape(-1),
                "label_table_ids": self._label_table.ids,
                "label_table_index": self._label_table.index,
                "label_table_scores": self._label_table.scores,
                "trajectory": self._trajectory,
            })
            metadata = {"map_store": {"version": STORE_FORMAT, "num_instances": len(self._instances),
                                      "num_labels": len(self._labels)}}
            saved = save_map(path, self._map, extra=extra, metadata=metadata)
            if ply:
                export_ply(Path(path).with_suffix(".ply"), self._map)
        return saved

    def load(self, path: Path) -> dict:
        """Replace the whole state with the file's; on any error nothing changes (MapFileError says why).

        Files without a MapStore part (plain ``save_map`` files) load as geometry with no instances or labels.
        Returns:
            counts: num_points (voxels), num_instances, num_labels.
        """
        loaded = load_map(path, max_points=self._map.max_points)
        try:
            restored = self._restore(loaded.voxel_map, loaded.metadata.get("user", {}), loaded.extra)
        except ValueError as error:
            raise MapFileError(f"map file {path}: {error}") from None
        with self._lock:
            self._map = loaded.voxel_map
            (self._instances, self._labels, self._label_vocabulary, self._label_table,
             self._trajectory) = restored
            self._index = QueryIndex(self._instances)
            self._geometry_cache = {}
            self._generation += 1
            return {"num_points": len(self._map), "num_instances": len(self._instances),
                    "num_labels": len(self._labels)}

    def _restore(self, voxel_map: VoxelMap, user: dict, extra: dict) -> tuple:
        """(instances, labels, label vocabulary, label table, trajectory) from a file's parts, all validated."""
        part = user.get("map_store") if isinstance(user, dict) else None
        if part is None:
            instances, labels, table, trajectory = self._new_instance_map(), (), LabelTable.empty(), np.zeros((0, 3))
        else:
            if not isinstance(part, dict) or part.get("version") != STORE_FORMAT:
                version = part.get("version") if isinstance(part, dict) else part
                raise ValueError(f"map store format {version!r} is not the one this code reads ({STORE_FORMAT})")
            missing = [name for name in ("vocabulary", "label_table_ids", "label_table_index", "label_table_scores",
                                         "trajectory") if name not in extra]
            if missing:
                raise ValueError(f"lacks arrays {missing}")
            state = {name[len(_INSTANCE_PREFIX):]: array for name, array in extra.items()
                     if name.startswith(_INSTANCE_PREFIX)}
            instances = self._new_instance_map(state)
            vocabulary = np.asarray(extra["vocabulary"])
            if vocabulary.ndim != 1 or (len(vocabulary) and vocabulary.dtype.kind != "U"):
                raise ValueError(f"vocabulary must be a 1-D str array, got {vocabulary.dtype} {vocabulary.shape}")
            labels = check_labels(vocabulary.tolist())
            table = self._check_label_table(extra, instances, labels)
            trajectory = np.asarray(extra["trajectory"])
            if trajectory.ndim != 2 or trajectory.shape[1] != 3 or trajectory.dtype.kind != "f" \
                    or not np.isfinite(trajectory).all():
                raise ValueError(f"trajectory must be finite (T, 3) floats, got {trajectory.dtype} {trajectory.shape}")
            trajectory = trajectory.astype(np.float64)
            while len(trajectory) > self._trajectory_capacity:
                trajectory = trajectory[(len(trajectory) - 1) % 2 :: 2]
        live = instances.instance_ids
        voxel_ids = voxel_map.instance_ids
        if not np.isin(voxel_ids[voxel_ids != -1], live).all():
            raise ValueError("voxels carry instance ids that are not in the instance table")
        if len(voxel_map) and (voxel_map.label_ids.min() < -1 or voxel_map.label_ids.max() >= len(labels)):
            raise ValueError(f"voxel label ids must lie in [-1, {len(labels)})")
        dim = instances.embedding_dim
        if self._encoder is not None and dim is not None and dim != self._encoder.dim:
            raise ValueError(f"its instance embeddings are {dim}-d, this store's text encoder gives "
                             f"{self._encoder.dim}-d ones")
        label_vocabulary = self._new_vocabulary(labels) if labels and self._encoder is not None else None
        return instances, labels, label_vocabulary, table, trajectory

    @staticmethod
    def _check_label_table(extra: dict, instances: InstanceMap, labels: tuple) -> LabelTable:
        ids = np.asarray(extra["label_table_ids"])
        index = np.asarray(extra["label_table_index"])
        scores = np.asarray(extra["label_table_scores"])
        if ids.ndim != 1 or index.shape != ids.shape or scores.shape != ids.shape:
            raise ValueError("label table arrays must be 1-D and of one length")
        if ids.dtype.kind not in "iu" or index.dtype.kind not in "iu" or scores.dtype.kind != "f":
            raise ValueError("label table ids / index must be integers and scores floats")
        live = set(instances.instance_ids.tolist()) if labels else set()
        if not set(ids.tolist()) <= live or len(set(ids.tolist())) != len(ids):
            raise ValueError("the label table must name live instances, each once (none without a vocabulary)")
        if len(ids) and (index.min() < 0 or index.max() >= len(labels)):
            raise ValueError(f"label table indices must lie in [0, {len(labels)})")
        if not (np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()):
            raise ValueError("label scores must lie in [0, 1]")
        return LabelTable(ids.astype(np.int64), index.astype(np.int32), scores.astype(np.float32))
