"""InstanceMap: association across views, View-wise Instance Partition, fusion, labels, bounds, bad input."""

import numpy as np
import pytest

from ov_mapping.core.types import Segment
from ov_mapping.mapping.instances import (
    InstanceMap,
    compute_oriented_box,
    compute_voxel_keys,
    pack_voxel_coords,
    unpack_voxel_keys,
)

DIM = 16


def unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def cube(centre, size, n=600, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.asarray(centre) + (rng.random((n, 3)) - 0.5) * np.asarray(size)).astype(np.float32)


def segment(points, descriptor, segment_id=0, label="", label_score=0.0, score=1.0, clip=None) -> Segment:
    return Segment(
        segment_id=segment_id,
        mask=np.zeros((4, 4), dtype=bool),
        points=np.asarray(points, dtype=np.float32),
        descriptor=np.asarray(descriptor, dtype=np.float32),
        clip_embedding=clip,
        label=label,
        label_score=label_score,
        score=score,
    )


def basis(i: int) -> np.ndarray:
    out = np.zeros(DIM, dtype=np.float32)
    out[i] = 1.0
    return out


def noisy(descriptor, seed, amount=0.05) -> np.ndarray:
    return unit(descriptor + amount * np.random.default_rng(seed).normal(size=DIM))


def test_voxel_keys_round_trip_and_neighbour_offsets():
    coords = np.array([[0, 0, 0], [-5, 7, 1000], [-(2**20) + 1, 2**20 - 1, 3]], dtype=np.int64)
    assert np.array_equal(unpack_voxel_keys(pack_voxel_coords(coords)), coords)
    step = pack_voxel_coords(np.array([[1, -1, 1]])) - pack_voxel_coords(np.array([[0, 0, 0]]))
    assert pack_voxel_coords(coords[:1])[0] + step[0] == pack_voxel_coords(np.array([[1, -1, 1]]))[0]
    with pytest.raises(ValueError, match="voxel key range"):
        compute_voxel_keys(np.array([[1e6, 0.0, 0.0]]), 0.05)


def test_same_object_seen_in_three_views_is_one_instance():
    instance_map = InstanceMap(voxel_size=0.05, merge_every=0)
    descriptor = unit(np.arange(DIM) + 1.0)
    for view in range(3):
        result = instance_map.add_segments(view, [segment(cube([1, 2, 0.5], 0.4, seed=view), noisy(descriptor, view))])
        assert result.created == (1 if view == 0 else 0)
    assert len(instance_map) == 1
    instance = next(instance_map.instances())
    assert instance.observation_count == 3
    assert instance.num_points == 3 * 600
    assert np.allclose(instance.centroid, [1, 2, 0.5], atol=0.03)
    assert float(instance.descriptor @ descriptor) > 0.99
    assert np.all(instance.aabb_min >= np.array([0.8, 1.8, 0.3]) - 1e-6)
    assert np.all(instance.aabb_max <= np.array([1.2, 2.2, 0.7]) + 1e-6)


def test_touching_objects_with_different_descriptors_stay_two_instances():
    instance_map = InstanceMap(voxel_size=0.05, merge_every=1)
    left, right = basis(0), basis(1)
    for view in range(3):
        # The two boxes touch at x = 0.5 and are seen in separate segments of each view.
        a = segment(cube([0.25, 0, 0], [0.5, 0.5, 0.5], seed=10 + view), noisy(left, view), segment_id=0)
        b = segment(cube([0.75, 0, 0], [0.5, 0.5, 0.5], seed=20 + view), noisy(right, view + 5), segment_id=1)
        instance_map.add_segments(view, [a, b])
    # A later view whose mask spilled over the border still joins the object its descriptor matches.
    spill = np.concatenate([cube([0.25, 0, 0], [0.5, 0.5, 0.5], seed=99), cube([0.55, 0, 0], [0.1, 0.5, 0.5], seed=98)])
    result = instance_map.add_segments(3, [segment(spill, noisy(right, 42))])
    assert len(instance_map) == 2
    by_descriptor = {int(np.argmax(i.descriptor)): i for i in instance_map.instances()}
    assert by_descriptor[0].observation_count == 3
    assert by_descriptor[1].observation_count == 4
    assert result.instance_ids == (by_descriptor[1].instance_id,)


def test_segments_of_one_view_never_merge_with_each_other():
    instance_map = InstanceMap(merge_every=1)
    points, descriptor = cube([0, 0, 0], 0.4), unit(np.ones(DIM))
    result = instance_map.add_segments(7, [segment(points, descriptor, 0), segment(points, descriptor, 1)])
    assert result.created == 2 and len(set(result.instance_ids)) == 2
    # A second call for the same keyframe cannot join them either, and the merge pass keeps them apart.
    result = instance_map.add_segments(7, [segment(points, descriptor, 2)])
    assert result.created == 1
    assert instance_map.merge_instances() == 0
    assert len(instance_map) == 3
    # A new view joins exactly one of them.
    result = instance_map.add_segments(8, [segment(points, descriptor, 0)])
    assert result.created == 0 and len(instance_map) == 3


def test_greedy_assignment_gives_a_contested_instance_to_the_best_segment():
    instance_map = InstanceMap(similarity_threshold=0.75, merge_every=0)
    points = cube([0, 0, 0], 0.4)
    d0 = unit(basis(0))
    first = instance_map.add_segments(0, [segment(points, d0, 0)]).instance_ids[0]
    weaker = unit(basis(0) + 0.75 * basis(1))  # cos 0.8: admissible, but worse than the next one
    stronger = unit(basis(0) + 0.1 * basis(1))  # cos 0.995
    result = instance_map.add_segments(1, [segment(points, weaker, 0), segment(points, stronger, 1)])
    assert result.instance_ids[1] == first
    assert result.instance_ids[0] != first and result.created == 1


def test_descriptor_is_score_and_support_weighted_mean():
    instance_map = InstanceMap(voxel_size=0.1, similarity_threshold=0.0, merge_every=0)
    points = cube([0, 0, 0], 0.4, n=2000)
    support = len(np.unique(compute_voxel_keys(points, 0.1)))
    d1, d2 = unit(basis(0) + basis(1)), unit(basis(0) + 0.2 * basis(2))
    instance_map.add_segments(0, [segment(points, d1, score=1.0)])
    instance_map.add_segments(1, [segment(points, d2, score=0.25)])
    expected = unit(1.0 * support * d1 + 0.25 * support * d2)
    assert np.allclose(next(instance_map.instances()).descriptor, expected, atol=1e-5)


def test_clip_embedding_source_keeps_its_own_running_mean():
    instance_map = InstanceMap(semantic_source="clip_embedding", merge_every=0)
    points, descriptor = cube([0, 0, 0], 0.4), unit(np.ones(DIM))
    instance_map.add_segments(0, [segment(points, descriptor, clip=unit([1.0, 0.0, 0.0, 0.0]))])
    instance_map.add_segments(1, [segment(points, descriptor, clip=unit([0.0, 1.0, 0.0, 0.0]))])
    ids, embeddings = instance_map.embedding_matrix()
    assert embeddings.shape == (1, 4)
    assert np.allclose(embeddings[0], unit([1.0, 1.0, 0.0, 0.0]), atol=1e-5)
    assert np.allclose(instance_map.descriptor_matrix()[1][0], descriptor, atol=1e-5)
    with pytest.raises(ValueError, match="clip_embedding is missing"):
        instance_map.add_segments(2, [segment(points, descriptor)])


def test_cross_view_consensus_relabels_the_minority_view():
    instance_map = InstanceMap(merge_every=0)
    points, descriptor = cube([0, 0, 0], 0.4), unit(np.ones(DIM))
    labels = [("chair", 0.9), ("chair", 0.8), ("sofa", 0.95), ("chair", 0.7), ("", 0.0)]
    for view, (label, label_score) in enumerate(labels):
        seg = segment(points, descriptor, segment_id=10 + view, label=label, label_score=label_score)
        instance_map.add_segments(view, [seg])
    instance = next(instance_map.instances())
    assert instance.label == "chair"
    # (0.9 + 0.8 + 0.7) / 4 labelled views of score 1.
    assert instance.label_score == pytest.approx(2.4 / 4)
    assert instance.label_votes == pytest.approx({"chair": 2.4, "sofa": 0.95})
    corrections = instance_map.relabel_views()
    assert [(c.keyframe_id, c.segment_id, c.previous_label, c.label) for c in corrections] == [
        (2, 12, "sofa", "chair"),
        (4, 14, "", "chair"),
    ]
    assert len(instance_map.relabel_views(only_changed=False)) == 5


def test_periodic_merge_joins_instances_that_now_agree():
    instance_map = InstanceMap(similarity_threshold=0.95, merge_similarity_threshold=0.7, merge_every=2)
    points = cube([0, 0, 0], 0.4)
    a = unit(basis(0) + 0.6 * basis(1))
    b = unit(basis(0) + 0.0 * basis(1))
    instance_map.add_segments(0, [segment(points, a, label="table", label_score=1.0)])
    assert len(instance_map) == 1
    instance_map.add_segments(1, [segment(points, b, label="desk", label_score=0.5)])  # cos 0.86: too low to join
    assert len(instance_map) == 1  # ... but the merge pass after the 2nd call joined them
    instance = next(instance_map.instances())
    assert instance.instance_id == 0 and instance.observation_count == 2
    assert instance.label == "table" and set(instance.view_labels) == {0, 1}
    assert instance_map.stats.instances_merged == 1


def test_points_per_instance_are_bounded_by_voxel_downsampling():
    instance_map = InstanceMap(voxel_size=0.02, max_points_per_instance=50, merge_every=0)
    instance_map.add_segments(0, [segment(cube([0, 0, 0], 1.0, n=5000), unit(np.ones(DIM)))])
    instance = next(instance_map.instances())
    assert len(instance.points) <= 50
    assert instance.voxel_size > 0.02
    assert instance.num_points == 5000
    assert np.allclose(instance.centroid, 0.0, atol=0.05)


def test_eviction_drops_least_observed_then_least_recent():
    instance_map = InstanceMap(max_instances=2, merge_every=0)
    d = [unit(basis(i)) for i in range(4)]
    a = instance_map.add_segments(0, [segment(cube([0, 0, 0], 0.3), d[0])]).instance_ids[0]
    instance_map.add_segments(1, [segment(cube([0, 0, 0], 0.3), d[0])])  # a: 2 observations
    b = instance_map.add_segments(2, [segment(cube([5, 0, 0], 0.3), d[1])]).instance_ids[0]
    c = instance_map.add_segments(3, [segment(cube([9, 0, 0], 0.3), d[2])]).instance_ids[0]
    assert a in instance_map and c in instance_map and b not in instance_map
    assert instance_map.stats.instances_evicted == 1
    # More new segments in one call than room: the ones that cannot fit are dropped, not the call's own instances.
    result = instance_map.add_segments(4, [segment(cube([20 + 3 * i, 0, 0], 0.3), d[3], i) for i in range(3)])
    assert result.instance_ids.count(-1) == 1
    assert instance_map.stats.segments_dropped_capacity == 1
    assert len(instance_map) == 2


def test_matrix_rows_follow_ids_after_removal():
    instance_map = InstanceMap(merge_every=0)
    for i in range(4):
        instance_map.add_segments(i, [segment(cube([3 * i, 0, 0], 0.3), unit(basis(i)))])
    instance_map.remove(1)
    ids, embeddings = instance_map.embedding_matrix()
    assert sorted(ids.tolist()) == [0, 2, 3]
    for instance_id, row in zip(ids.tolist(), embeddings):
        assert int(np.argmax(row)) == instance_id
    assert not embeddings.flags.writeable
    with pytest.raises(KeyError):
        instance_map.get(1)


def test_oriented_box_recovers_a_rotated_box():
    rng = np.random.default_rng(3)
    local = (rng.random((4000, 3)) - 0.5) * np.array([2.0, 0.6, 0.2])
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    points = local @ rotation.T + np.array([1.0, 2.0, 3.0])
    centre, axes, size = compute_oriented_box(points, np.ones(len(points)))
    assert np.allclose(centre, [1, 2, 3], atol=0.02)
    assert np.allclose(size, [2.0, 0.6, 0.2], atol=0.02)
    assert abs(axes[:, 0] @ rotation[:, 0]) > 0.999
    assert np.linalg.det(axes) == pytest.approx(1.0)


def test_bad_input_raises_and_leaves_the_map_unchanged():
    instance_map = InstanceMap(merge_every=0)
    good = segment(cube([0, 0, 0], 0.4), unit(np.ones(DIM)))
    instance_map.add_segments(0, [good])
    version, before = instance_map.version, next(instance_map.instances())
    bad_cases = [
        ([good, segment(cube([0, 0, 0], 0.4), np.full(DIM, np.nan))], "descriptor must be finite"),
        ([good, segment(cube([0, 0, 0], 0.4), np.zeros(DIM))], "non-zero"),
        ([segment(cube([0, 0, 0], 0.4), unit(np.ones(DIM + 1)))], "dimension 17, the map uses 16"),
        ([segment(np.zeros((5, 2)), unit(np.ones(DIM)))], r"shape \(N, 3\)"),
        ([segment(cube([0, 0, 0], 0.4), unit(np.ones(DIM)), score=float("nan"))], "score must be finite"),
        (["not a segment"], "is not a Segment"),
        ([segment(cube([0, 0, 0], 0.4), unit(np.ones(DIM)), score=None)], "must be numbers"),
        ([segment(cube([0, 0, 0], 0.4), unit(np.ones(DIM)), segment_id="a")], "segment_id must be an int"),
    ]
    for segments, message in bad_cases:
        with pytest.raises(ValueError, match=message):
            instance_map.add_segments(1, segments)
    with pytest.raises(ValueError, match="keyframe_id"):
        instance_map.add_segments("1", [good])
    assert instance_map.version == version and len(instance_map) == 1
    after = next(instance_map.instances())
    assert after.observation_count == before.observation_count
    assert np.array_equal(after.points, before.points)


def test_nan_points_are_dropped_and_empty_segments_skipped():
    instance_map = InstanceMap(min_segment_points=10, merge_every=0)
    points = cube([0, 0, 0], 0.4, n=100)
    points[:30] = np.nan
    result = instance_map.add_segments(
        0,
        [
            segment(points, unit(np.ones(DIM)), 0),
            segment(np.zeros((0, 3)), unit(np.ones(DIM)), 1),
            segment(np.full((20, 3), np.inf), unit(np.ones(DIM)), 2),
        ],
    )
    assert result.instance_ids[1:] == (-1, -1) and result.skipped == 2
    assert instance_map.get(result.instance_ids[0]).num_points == 70
    assert instance_map.stats.points_dropped_nonfinite == 50
    assert instance_map.stats.segments_skipped == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"voxel_size": 0}, "voxel_size"),
        ({"overlap_threshold": 1.5}, "overlap_threshold"),
        ({"similarity_threshold": -0.1}, "similarity_threshold"),
        ({"max_instances": 0}, "max_instances"),
        ({"merge_every": -1}, "merge_every"),
        ({"semantic_source": "dino"}, "semantic_source"),
    ],
)
def test_constructor_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InstanceMap(**kwargs)
