"""A coloured, labelled voxel map on sorted int64 keys. Pure numpy, vectorised.

Each occupied voxel holds the weighted running mean of the points that fell in it (so the map keeps
sub-voxel detail), a running mean colour, the summed weight, the number of points merged, and three
fields that later stages fill: instance id (int32, -1 = none), label id (int32, -1 = none) and label
score (float32).

Storage: voxel indices (ix, iy, iz) are packed into one int64 key, 21 bits per axis, and every per-voxel
array is kept sorted by key, so lookups are ``np.searchsorted`` and a batch of points is merged with one
sort of the batch plus one ordered insert. Keys, and therefore voxel indices, change whenever voxels are
inserted: callers must not hold indices across modifications (look points up again instead).

Memory budget (``max_points``): when a map holds more voxels than the budget, the voxel size doubles
and every 2x2x2 block of voxels merges into one (weighted means of position and colour, summed weights
and counts; instance/label fields taken from the heaviest voxel of the block), repeated until the map
fits. Coverage is never lost, only resolution; ``voxel_size`` reports the size in force. The map is
not thread-safe: guard it with a lock when several threads use it.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

_BITS = 21
_OFFSET = 1 << (_BITS - 1)
_MASK = (1 << _BITS) - 1
_MAX_NEIGHBOUR_RADIUS = 6  # nearest() cost grows with the cube of this many voxels

STATE_FIELDS = ("keys", "positions", "colours", "weights", "counts", "instance_ids", "label_ids", "label_scores")


class VoxelArrays(NamedTuple):
    """Copies of the map's per-voxel data, ready for a PointCloud2 (M voxels)."""

    positions: np.ndarray  # (M, 3) float32
    colours: np.ndarray  # (M, 3) uint8
    weights: np.ndarray  # (M,) float32
    counts: np.ndarray  # (M,) int64
    instance_ids: np.ndarray  # (M,) int32
    label_ids: np.ndarray  # (M,) int32
    label_scores: np.ndarray  # (M,) float32


def _check_voxel_size(voxel_size: float) -> float:
    try:
        voxel_size = float(voxel_size)
    except (TypeError, ValueError):
        raise ValueError(f"voxel_size must be a number, got {voxel_size!r}") from None
    if not (np.isfinite(voxel_size) and voxel_size > 0):
        raise ValueError(f"voxel_size must be a finite number > 0, got {voxel_size}")
    return voxel_size


def _check_max_points(max_points: Optional[int]) -> Optional[int]:
    if max_points is None:
        return None
    if isinstance(max_points, bool) or int(max_points) != max_points or max_points < 1:
        raise ValueError(f"max_points must be a positive integer or None, got {max_points!r}")
    return int(max_points)


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def pack_keys(indices: np.ndarray) -> np.ndarray:
    """Pack integer voxel indices (N, 3) (each in [-2**20, 2**20)) into sortable int64 keys (N,)."""
    biased = indices.astype(np.int64) + _OFFSET
    return (biased[:, 0] << (2 * _BITS)) | (biased[:, 1] << _BITS) | biased[:, 2]


def unpack_keys(keys: np.ndarray) -> np.ndarray:
    """Inverse of ``pack_keys``: int64 keys (N,) to voxel indices (N, 3) int64."""
    keys = np.asarray(keys, dtype=np.int64)
    return np.stack([(keys >> (2 * _BITS)) & _MASK, (keys >> _BITS) & _MASK, keys & _MASK], axis=1) - _OFFSET


class VoxelMap:
    """Voxel hash map of coloured points with per-voxel instance and label fields."""

    def __init__(self, voxel_size: float = 0.02, max_points: Optional[int] = None, frame_id: str = "map"):
        """
        Args:
            voxel_size: edge length in metres (> 0).
            max_points: voxel budget (None = unbounded); see the module doc for the policy.
            frame_id: the frame the points are expressed in (kept with saved maps).
        """
        self._voxel_size = _check_voxel_size(voxel_size)
        self._max_points = _check_max_points(max_points)
        if not isinstance(frame_id, str) or not frame_id:
            raise ValueError(f"frame_id must be a non-empty string, got {frame_id!r}")
        self.frame_id = frame_id
        self._version = 0
        self._reset_arrays()

    # ----------------------------------------------------------------- properties
    @property
    def voxel_size(self) -> float:
        return self._voxel_size

    @property
    def max_points(self) -> Optional[int]:
        return self._max_points

    @property
    def version(self) -> int:
        """Increases on every modification; compare with a saved value to see if the map changed."""
        return self._version

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def keys(self) -> np.ndarray:
        """(M,) int64 sorted voxel keys (read-only view)."""
        return _read_only(self._keys)

    @property
    def positions(self) -> np.ndarray:
        """(M, 3) float64 mean point of each voxel (read-only view)."""
        return _read_only(self._positions)

    @property
    def colours(self) -> np.ndarray:
        """(M, 3) float32 mean colour, 0..255 (read-only view)."""
        return _read_only(self._colours)

    @property
    def weights(self) -> np.ndarray:
        """(M,) float64 summed point weights (read-only view)."""
        return _read_only(self._weights)

    @property
    def counts(self) -> np.ndarray:
        """(M,) int64 number of points merged (read-only view)."""
        return _read_only(self._counts)

    @property
    def instance_ids(self) -> np.ndarray:
        """(M,) int32, -1 = none (read-only view; change with ``set_fields``)."""
        return _read_only(self._instance_ids)

    @property
    def label_ids(self) -> np.ndarray:
        """(M,) int32, -1 = none (read-only view; change with ``set_fields``)."""
        return _read_only(self._label_ids)

    @property
    def label_scores(self) -> np.ndarray:
        """(M,) float32 (read-only view; change with ``set_fields``)."""
        return _read_only(self._label_scores)

    # ----------------------------------------------------------------- updates
    def integrate(self, points: np.ndarray, colours: np.ndarray, weights: Optional[np.ndarray] = None) -> int:
        """Merge points into the map.

        Rows whose point is not finite, whose weight is 0, or which lie beyond the key range
        (+-2**20 voxels from the origin) are skipped.

        Args:
            points: (N, 3) float world points.
            colours: (N, 3) uint8 RGB.
            weights: (N,) non-negative finite weights (default 1 each).
        Returns:
            How many voxels this call created (counted before any budget coarsening).
        """
        points, colours, weights = self._check_batch(points, colours, weights)
        scaled = points / self._voxel_size
        with np.errstate(invalid="ignore"):
            keep = np.isfinite(scaled).all(axis=1) & (weights > 0)
            keep &= (np.abs(scaled) < _OFFSET - 1).all(axis=1)
        if not keep.all():
            scaled, points, colours, weights = scaled[keep], points[keep], colours[keep], weights[keep]
        if len(points) == 0:
            return 0
        keys = pack_keys(np.floor(scaled).astype(np.int64))

        order = np.argsort(keys)
        sorted_keys = keys[order]
        starts = np.concatenate([[0], np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1])
        batch_keys = sorted_keys[starts]
        w = weights[order]
        batch_weight = np.add.reduceat(w, starts)
        batch_count = np.diff(np.append(starts, len(order)))
        batch_wpos = np.add.reduceat(points[order] * w[:, None], starts, axis=0)
        batch_wcol = np.add.reduceat(colours[order].astype(np.float64) * w[:, None], starts, axis=0)

        where = np.searchsorted(self._keys, batch_keys)
        found = np.zeros(len(batch_keys), dtype=bool)
        inside = where < len(self._keys)
        found[inside] = self._keys[where[inside]] == batch_keys[inside]

        if found.any():
            idx = where[found]
            old = self._weights[idx]
            new = old + batch_weight[found]
            self._positions[idx] = (self._positions[idx] * old[:, None] + batch_wpos[found]) / new[:, None]
            self._colours[idx] = (self._colours[idx] * old[:, None] + batch_wcol[found]) / new[:, None]
            self._weights[idx] = new
            self._counts[idx] += batch_count[found]

        fresh = ~found
        n_new = int(fresh.sum())
        if n_new:
            at = where[fresh]
            wf = batch_weight[fresh]
            self._keys = np.insert(self._keys, at, batch_keys[fresh])
            self._positions = np.insert(self._positions, at, batch_wpos[fresh] / wf[:, None], axis=0)
            self._colours = np.insert(self._colours, at, (batch_wcol[fresh] / wf[:, None]).astype(np.float32), axis=0)
            self._weights = np.insert(self._weights, at, wf)
            self._counts = np.insert(self._counts, at, batch_count[fresh])
            self._instance_ids = np.insert(self._instance_ids, at, np.int32(-1))
            self._label_ids = np.insert(self._label_ids, at, np.int32(-1))
            self._label_scores = np.insert(self._label_scores, at, np.float32(0.0))
        self._version += 1
        self._enforce_budget()
        return n_new

    def set_fields(
        self,
        indices: np.ndarray,
        instance_ids: Optional[np.ndarray] = None,
        label_ids: Optional[np.ndarray] = None,
        label_scores: Optional[np.ndarray] = None,
    ) -> None:
        """Write instance / label fields of the voxels at ``indices`` (K,) (from ``lookup``/``nearest``).

        Each value is a scalar or a (K,) array; None leaves that field unchanged.
        """
        indices = np.asarray(indices)
        if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"indices must be a 1-D integer array, got shape {indices.shape} dtype {indices.dtype}")
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise ValueError(f"indices must lie in [0, {len(self)}); got range [{indices.min()}, {indices.max()}]")
        updates = []
        for name, values, dtype, target in (
            ("instance_ids", instance_ids, np.int32, self._instance_ids),
            ("label_ids", label_ids, np.int32, self._label_ids),
            ("label_scores", label_scores, np.float32, self._label_scores),
        ):
            if values is None:
                continue
            values = np.asarray(values)
            if values.shape not in ((), (len(indices),)):
                raise ValueError(f"{name} must be a scalar or have shape ({len(indices)},), got {values.shape}")
            if dtype is np.int32 and not np.issubdtype(values.dtype, np.integer):
                raise ValueError(f"{name} must be integers, got dtype {values.dtype}")
            if dtype is np.float32 and not np.isfinite(values).all():
                raise ValueError(f"{name} must be finite")
            updates.append((target, values.astype(dtype)))
        for target, values in updates:
            target[indices] = values
        if updates:
            self._version += 1

    def clear(self) -> None:
        """Remove every voxel (voxel size, budget and frame stay)."""
        self._reset_arrays()
        self._version += 1

    # ----------------------------------------------------------------- queries
    def lookup(self, points: np.ndarray) -> np.ndarray:
        """Index of the voxel containing each point (N, 3) -> (N,) int64, -1 where empty or invalid."""
        points = self._check_queries(points)
        out = np.full(len(points), -1, dtype=np.int64)
        cells, valid = self._cells(points)
        if len(self._keys) == 0 or not valid.any():
            return out
        out[valid] = self._find(pack_keys(cells[valid]))
        return out

    def contains(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool: does the voxel containing each point (N, 3) exist?"""
        return self.lookup(points) >= 0

    def nearest(self, points: np.ndarray, max_distance: float) -> tuple[np.ndarray, np.ndarray]:
        """Nearest voxel (by its mean position) within ``max_distance`` of each query point.

        Exact within the radius: every voxel whose cell can hold a position that close is checked.
        ``max_distance`` may reach ``6 * voxel_size`` (the cost grows with its cube).

        Args:
            points: (N, 3) query points.
        Returns:
            indices (N,) int64 (-1 where none within reach), distances (N,) float64 (inf there).
        """
        return self._search(self._check_queries(points), max_distance, first_only=False)

    def has_neighbour(self, points: np.ndarray, max_distance: float) -> np.ndarray:
        """(N,) bool: is any voxel mean within ``max_distance`` of each point (N, 3)?

        Same reach as ``nearest`` but faster: a query stops at the first voxel found.
        """
        return self._search(self._check_queries(points), max_distance, first_only=True)[0] >= 0

    def to_arrays(self) -> VoxelArrays:
        """Copies of all per-voxel data (positions as float32, colours rounded to uint8)."""
        return VoxelArrays(
            positions=self._positions.astype(np.float32),
            colours=np.clip(np.rint(self._colours), 0, 255).astype(np.uint8),
            weights=self._weights.astype(np.float32),
            counts=self._counts.copy(),
            instance_ids=self._instance_ids.copy(),
            label_ids=self._label_ids.copy(),
            label_scores=self._label_scores.copy(),
        )

    # ----------------------------------------------------------------- state (persistence)
    def export_state(self) -> dict[str, np.ndarray]:
        """Copies of the exact internal arrays, keyed by ``STATE_FIELDS``."""
        return {name: getattr(self, "_" + name).copy() for name in STATE_FIELDS}

    @classmethod
    def from_state(
        cls,
        state: dict[str, np.ndarray],
        voxel_size: float,
        max_points: Optional[int] = None,
        frame_id: str = "map",
    ) -> "VoxelMap":
        """Build a map from ``export_state`` arrays, validating every one (ValueError on any problem).

        The budget is not applied here: a map loaded with a smaller ``max_points`` coarsens on its
        next ``integrate``.
        """
        voxel_map = cls(voxel_size, max_points, frame_id)
        missing = [name for name in STATE_FIELDS if name not in state]
        if missing:
            raise ValueError(f"map state lacks {missing}")
        keys = np.asarray(state["keys"])
        m = keys.shape[0] if keys.ndim == 1 else -1
        specs = {
            "keys": ((m,), np.int64),
            "positions": ((m, 3), np.float64),
            "colours": ((m, 3), np.float32),
            "weights": ((m,), np.float64),
            "counts": ((m,), np.int64),
            "instance_ids": ((m,), np.int32),
            "label_ids": ((m,), np.int32),
            "label_scores": ((m,), np.float32),
        }
        arrays = {}
        for name, (shape, dtype) in specs.items():
            array = np.asarray(state[name])
            if array.shape != shape or array.dtype != dtype:
                raise ValueError(f"{name} must be {np.dtype(dtype).name} with shape {shape}, got "
                                 f"{array.dtype.name} {array.shape}")
            arrays[name] = np.array(array, copy=True)
        if m and ((keys < 0).any() or (np.diff(keys) <= 0).any()):
            raise ValueError("keys must be non-negative, strictly increasing (sorted, no duplicates)")
        for name in ("positions", "colours", "weights", "label_scores"):
            if not np.isfinite(arrays[name]).all():
                raise ValueError(f"{name} must be finite")
        if m and (arrays["colours"].min() < 0 or arrays["colours"].max() > 255):
            raise ValueError("colours must lie in [0, 255]")
        if m and ((arrays["weights"] <= 0).any() or (arrays["counts"] < 1).any()):
            raise ValueError("weights must be > 0 and counts >= 1")
        # Each mean position must lie in its own voxel (a small tolerance absorbs rounding at faces).
        if m:
            low = unpack_keys(keys) * voxel_map._voxel_size
            slack = 1e-6 * voxel_map._voxel_size
            rel = arrays["positions"] - low
            if (rel < -slack).any() or (rel > voxel_map._voxel_size + slack).any():
                raise ValueError("positions do not lie in the voxels their keys name (wrong voxel_size?)")
        for name, array in arrays.items():
            setattr(voxel_map, "_" + name, array)
        return voxel_map

    # ----------------------------------------------------------------- internals
    def _reset_arrays(self) -> None:
        self._keys = np.empty(0, dtype=np.int64)
        self._positions = np.empty((0, 3), dtype=np.float64)
        self._colours = np.empty((0, 3), dtype=np.float32)
        self._weights = np.empty(0, dtype=np.float64)
        self._counts = np.empty(0, dtype=np.int64)
        self._instance_ids = np.empty(0, dtype=np.int32)
        self._label_ids = np.empty(0, dtype=np.int32)
        self._label_scores = np.empty(0, dtype=np.float32)

    @staticmethod
    def _check_batch(points, colours, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        points = np.asarray(points)
        if points.ndim != 2 or points.shape[1] != 3 or not np.issubdtype(points.dtype, np.number):
            raise ValueError(f"points must be a numeric (N, 3) array, got {points.dtype} {points.shape}")
        colours = np.asarray(colours)
        if colours.shape != points.shape or colours.dtype != np.uint8:
            raise ValueError(f"colours must be uint8 with shape {points.shape}, got {colours.dtype} {colours.shape}")
        if weights is None:
            weights = np.ones(len(points))
        else:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != (len(points),):
                raise ValueError(f"weights must have shape ({len(points)},), got {weights.shape}")
            if (weights < 0).any() or np.isinf(weights).any():
                raise ValueError("weights must be non-negative and finite (NaN weights skip their point)")
            weights = np.nan_to_num(weights, nan=0.0)
        return points.astype(np.float64, copy=False), colours, weights

    @staticmethod
    def _check_queries(points) -> np.ndarray:
        points = np.asarray(points)
        if points.ndim != 2 or points.shape[1] != 3 or not np.issubdtype(points.dtype, np.number):
            raise ValueError(f"points must be a numeric (N, 3) array, got {points.dtype} {points.shape}")
        return points.astype(np.float64, copy=False)

    def _cells(self, points: np.ndarray, margin: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Voxel indices (N, 3) of points and a mask of those that are finite and inside the key range."""
        scaled = points / self._voxel_size
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(scaled).all(axis=1) & (np.abs(scaled) < _OFFSET - 1 - margin).all(axis=1)
        cells = np.zeros(points.shape, dtype=np.int64)
        cells[valid] = np.floor(scaled[valid]).astype(np.int64)
        return cells, valid

    def _find(self, keys: np.ndarray) -> np.ndarray:
        """Index of each key (K,) in the map, -1 where absent."""
        if len(self._keys) == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        where = np.searchsorted(self._keys, keys)
        where[where == len(self._keys)] = 0
        return np.where(self._keys[where] == keys, where, -1)

    def _search(self, points: np.ndarray, max_distance: float, first_only: bool) -> tuple[np.ndarray, np.ndarray]:
        """Voxel within ``max_distance`` of each point: the nearest one, or any one if ``first_only``."""
        if not (np.isfinite(max_distance) and max_distance >= 0):
            raise ValueError(f"max_distance must be a finite number >= 0, got {max_distance}")
        radius = int(np.ceil(max_distance / self._voxel_size))
        if radius > _MAX_NEIGHBOUR_RADIUS:
            raise ValueError(
                f"max_distance {max_distance} spans {radius} voxels; at most {_MAX_NEIGHBOUR_RADIUS} are supported"
            )
        best_index = np.full(len(points), -1, dtype=np.int64)
        best_dist = np.full(len(points), np.inf)
        cells, valid = self._cells(points, margin=radius + 1)
        if len(self._keys) == 0 or not valid.any():
            return best_index, best_dist
        queries = np.flatnonzero(valid)
        span = np.arange(-radius, radius + 1)
        offsets = np.stack(np.meshgrid(span, span, span, indexing="ij"), axis=-1).reshape(-1, 3)
        # A point in a cell `o` cells away along an axis is at least (|o| - 1) voxels away on that axis:
        # visiting offsets by this bound (own cell first) lets most queries stop early.
        bound = np.linalg.norm(np.maximum(np.abs(offsets) - 1, 0), axis=1) * self._voxel_size
        visit = np.lexsort((np.abs(offsets).sum(axis=1), bound))
        for offset, lower in zip(offsets[visit], bound[visit]):
            if lower > max_distance:
                break
            open_ = best_index[queries] < 0 if first_only else best_dist[queries] > lower
            active = queries[open_]
            if len(active) == 0:
                break
            found = self._find(pack_keys(cells[active] + offset))
            hit = found >= 0
            active, found = active[hit], found[hit]
            dist = np.linalg.norm(self._positions[found] - points[active], axis=1)
            better = (dist < best_dist[active]) & (dist <= max_distance)
            best_dist[active[better]] = dist[better]
            best_index[active[better]] = found[better]
        return best_index, best_dist

    def _enforce_budget(self) -> None:
        while self._max_points is not None and len(self._keys) > self._max_points:
            self._coarsen()

    def _coarsen(self) -> None:
        """Double the voxel size, merging each 2x2x2 block of voxels into one."""
        parents = pack_keys(unpack_keys(self._keys) >> 1)  # arithmetic shift = floor division by 2
        # Sort by parent, heaviest child first, so the first row of each group carries its fields.
        order = np.lexsort((-self._weights, parents))
        sorted_parents = parents[order]
        starts = np.concatenate([[0], np.flatnonzero(sorted_parents[1:] != sorted_parents[:-1]) + 1])
        w = self._weights[order]
        total = np.add.reduceat(w, starts)
        self._positions = np.add.reduceat(self._positions[order] * w[:, None], starts, axis=0) / total[:, None]
        colours = np.add.reduceat(self._colours[order].astype(np.float64) * w[:, None], starts, axis=0)
        self._colours = (colours / total[:, None]).astype(np.float32)
        self._counts = np.add.reduceat(self._counts[order], starts)
        self._weights = total
        self._instance_ids = self._instance_ids[order][starts]
        self._label_ids = self._label_ids[order][starts]
        self._label_scores = self._label_scores[order][starts]
        self._keys = sorted_parents[starts]
        self._voxel_size *= 2.0
        self._version += 1
