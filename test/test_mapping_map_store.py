"""MapStore: integration of segmented keyframes, voxel instance / label fields, vocabulary, queries with goal poses,
save / load of the whole state, and refusals that change nothing. Also the InstanceMap state round trip."""

import os
import threading
import zlib
from types import SimpleNamespace

import numpy as np
import pytest

from ov_mapping.core.types import CameraIntrinsics, Keyframe, Segment, SegmentedKeyframe
from ov_mapping.mapping.instances import InstanceMap
from ov_mapping.mapping.map_store import (
    MAX_LABELS,
    MapPathError,
    MapStore,
    TextEncoderMissingError,
    resolve_map_path,
)
from ov_mapping.mapping.persistence import MapFileError, save_map
from ov_mapping.mapping.query import QueryIndex, compute_goal_pose
from ov_mapping.mapping.vocabulary import CANONICAL_NEGATIVES, Vocabulary
from ov_mapping.mapping.voxel_map import VoxelMap

DIM = 32
WORDS = ("chair", "lamp", "sofa", "red", "tall") + CANONICAL_NEGATIVES
TABLE = dict(zip(WORDS, np.random.default_rng(7).normal(size=(len(WORDS), DIM))))


def word_vector(word: str) -> np.ndarray:
    if word in TABLE:
        return TABLE[word]
    return np.random.default_rng(zlib.crc32(word.encode())).normal(size=DIM)


def embed_text(texts):
    """Deterministic stand-in text encoder: the normalised sum of fixed random word vectors."""
    rows = [sum(word_vector(word) for word in text.lower().split()) for text in texts]
    return np.stack([row / np.linalg.norm(row) for row in rows])


def unit(vector) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


CHAIR = dict(centre=np.array([1.0, 0.0, 0.3]), size=np.array([0.5, 0.5, 0.6]), colour=(200, 30, 30),
             descriptor=unit(embed_text(["chair"])[0]))
LAMP = dict(centre=np.array([-1.0, 1.0, 0.5]), size=np.array([0.3, 0.3, 1.0]), colour=(240, 240, 120),
            descriptor=unit(embed_text(["lamp"])[0]))
CAMERAS = [np.array([x, -3.0, 1.2]) for x in (0.0, 2.0, -2.0)]
INSTANCE_PARAMS = {"voxel_size": 0.1}


def box_points(obj, n, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (obj["centre"] + (rng.random((n, 3)) - 0.5) * obj["size"]).astype(np.float32)


def segmented_view(view: int, objects, position, n: int = 600, points=None) -> SegmentedKeyframe:
    """A keyframe whose pointmap row k holds object k's points, and one segment per object (mask = row k)."""
    rows = points if points is not None else [box_points(obj, n, seed=100 * view + k) for k, obj in enumerate(objects)]
    width = max((len(r) for r in rows), default=1)
    pointmap = np.full((max(len(rows), 1), width, 3), np.nan, np.float32)
    rgb = np.zeros(pointmap.shape, np.uint8)
    segments = []
    for k, (obj, row) in enumerate(zip(objects, rows)):
        pointmap[k, : len(row)] = row
        rgb[k] = obj["colour"]
        mask = np.zeros(pointmap.shape[:2], bool)
        mask[k, : len(row)] = True
        noise = np.random.default_rng(view * 10 + k).normal(size=DIM) * 0.02
        segments.append(Segment(k, mask, row, unit(obj["descriptor"] + noise)))
    pose = np.eye(4)
    pose[:3, 3] = position
    height = pointmap.shape[0]
    keyframe = Keyframe(view, float(view), rgb, CameraIntrinsics(width, width, width / 2, height / 2, width, height),
                        pose, pointmap, np.ones(pointmap.shape[:2], np.float32))
    return SegmentedKeyframe(keyframe, segments)


def scene_store(**kwargs) -> MapStore:
    store = MapStore(voxel_size=0.05, instance_params=kwargs.pop("instance_params", INSTANCE_PARAMS),
                     embed_text=embed_text, **kwargs)
    for view, position in enumerate(CAMERAS):
        store.integrate_segmented(segmented_view(view, [CHAIR, LAMP], position))
    return store


def instance_near(store: MapStore, obj) -> dict:
    return min(store.instance_records(), key=lambda r: np.linalg.norm(r["centroid"] - obj["centre"]))


def voxels_in_box(arrays, obj) -> np.ndarray:
    return np.all(np.abs(arrays.positions - obj["centre"]) <= obj["size"] / 2 + 1e-6, axis=1)


# ------------------------------------------------------------------------------------------------- paths


def test_resolve_map_path_keeps_paths_inside_the_map_directory(tmp_path):
    root = tmp_path / "maps"
    root.mkdir()
    assert resolve_map_path(root, "kitchen") == (root / "kitchen.npz").resolve()
    assert resolve_map_path(root, "sub/kitchen.npz") == (root / "sub" / "kitchen.npz").resolve()
    assert resolve_map_path(root, str(root / "abs")) == (root / "abs.npz").resolve()
    for bad in ("", "   ", "../x", "/etc/passwd", "a/../../x", "bad\x00name"):
        with pytest.raises(MapPathError):
            resolve_map_path(root, bad)
    os.symlink(tmp_path, root / "escape")
    with pytest.raises(MapPathError, match="inside"):
        resolve_map_path(root, "escape/x")


# ------------------------------------------------------------------------------------------------- geometry only


def _keyframe(offset: float) -> Keyframe:
    pointmap = np.zeros((4, 4, 3), np.float32)
    pointmap[..., 0] = np.arange(4)[None, :] * 0.1 + offset
    pointmap[..., 1] = np.arange(4)[:, None] * 0.1
    confidence = np.ones((4, 4), np.float32)
    confidence[0, 0] = 0.0  # below min_confidence: not integrated
    return Keyframe(0, 0.0, np.full((4, 4, 3), 200, np.uint8), CameraIntrinsics(4, 4, 2, 2, 4, 4), np.eye(4),
                    pointmap, confidence)


def test_failed_load_leaves_the_live_map_and_version_unchanged(tmp_path):
    store = MapStore(voxel_size=0.05, min_confidence=0.5)
    assert store.integrate_keyframe(_keyframe(0.0)) == 15
    assert store.stats.points_rejected == 1
    saved = store.save(tmp_path / "m.npz")
    version = store.version
    (tmp_path / "bad.npz").write_bytes(b"not a map")
    with pytest.raises(MapFileError):
        store.load(tmp_path / "bad.npz")
    assert len(store) == 15 and store.version == version
    store.integrate_keyframe(_keyframe(5.0))
    assert len(store) == 30
    store.load(saved)
    assert len(store) == 15 and store.version != version  # a load always counts as a change


# ------------------------------------------------------------------------------------------------- integration


def test_two_objects_seen_from_three_views_become_two_instances_with_voxel_fields():
    store = scene_store()
    assert store.num_instances == 2
    chair, lamp = instance_near(store, CHAIR), instance_near(store, LAMP)
    assert chair["instance_id"] != lamp["instance_id"]
    for record, obj in ((chair, CHAIR), (lamp, LAMP)):
        assert record["num_observations"] == 3 and record["num_points"] == 3 * 600
        assert np.allclose(record["centroid"], obj["centre"], atol=0.05)
        # A PCA box of a near-cube may turn about; it still spans at least the smallest side, at most the diagonal.
        assert (record["box_size"] >= obj["size"].min() - 0.1).all()
        assert (record["box_size"] <= np.linalg.norm(obj["size"])).all()
        assert np.allclose(record["box_pose"][:3, :3].T @ record["box_pose"][:3, :3], np.eye(3), atol=1e-9)
        assert record["label"] == "" and record["label_id"] == -1  # no vocabulary yet
    _, arrays = store.snapshot()
    in_chair, in_lamp = voxels_in_box(arrays, CHAIR), voxels_in_box(arrays, LAMP)
    assert in_chair.sum() > 100 and (in_chair | in_lamp).all()
    assert (arrays.instance_ids[in_chair] == chair["instance_id"]).all()
    assert (arrays.instance_ids[in_lamp] == lamp["instance_id"]).all()
    assert (arrays.label_ids == -1).all()
    assert np.array_equal(store.trajectory, np.stack(CAMERAS))


def test_integrate_segmented_reports_counts_and_refuses_bad_input_unchanged():
    store = MapStore(voxel_size=0.05, instance_params=INSTANCE_PARAMS)
    counts = store.integrate_segmented(segmented_view(0, [CHAIR, LAMP], CAMERAS[0]))
    assert counts["instances_created"] == 2 and counts["segments"] == 2 and counts["instances"] == 2
    assert counts["voxels_stamped"] == len(store)  # every point lies under a segment here
    counts = store.integrate_segmented(segmented_view(1, [CHAIR, LAMP], CAMERAS[1]))
    assert counts["instances_associated"] == 2 and counts["instances_created"] == 0
    version, size = store.version, len(store)
    bad = segmented_view(2, [CHAIR, LAMP], CAMERAS[2])
    bad.segments[1].descriptor = np.full(DIM, np.nan, np.float32)
    with pytest.raises(ValueError, match="descriptor must be finite"):
        store.integrate_segmented(bad)
    with pytest.raises(ValueError, match="SegmentedKeyframe"):
        store.integrate_segmented("keyframe")
    assert store.version == version and len(store) == size and len(store.trajectory) == 2
    with_encoder = MapStore(voxel_size=0.05, embed_text=embed_text)
    wrong_width = segmented_view(0, [CHAIR], CAMERAS[0])
    wrong_width.segments[0].descriptor = unit(np.ones(DIM + 1))
    with pytest.raises(ValueError, match="text encoder gives 32"):
        with_encoder.integrate_segmented(wrong_width)
    assert len(with_encoder) == 0 and with_encoder.num_instances == 0


def test_concurrent_integration_queries_and_vocabulary_changes_stay_consistent():
    store = scene_store()
    errors = []

    def run(work):
        try:
            work()
        except Exception as error:  # collected: a thread's exception would otherwise vanish
            errors.append(error)

    def integrate():
        for view in range(3, 9):
            store.integrate_segmented(segmented_view(view, [CHAIR, LAMP], CAMERAS[view % 3]))

    def ask():
        for _ in range(20):
            assert store.query("chair")[0].instance_id == instance_near(store, CHAIR)["instance_id"]

    def relabel():
        for i in range(10):
            store.set_vocabulary(["chair", "lamp"] if i % 2 else ["lamp", "chair", "sofa"])

    threads = [threading.Thread(target=run, args=(work,)) for work in (integrate, ask, relabel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with store.lock:  # one consistent view: voxel labels are their instance's labels
        _, arrays = store.snapshot()
        records = store.instance_records()
    assert store.vocabulary == ["chair", "lamp"] and store.num_instances == 2
    for record in records:
        assert (arrays.label_ids[arrays.instance_ids == record["instance_id"]] == record["label_id"]).all()


def test_voxels_follow_merged_instances_and_lose_evicted_ones():
    obj = dict(CHAIR, size=np.array([0.8, 0.4, 0.4]), centre=np.array([0.4, 0.0, 0.2]))
    grid = np.stack(np.meshgrid(np.arange(0.0125, 0.8, 0.025), np.arange(-0.1875, 0.2, 0.025),
                                np.arange(0.0125, 0.4, 0.025), indexing="ij"), -1).reshape(-1, 3).astype(np.float32)
    store = MapStore(voxel_size=0.05, instance_params={"voxel_size": 0.05, "merge_every": 1})
    # Left half, then right half (too little overlap to associate), then most of it: that view joins the
    # left-half instance, and the merge pass then absorbs the right-half one.
    for view, part in enumerate((grid[:, 0] < 0.4, grid[:, 0] >= 0.4, grid[:, 0] < 0.7)):
        store.integrate_segmented(segmented_view(view, [obj], CAMERAS[0], points=[grid[part]]))
    assert store.num_instances == 1
    survivor = store.instance_records()[0]["instance_id"]
    _, arrays = store.snapshot()
    assert (arrays.instance_ids == survivor).all()  # also the voxels at x >= 0.7 only the absorbed one covered

    store = MapStore(voxel_size=0.05, instance_params={"voxel_size": 0.1, "max_instances": 1, "merge_every": 0})
    store.integrate_segmented(segmented_view(0, [CHAIR], CAMERAS[0]))
    counts = store.integrate_segmented(segmented_view(1, [LAMP], CAMERAS[1]))
    assert counts["instances_removed"] == 1 and store.num_instances == 1
    _, arrays = store.snapshot()
    assert (arrays.instance_ids[voxels_in_box(arrays, CHAIR)] == -1).all()
    assert (arrays.instance_ids[voxels_in_box(arrays, LAMP)] == store.instance_records()[0]["instance_id"]).all()


def test_trajectory_is_bounded_and_keeps_the_whole_run():
    store = MapStore(voxel_size=0.05, trajectory_capacity=4)
    for view in range(9):
        store.integrate_segmented(segmented_view(view, [], np.array([float(view), 0.0, 1.0]), points=[]))
    xs = store.trajectory[:, 0]
    assert len(xs) <= 4 and xs[0] == 0.0 and xs[-1] == 8.0 and (np.diff(xs) > 0).all()


# ------------------------------------------------------------------------------------------------- vocabulary


def test_set_vocabulary_labels_instances_and_voxel_label_ids_follow():
    store = scene_store()
    version = store.version
    assert store.set_vocabulary(["sofa", "lamp", "chair"]) == 2
    assert store.vocabulary == ["sofa", "lamp", "chair"] and store.version != version
    chair, lamp = instance_near(store, CHAIR), instance_near(store, LAMP)
    assert (chair["label"], chair["label_id"]) == ("chair", 2) and (lamp["label"], lamp["label_id"]) == ("lamp", 1)
    assert 0.5 < chair["label_score"] <= 1.0
    _, arrays = store.snapshot()
    for record in (chair, lamp):
        mine = arrays.instance_ids == record["instance_id"]
        assert (arrays.label_ids[mine] == record["label_id"]).all()
        assert np.allclose(arrays.label_scores[mine], record["label_score"])
    # A new view keeps labels on the voxels it stamps.
    store.integrate_segmented(segmented_view(3, [CHAIR, LAMP], CAMERAS[0]))
    _, arrays = store.snapshot()
    assert (arrays.label_ids[arrays.instance_ids == chair["instance_id"]] == 2).all()
    assert store.set_vocabulary([]) == 0  # clearing is defined: no labels anywhere
    _, arrays = store.snapshot()
    assert store.vocabulary == [] and (arrays.label_ids == -1).all() and (arrays.label_scores == 0).all()
    assert all(r["label"] == "" and r["label_id"] == -1 for r in store.instance_records())


@pytest.mark.parametrize("labels, message", [
    (["chair", ""], "empty"),
    (["chair", "chair "], "distinct"),
    (["chair", 3], "must be a str"),
    ("chair", "sequence of str"),
    ([f"label {i}" for i in range(MAX_LABELS + 1)], "limit"),
    (["x" * 300], "limit"),
])
def test_bad_vocabularies_raise_and_change_nothing(labels, message):
    store = scene_store()
    store.set_vocabulary(["chair", "lamp"])
    version, records = store.version, store.instance_records()
    with pytest.raises(ValueError, match=message):
        store.set_vocabulary(labels)
    assert store.version == version and store.vocabulary == ["chair", "lamp"]
    assert [r["label"] for r in store.instance_records()] == [r["label"] for r in records]


def test_text_operations_need_an_encoder():
    store = MapStore(voxel_size=0.05, instance_params=INSTANCE_PARAMS)
    store.integrate_segmented(segmented_view(0, [CHAIR], CAMERAS[0]))
    for call in (lambda: store.set_vocabulary(["chair"]), lambda: store.query("chair"), lambda: store.embed("a")):
        with pytest.raises(TextEncoderMissingError):
            call()
    assert store.set_vocabulary([]) == 0


def test_bad_constructor_arguments_are_refused():
    with pytest.raises(ValueError, match="instance_params"):
        MapStore(instance_params={"no_such_option": 1})
    with pytest.raises(ValueError, match="goal_params"):
        MapStore(goal_params={"standoff": -1.0})
    with pytest.raises(ValueError, match="goal_params"):
        MapStore(goal_params={"speed": 1.0})
    with pytest.raises(ValueError, match="embed_fn output"):
        MapStore(embed_text=lambda texts: np.zeros((len(texts), 4)))


# ------------------------------------------------------------------------------------------------- queries


def test_query_finds_the_right_instance_with_a_reachable_goal_outside_its_box():
    store = scene_store()
    hits = store.query("red chair", top_k=2)
    chair = instance_near(store, CHAIR)
    assert hits[0].instance_id == chair["instance_id"] and hits[0].score > 0.9
    assert len(hits) == 1 or hits[1].score < hits[0].score
    hit = hits[0]
    assert hit.record["instance_id"] == chair["instance_id"]
    position, forward = hit.goal[:3, 3], hit.goal[:3, 0]
    assert position[2] == pytest.approx(0.0) and hit.goal_free
    assert np.any(np.abs(position - CHAIR["centre"])[:2] > CHAIR["size"][:2] / 2 + 0.3)  # outside, with room
    assert position[1] < CHAIR["centre"][1]  # on the side the camera moved along (y = -3)
    towards = (CHAIR["centre"] - position)[:2]
    assert forward[:2] @ towards / np.linalg.norm(towards) > 0.99
    _, arrays = store.snapshot()
    assert len(hit.points) == int((arrays.instance_ids == chair["instance_id"]).sum())
    assert hit.colours.dtype == np.uint8 and (hit.colours == CHAIR["colour"]).all()
    assert store.query("lamp")[0].instance_id == instance_near(store, LAMP)["instance_id"]
    assert [h.instance_id for h in store.query("chair", top_k=5, min_score=0.99)] == [chair["instance_id"]]
    assert np.allclose(store.embed("chair"), embed_text(["chair"])[0], atol=1e-6)


def test_goal_avoids_map_obstacles_exactly_as_with_the_whole_cloud():
    store = scene_store()
    free_goal = store.query("chair")[0].goal
    # A wall (geometry only, no segment) right where the unobstructed goal was.
    wall = dict(centre=free_goal[:3, 3] + [0.0, 0.0, 0.5], size=np.array([0.6, 0.2, 1.0]), colour=(90, 90, 90))
    points = box_points(wall, 2000, seed=5).reshape(40, 50, 3)
    store.integrate_keyframe(Keyframe(99, 0.0, np.zeros((40, 50, 3), np.uint8), CameraIntrinsics(50, 50, 25, 20, 50,
                                      40), np.eye(4), points, np.ones((40, 50), np.float32)))
    hit = store.query("chair")[0]
    assert hit.goal_free and np.linalg.norm(hit.goal[:3, 3] - free_goal[:3, 3]) > 0.3
    record = hit.record
    box = SimpleNamespace(centroid=record["centroid"], obb_centre=record["box_pose"][:3, 3],
                          obb_rotation=record["box_pose"][:3, :3], obb_size=record["box_size"])
    _, arrays = store.snapshot()
    expected = compute_goal_pose(box, trajectory=store.trajectory, obstacles=arrays.positions)
    assert np.allclose(hit.goal, expected.matrix)


def test_empty_map_gives_no_hits_and_bad_queries_change_nothing():
    assert MapStore(embed_text=embed_text).query("chair") == []
    store = scene_store()
    version = store.version
    for text, kwargs in (("", {}), ("   ", {}), ("x" * 300, {}), (None, {}), ("chair", {"top_k": 0}),
                         ("chair", {"top_k": 1000}), ("chair", {"min_score": 1.5})):
        with pytest.raises(ValueError):
            store.query(text, **kwargs)
    assert store.version == version


# ------------------------------------------------------------------------------------------------- persistence


def test_save_then_load_in_a_fresh_store_restores_points_instances_labels_and_answers(tmp_path):
    store = scene_store()
    store.set_vocabulary(["chair", "lamp", "sofa"])
    path = store.save(tmp_path / "scene.npz")
    fresh = MapStore(voxel_size=0.05, instance_params=INSTANCE_PARAMS, embed_text=embed_text)
    assert fresh.load(path) == {"num_points": len(store), "num_instances": 2, "num_labels": 3}
    for a, b in zip(store.snapshot()[1], fresh.snapshot()[1]):
        assert np.array_equal(a, b)
    for a, b in zip(store.instance_records(), fresh.instance_records()):
        assert a.keys() == b.keys()
        for key in a:
            assert np.array_equal(a[key], b[key]), key
    assert fresh.vocabulary == store.vocabulary
    assert np.array_equal(fresh.trajectory, store.trajectory)
    for text in ("red chair", "lamp", "tall sofa"):
        before, after = store.query(text, top_k=2), fresh.query(text, top_k=2)
        assert [h.instance_id for h in before] == [h.instance_id for h in after]
        assert [h.score for h in before] == [h.score for h in after]
        assert all(np.array_equal(x.goal, y.goal) for x, y in zip(before, after))
    # Association and labelling go on after a load: a new view joins the loaded instances.
    counts = fresh.integrate_segmented(segmented_view(3, [CHAIR, LAMP], CAMERAS[0]))
    assert counts["instances_associated"] == 2 and counts["instances_created"] == 0
    assert instance_near(fresh, CHAIR)["label"] == "chair"


def _tampered(path, out, **changes):
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    arrays.update(changes)
    np.savez(out, **arrays)
    return out


def test_corrupt_or_inconsistent_files_raise_and_leave_the_state_unchanged(tmp_path):
    store = scene_store()
    store.set_vocabulary(["chair", "lamp"])
    path = store.save(tmp_path / "scene.npz")
    with np.load(path) as data:
        ids = data["extra.instances_ids"]
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(os.urandom(2048))
    bad_files = {
        "truncated": truncated,
        "garbage": garbage,
        "label index": _tampered(path, tmp_path / "a.npz", **{"extra.label_table_index": np.array([0, 7], np.int32)}),
        "duplicate ids": _tampered(path, tmp_path / "b.npz", **{"extra.instances_ids": np.array([ids[0], ids[0]])}),
        "vocabulary": _tampered(path, tmp_path / "c.npz", **{"extra.vocabulary": np.array(["chair", "chair"])}),
        "trajectory": _tampered(path, tmp_path / "d.npz", **{"extra.trajectory": np.zeros((2, 2))}),
    }
    target = MapStore(voxel_size=0.05, instance_params=INSTANCE_PARAMS, embed_text=embed_text)
    for view in (0, 1):  # two views: queries answer only with instances seen more than once
        target.integrate_segmented(segmented_view(view, [LAMP], CAMERAS[view]))
    target.set_vocabulary(["lamp"])
    version, records, snapshot = target.version, target.instance_records(), target.snapshot()[1]
    for name, bad in bad_files.items():
        with pytest.raises(MapFileError):
            target.load(bad)
        assert target.version == version, name
    assert target.vocabulary == ["lamp"] and len(target.instance_records()) == len(records)
    assert all(np.array_equal(a, b) for a, b in zip(snapshot, target.snapshot()[1]))
    assert target.query("lamp")[0].instance_id == records[0]["instance_id"]


def test_a_plain_voxel_map_file_loads_as_geometry_without_instances(tmp_path):
    voxel_map = VoxelMap(0.05)
    voxel_map.integrate(np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), np.zeros((2, 3), np.uint8))
    path = save_map(tmp_path / "plain.npz", voxel_map)
    store = scene_store()
    assert store.load(path) == {"num_points": 2, "num_instances": 0, "num_labels": 0}
    assert store.instance_records() == [] and store.query("chair") == []


# ------------------------------------------------------------------------------------------------- InstanceMap state


@pytest.mark.parametrize("source", ["descriptor", "clip_embedding"])
def test_instance_state_round_trip_gives_identical_queries(source):
    params = {"voxel_size": 0.1, "merge_every": 2, "max_points_per_instance": 40, "semantic_source": source}
    instance_map = InstanceMap(**params)
    for view in range(4):
        kf = segmented_view(view, [CHAIR, LAMP], CAMERAS[view % 3])
        for segment in kf.segments:
            segment.clip_embedding = segment.descriptor[::-1].copy()
            segment.label, segment.label_score = ("chair" if view != 2 else "sofa"), 0.8
        instance_map.add_segments(view, kf.segments)
    state = instance_map.export_state()
    assert all(isinstance(a, np.ndarray) and not a.dtype.hasobject for a in state.values())
    copy = InstanceMap.from_state(state, **params)
    again = copy.export_state()
    assert state.keys() == again.keys() and all(np.array_equal(state[k], again[k]) for k in state)
    for a, b in zip(instance_map.instances(), copy.instances()):
        assert a.instance_id == b.instance_id and a.label == b.label and a.view_labels == b.view_labels
        assert np.array_equal(a.points, b.points) and np.array_equal(a.embedding, b.embedding)
    vocabulary = Vocabulary(embed_text)
    for text in ("chair", "lamp", "red sofa"):
        query, negatives = vocabulary.embed_query(text), vocabulary.negative_embeddings
        x = QueryIndex(instance_map).query(query, negatives, min_score=0.0)
        y = QueryIndex(copy).query(query, negatives, min_score=0.0)
        assert len(x) == 2 and np.array_equal(x.instance_ids, y.instance_ids) and np.array_equal(x.scores, y.scores)
    # Both go on identically.
    nxt = segmented_view(9, [CHAIR, LAMP], CAMERAS[0])
    for segment in nxt.segments:
        segment.clip_embedding = segment.descriptor[::-1].copy()
    assert instance_map.add_segments(9, nxt.segments) == copy.add_segments(9, nxt.segments)


def test_instance_state_is_validated():
    instance_map = InstanceMap(voxel_size=0.1)
    instance_map.add_segments(0, segmented_view(0, [CHAIR, LAMP], CAMERAS[0]).segments)
    state = instance_map.export_state()
    cases = [
        ({"ids": state["ids"][:1]}, "shape"),
        ({"descriptors": state["descriptors"] * 2}, "unit"),
        ({"point_offsets": state["point_offsets"][::-1].copy()}, "point_offsets"),
        ({"points": np.full_like(state["points"], np.nan)}, "finite"),
        ({"view_labels": np.full_like(state["view_labels"], 5)}, "view_labels"),
        ({"semantic_source": np.array("clip_embedding")}, "semantic_source|embeddings"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            InstanceMap.from_state({**state, **change}, voxel_size=0.1)
    with pytest.raises(ValueError, match="lacks"):
        InstanceMap.from_state({k: v for k, v in state.items() if k != "levels"}, voxel_size=0.1)
    coarser = InstanceMap.from_state(state, voxel_size=0.2)  # another voxel size: points are binned again
    assert all(len(i.points) < len(j.points) for i, j in zip(coarser.instances(), instance_map.instances()))


def test_an_instance_seen_in_one_view_only_does_not_answer_queries():
    store = MapStore(voxel_size=0.05, instance_params=INSTANCE_PARAMS, embed_text=embed_text)
    store.integrate_segmented(segmented_view(0, [LAMP], CAMERAS[0]))
    assert store.query("lamp") == []
    store.integrate_segmented(segmented_view(1, [LAMP], CAMERAS[1]))
    assert [hit.record["num_observations"] for hit in store.query("lamp")] == [2]
    single = MapStore(voxel_size=0.05, instance_params=INSTANCE_PARAMS, embed_text=embed_text,
                      query_min_observations=1)
    single.integrate_segmented(segmented_view(0, [LAMP], CAMERAS[0]))
    assert len(single.query("lamp")) == 1
    with pytest.raises(ValueError):
        MapStore(query_min_observations=0)


def test_fast_goals_and_voxels_match_the_brute_force_answer_on_a_cluttered_random_map():
    store = scene_store()
    rng = np.random.default_rng(3)
    # Random clutter around both objects (geometry only): many candidates blocked, some free.
    clutter = (rng.random((40 * 50, 3)) * [5.0, 5.0, 2.5] - [2.5, 2.5, 0.2]).astype(np.float32)
    store.integrate_keyframe(Keyframe(98, 0.0, np.zeros((40, 50, 3), np.uint8), CameraIntrinsics(50, 50, 25, 20, 50,
                                      40), np.eye(4), clutter.reshape(40, 50, 3), np.ones((40, 50), np.float32)))
    positions, voxel_ids = store.voxel_map.positions.copy(), store.voxel_map.instance_ids.copy()
    hits = store.query("chair", top_k=5) + store.query("lamp", top_k=5)
    assert len(hits) >= 2 and {h.goal_free for h in hits} <= {True, False}
    for hit in hits:
        record = hit.record
        box = SimpleNamespace(centroid=record["centroid"], obb_centre=record["box_pose"][:3, 3],
                              obb_rotation=record["box_pose"][:3, :3], obb_size=record["box_size"])
        expected = compute_goal_pose(box, trajectory=store.trajectory, obstacles=positions)
        assert np.array_equal(hit.goal, expected.matrix) and hit.goal_free == expected.free
        assert np.array_equal(hit.points, positions[voxel_ids == hit.instance_id].astype(np.float32))
