"""Text queries with canonical-negative normalisation, top-k / min_score, goal poses, and bad queries."""

import numpy as np
import pytest

from ov_mapping.core.types import Segment
from ov_mapping.mapping.instances import InstanceMap
from ov_mapping.mapping.query import (
    QueryIndex, compute_goal_pose, compute_relevancy, find_blocked_candidates, query_instances, query_text,
)
from ov_mapping.mapping.vocabulary import CANONICAL_NEGATIVES, Vocabulary

NEGATIVES = ("object", "things", "stuff", "texture")


def unit(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return (values / np.linalg.norm(values)).astype(np.float32)


# Crafted 6-d "CLIP" space: e0 chair-ness, e1 sofa-ness, e2 lamp-ness, e3 what texts share, e4 the negatives.
TEXTS = {
    "chair": unit([0.5, 0.3, 0, 0.8, 0, 0]),
    "sofa": unit([0.6, 0.9, 0, 0.2, 0, 0]),
    "lamp": unit([0, 0, 1, 0.3, 0, 0]),
    **{name: unit([0, 0, 0, 0, 1, 0.1 * i]) for i, name in enumerate(NEGATIVES)},
}
CHAIR, SOFA, LAMP = unit([1, 0, 0, 0, 0, 0]), unit([0, 1, 0, 0, 0, 0]), unit([0, 0, 1, 0, 0, 0])
GENERIC = unit([0, 0, 0, 1, 1, 0])  # close to every text, closer still to the negatives


def embed(texts):
    return np.stack([TEXTS[text] for text in texts])


def make_map(embeddings, spacing=3.0) -> tuple[InstanceMap, list]:
    instance_map = InstanceMap(merge_every=0)
    rng = np.random.default_rng(0)
    ids = []
    for i, embedding in enumerate(embeddings):
        points = np.array([spacing * i, 0.0, 0.5]) + (rng.random((200, 3)) - 0.5) * 0.4
        segment = Segment(i, np.zeros((2, 2), bool), points.astype(np.float32), embedding)
        ids.append(instance_map.add_segments(i, [segment]).instance_ids[0])
    return instance_map, ids


def test_relevancy_is_the_min_over_negatives_of_pairwise_softmax():
    rng = np.random.default_rng(1)
    embeddings = np.stack([unit(rng.normal(size=6)) for _ in range(5)])
    query, negatives = unit(rng.normal(size=6)), np.stack([unit(rng.normal(size=6)) for _ in range(4)])
    relevancy, similarity = compute_relevancy(embeddings, query, negatives, temperature=10.0)
    for e, r, s in zip(embeddings, relevancy, similarity):
        pairwise = [np.exp(10 * (e @ query)) / (np.exp(10 * (e @ query)) + np.exp(10 * (e @ n))) for n in negatives]
        assert r == pytest.approx(min(pairwise), rel=1e-5)
        assert s == pytest.approx(e @ query, abs=1e-6)


def test_query_ranks_the_right_instance_first_where_raw_cosine_would_not():
    instance_map, (chair, sofa, lamp, generic) = make_map([CHAIR, SOFA, LAMP, GENERIC])
    vocabulary = Vocabulary(embed)
    # Raw cosine to "chair" is highest for the generic instance; against the negatives it drops below 0.5.
    assert TEXTS["chair"] @ GENERIC > TEXTS["chair"] @ CHAIR
    result = query_text(instance_map, vocabulary, "chair", top_k=5, min_score=0.55)
    assert result.instance_ids.tolist() == [chair, sofa]  # the lamp scores 0.5: no closer than the negatives
    assert np.all(np.diff(result.scores) <= 0)
    all_scores = query_text(instance_map, vocabulary, "chair", top_k=5, min_score=0.0)
    assert generic in all_scores.instance_ids.tolist() and len(all_scores) == 4
    assert query_text(instance_map, vocabulary, "sofa").instance_ids[0] == sofa
    assert query_text(instance_map, vocabulary, "lamp").instance_ids[0] == lamp


def test_top_k_and_min_score():
    rng = np.random.default_rng(2)
    query = unit(rng.normal(size=6))
    embeddings = [unit(query + 0.3 * i * rng.normal(size=6)) for i in range(12)]
    instance_map, ids = make_map(embeddings)
    negatives = np.stack([TEXTS[n] for n in NEGATIVES])
    full = query_instances(instance_map, query, negatives, top_k=12, min_score=0.0)
    top3 = query_instances(instance_map, query, negatives, top_k=3, min_score=0.0)
    assert top3.instance_ids.tolist() == full.instance_ids[:3].tolist()
    threshold = float(full.scores[5])
    above = query_instances(instance_map, query, negatives, top_k=12, min_score=threshold)
    assert np.all(above.scores >= threshold) and len(above) == np.count_nonzero(full.scores >= threshold)
    assert len(query_instances(instance_map, query, negatives, top_k=5, min_score=1.0)) == 0


def test_empty_map_gives_an_empty_result():
    result = query_text(InstanceMap(), Vocabulary(embed), "chair")
    assert len(result) == 0 and result.instance_ids.dtype == np.int64


def test_bad_queries_raise_clear_errors():
    instance_map, _ = make_map([CHAIR])
    vocabulary = Vocabulary(embed)
    negatives = vocabulary.negative_embeddings
    with pytest.raises(ValueError, match="text is empty"):
        query_text(instance_map, vocabulary, "   ")
    with pytest.raises(ValueError, match="10000 characters long, the limit is 256"):
        query_text(instance_map, vocabulary, "x" * 10000)
    with pytest.raises(ValueError, match="dimension 5, the map's embeddings have 6"):
        query_instances(instance_map, np.ones(5), np.ones((4, 5)))
    with pytest.raises(ValueError, match="finite"):
        query_instances(instance_map, np.full(6, np.nan), negatives)
    with pytest.raises(ValueError, match="top_k"):
        query_instances(instance_map, CHAIR, negatives, top_k=0)
    with pytest.raises(ValueError, match="min_score"):
        query_instances(instance_map, CHAIR, negatives, min_score=1.5)
    with pytest.raises(ValueError, match="M >= 1"):
        query_instances(instance_map, CHAIR, np.zeros((0, 6)))


def test_canonical_negatives_are_lerfs():
    assert CANONICAL_NEGATIVES == NEGATIVES


# --------------------------------------------------------------------------------------------------- goal pose


def box_instance(centre=(2.0, 1.0, 0.4), size=(0.6, 0.4, 0.8)):
    rng = np.random.default_rng(4)
    points = np.asarray(centre) + (rng.random((2000, 3)) - 0.5) * np.asarray(size)
    instance_map = InstanceMap()
    instance_map.add_segments(0, [Segment(0, np.zeros((2, 2), bool), points.astype(np.float32), unit(np.ones(6)))])
    return next(instance_map.instances())


def footprint_radius(instance):
    half = instance.obb_size / 2
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
    corners = instance.obb_centre + (signs * half) @ instance.obb_rotation.T
    return np.linalg.norm(corners[:, :2] - instance.centroid[:2], axis=1).max()


def assert_faces_object_from_outside(goal, instance, standoff):
    assert goal.position[2] == pytest.approx(0.0)
    offset = instance.centroid[:2] - goal.position[:2]
    assert np.linalg.norm(offset) == pytest.approx(footprint_radius(instance) + standoff)
    forward = goal.matrix[:3, 0]
    assert forward[:2] @ (offset / np.linalg.norm(offset)) == pytest.approx(1.0)
    assert goal.matrix[:3, 2] == pytest.approx([0, 0, 1])
    x, y, z, w = goal.quaternion
    assert np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)) == pytest.approx(np.arctan2(offset[1], offset[0]))


def test_goal_pose_stands_off_the_box_on_the_trajectory_side_facing_it():
    instance = box_instance()
    trajectory = np.array([[-1.0, 1.0, 1.2], [0.0, 1.0, 1.2]])
    goal = compute_goal_pose(instance, trajectory=trajectory, standoff=0.5)
    assert_faces_object_from_outside(goal, instance, 0.5)
    assert goal.free
    assert goal.position[0] < instance.aabb_min[0]  # on the -x side, where the camera was


def test_goal_pose_avoids_occupied_sides_and_reports_when_boxed_in():
    instance = box_instance()
    poses = np.tile(np.eye(4), (2, 1, 1))
    poses[:, :3, 3] = [[-1.0, 1.0, 1.2], [0.0, 1.0, 1.2]]
    # A wall of obstacles just behind the -x side of the object.
    ys = np.linspace(-1, 3, 200)
    wall = np.stack([np.full_like(ys, 1.0), ys, np.full_like(ys, 0.5)], axis=1)
    goal = compute_goal_pose(instance, trajectory=poses, obstacles=wall, standoff=0.5, robot_radius=0.3)
    assert goal.free
    assert np.min(np.linalg.norm(wall[:, :2] - goal.position[:2], axis=1)) > 0.3
    assert_faces_object_from_outside(goal, instance, 0.5)
    everywhere = np.stack(np.meshgrid(np.linspace(0, 4, 81), np.linspace(-1, 3, 81), [0.5]), -1).reshape(-1, 3)
    assert not compute_goal_pose(instance, trajectory=poses, obstacles=everywhere, standoff=0.5).free


def test_goal_pose_uses_room_centre_without_trajectory_and_validates():
    instance = box_instance()
    goal = compute_goal_pose(instance, room_centre=np.array([2.0, 5.0, 0.0]), standoff=0.4)
    assert goal.position[1] > instance.aabb_max[1]
    assert_faces_object_from_outside(goal, instance, 0.4)
    with pytest.raises(ValueError, match="standoff"):
        compute_goal_pose(instance, standoff=0.0)
    with pytest.raises(ValueError, match="up must be non-zero"):
        compute_goal_pose(instance, up=(0, 0, 0))
    with pytest.raises(ValueError, match="trajectory"):
        compute_goal_pose(instance, trajectory=np.zeros((3, 2)))


def test_query_index_refreshes_only_what_changed_and_matches_a_fresh_query():
    rng = np.random.default_rng(5)
    embeddings = [unit(rng.normal(size=6)) for _ in range(8)]
    instance_map, ids = make_map(embeddings)
    negatives = np.stack([TEXTS[n] for n in NEGATIVES])
    index = QueryIndex(instance_map)
    query = unit(rng.normal(size=6))

    def same_as_fresh():
        cached = index.query(query, negatives, top_k=8, min_score=0.0)
        fresh = query_instances(instance_map, query, negatives, top_k=8, min_score=0.0)
        assert cached.instance_ids.tolist() == fresh.instance_ids.tolist()
        assert np.allclose(cached.scores, fresh.scores)

    same_as_fresh()
    # Change one instance's embedding, remove another (the last row moves), add a new one.
    points = instance_map.get(ids[2]).points
    changed = unit(embeddings[2] + 0.5 * TEXTS["stuff"])
    instance_map.add_segments(100, [Segment(0, np.zeros((2, 2), bool), points, changed)])
    instance_map.remove(ids[0])
    new = np.array([40.0, 0.0, 0.5]) + (rng.random((100, 3)) - 0.5) * 0.4
    instance_map.add_segments(101, [Segment(0, np.zeros((2, 2), bool), new, unit(rng.normal(size=6)))])
    stamps, current = instance_map.embedding_changes()
    assert np.count_nonzero(stamps > current - 3) == 3  # the changed row, the moved row, the new row
    same_as_fresh()
    other_negatives = negatives[::-1] * 0.5 + 0.1  # other negatives: the cache must rebuild
    cached = index.query(query, other_negatives, top_k=8, min_score=0.0)
    fresh = query_instances(instance_map, query, other_negatives, top_k=8, min_score=0.0)
    assert np.allclose(cached.scores, fresh.scores)


def test_blocked_callable_and_neighbour_filter_match_the_brute_force_obstacle_test():
    rng = np.random.default_rng(11)
    instance = box_instance(np.array([1.0, 2.0, 0.4]), np.array([0.6, 0.4, 0.8]))
    trajectory = rng.random((50, 3)) * 4.0
    seen = set()
    for trial in range(20):
        cloud = rng.random((300, 3)) * [4.0, 5.0, 2.5] - [1.0, 0.5, 0.2]
        up = (0.0, 0.0, 1.0) if trial % 2 else (0.1, -0.2, 1.0)

        def blocked(candidates):  # every point offered to every candidate
            owners = np.repeat(np.arange(len(candidates)), len(cloud))
            return find_blocked_candidates(candidates, np.tile(cloud, (len(candidates), 1)), owners, 0.3, up=up)

        brute = compute_goal_pose(instance, trajectory=trajectory, obstacles=cloud, up=up)
        fast = compute_goal_pose(instance, trajectory=trajectory, blocked=blocked, up=up)
        assert np.array_equal(brute.matrix, fast.matrix) and brute.free == fast.free
        seen.add(brute.free)
    assert seen == {True, False}
    with pytest.raises(ValueError, match="not both"):
        compute_goal_pose(instance, obstacles=cloud, blocked=blocked)
    with pytest.raises(ValueError, match="bool array"):
        compute_goal_pose(instance, blocked=lambda candidates: np.zeros(3, bool))
    with pytest.raises(ValueError, match="owners"):
        find_blocked_candidates(np.zeros((2, 3)), np.zeros((1, 3)), np.array([2]), 0.3)
