import numpy as np
import pytest

from ov_mapping.mapping.voxel_map import VoxelMap, pack_keys, unpack_keys


def cloud(n, seed=0, low=-1.0, high=1.0):
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, (n, 3)), rng.integers(0, 256, (n, 3), dtype=np.uint8)


def test_keys_round_trip_and_sort_like_indices():
    idx = np.array([[-5, 3, 7], [0, 0, 0], [2**20 - 1, -(2**20), 5], [-1, -1, -1]])
    np.testing.assert_array_equal(unpack_keys(pack_keys(idx)), idx)
    order = np.argsort(pack_keys(idx))
    np.testing.assert_array_equal(order, np.lexsort(idx.T[::-1]))


def test_integrate_averages_positions_and_colours():
    vmap = VoxelMap(voxel_size=1.0)
    points = np.array([[0.2, 0.2, 0.2], [0.6, 0.4, 0.8], [1.5, 0.5, 0.5]])
    colours = np.array([[0, 0, 0], [100, 200, 50], [10, 10, 10]], dtype=np.uint8)
    assert vmap.integrate(points, colours, weights=np.array([1.0, 3.0, 1.0])) == 2
    assert len(vmap) == 2
    first = vmap.lookup(points[:1])[0]
    np.testing.assert_allclose(vmap.positions[first], [0.5, 0.35, 0.65])
    np.testing.assert_allclose(vmap.colours[first], [75, 150, 37.5])
    assert vmap.counts[first] == 2 and vmap.weights[first] == 4.0
    # A second pass on the same voxel is a running mean, not a new voxel.
    assert vmap.integrate(np.array([[0.1, 0.1, 0.1]]), np.array([[255, 255, 255]], np.uint8)) == 0
    np.testing.assert_allclose(vmap.positions[first], (np.array([0.5, 0.35, 0.65]) * 4 + 0.1) / 5)
    assert vmap.instance_ids[first] == -1 and vmap.label_ids[first] == -1


def test_integrate_matches_brute_force_means():
    points, colours = cloud(5000, seed=1)
    vmap = VoxelMap(0.1)
    for chunk in np.array_split(np.arange(5000), 4):
        vmap.integrate(points[chunk], colours[chunk])
    keys = pack_keys(np.floor(points / 0.1).astype(np.int64))
    unique = np.unique(keys)
    np.testing.assert_array_equal(vmap.keys, unique)
    inverse = np.searchsorted(unique, keys)
    means = np.stack([np.bincount(inverse, points[:, a]) for a in range(3)], 1) / np.bincount(inverse)[:, None]
    np.testing.assert_allclose(vmap.positions, means, atol=1e-12)
    assert vmap.counts.sum() == 5000


def test_invalid_rows_are_skipped_and_version_tracks_changes():
    vmap = VoxelMap(0.05)
    version = vmap.version
    points = np.array([[np.nan, 0, 0], [1e9, 0, 0], [0.0, 0.0, 0.0]])
    colours = np.zeros((3, 3), np.uint8)
    assert vmap.integrate(points, colours) == 1
    assert vmap.version > version
    version = vmap.version
    assert vmap.integrate(points[:2], colours[:2]) == 0
    assert vmap.version == version  # nothing valid: nothing changed
    vmap.set_fields(np.array([0]), instance_ids=4, label_ids=np.array([2]), label_scores=0.75)
    assert vmap.version > version
    assert (vmap.instance_ids[0], vmap.label_ids[0], vmap.label_scores[0]) == (4, 2, np.float32(0.75))
    version = vmap.version
    vmap.clear()
    assert len(vmap) == 0 and vmap.version > version


def test_queries_lookup_contains_nearest():
    points, colours = cloud(2000, seed=2)
    vmap = VoxelMap(0.05)
    vmap.integrate(points, colours)
    assert vmap.contains(points).all()
    assert not vmap.contains(np.array([[5.0, 5.0, 5.0]]))[0]
    queries = points[:200] + np.random.default_rng(3).normal(0, 0.03, (200, 3))
    index, dist = vmap.nearest(queries, max_distance=0.1)
    brute = np.linalg.norm(queries[:, None] - vmap.positions[None], axis=2)
    expected = np.where(brute.min(1) <= 0.1, brute.argmin(1), -1)
    np.testing.assert_array_equal(index, expected)
    np.testing.assert_allclose(dist[index >= 0], brute.min(1)[index >= 0])
    np.testing.assert_array_equal(vmap.has_neighbour(queries, 0.1), index >= 0)
    with pytest.raises(ValueError, match="voxels"):
        vmap.nearest(queries, max_distance=1.0)


def test_budget_coarsens_by_doubling_voxel_size():
    points, colours = cloud(20000, seed=4)
    vmap = VoxelMap(0.02, max_points=3000)
    vmap.integrate(points, colours)
    assert len(vmap) <= 3000
    assert vmap.voxel_size in (0.04, 0.08, 0.16, 0.32)
    assert vmap.voxel_size > 0.02
    # Coverage is kept: every input point is still inside an occupied voxel and no point is lost.
    assert vmap.contains(points).all()
    assert vmap.counts.sum() == 20000
    np.testing.assert_allclose(vmap.weights.sum(), 20000)
    # The merged means equal the means of the points at the coarse size.
    reference = VoxelMap(vmap.voxel_size)
    reference.integrate(points, colours)
    np.testing.assert_array_equal(reference.keys, vmap.keys)
    np.testing.assert_allclose(reference.positions, vmap.positions, atol=1e-9)
    np.testing.assert_allclose(reference.colours, vmap.colours, atol=1e-3)


def test_coarsening_keeps_fields_of_heaviest_voxel():
    vmap = VoxelMap(1.0, max_points=1)
    vmap.integrate(np.array([[0.5, 0.5, 0.5]]), np.zeros((1, 3), np.uint8), weights=np.array([5.0]))
    vmap.set_fields(np.array([0]), instance_ids=7, label_ids=3, label_scores=0.9)
    vmap.integrate(np.array([[1.5, 0.5, 0.5]]), np.zeros((1, 3), np.uint8), weights=np.array([1.0]))
    assert len(vmap) == 1 and vmap.voxel_size == 2.0
    assert (vmap.instance_ids[0], vmap.label_ids[0]) == (7, 3)
    np.testing.assert_allclose(vmap.positions[0], [(0.5 * 5 + 1.5) / 6, 0.5, 0.5])


def test_to_arrays_types():
    points, colours = cloud(100, seed=5)
    vmap = VoxelMap(0.5)
    vmap.integrate(points, colours)
    arrays = vmap.to_arrays()
    assert arrays.positions.dtype == np.float32 and arrays.positions.shape == (len(vmap), 3)
    assert arrays.colours.dtype == np.uint8
    assert arrays.instance_ids.dtype == np.int32 and arrays.label_scores.dtype == np.float32
    with pytest.raises(ValueError):
        vmap.positions[0, 0] = 1.0  # views are read-only


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: VoxelMap(0.0), "voxel_size"),
        (lambda: VoxelMap(float("nan")), "voxel_size"),
        (lambda: VoxelMap(0.1, max_points=0), "max_points"),
        (lambda: VoxelMap(0.1).integrate(np.zeros((3, 2)), np.zeros((3, 3), np.uint8)), "points"),
        (lambda: VoxelMap(0.1).integrate(np.zeros((3, 3)), np.zeros((3, 3))), "uint8"),
        (lambda: VoxelMap(0.1).integrate(np.zeros((3, 3)), np.zeros((3, 3), np.uint8), np.ones(2)), "weights"),
        (lambda: VoxelMap(0.1).set_fields(np.array([0]), instance_ids=1), "indices"),
    ],
)
def test_bad_input_raises(make, message):
    with pytest.raises(ValueError, match=message):
        make()
