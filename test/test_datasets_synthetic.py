"""The synthetic room: determinism, geometric consistency of depth/pose/labels, ground truth coverage, the labelled
cloud, metadata captions and object crops."""

import numpy as np
import pytest

open3d = pytest.importorskip("open3d", exc_type=ImportError)

from ov_mapping.datasets import Sequence  # noqa: E402
from ov_mapping.datasets.object_views import crop_instances, render_object_views  # noqa: E402
from ov_mapping.datasets.synthetic import SyntheticSequence, build_room, camera_loop, look_at  # noqa: E402
from ov_mapping.datasets.synthetic_assets import (  # noqa: E402
    CLASS_NAMES, OBJECT_CLASSES, OBJECT_COLOURS, build_object, make_cylinder,
)


def nearest_point(tree, point):
    _, index, squared = tree.search_knn_vector_3d(point, 1)
    return index[0], float(np.sqrt(squared[0]))


@pytest.fixture(scope="module")
def room():
    return SyntheticSequence(num_frames=60, seed=3)


def test_sequence_interface_and_defaults(room):
    assert isinstance(room, Sequence) and len(room) == 60
    assert (room.intrinsics.width, room.intrinsics.height, room.intrinsics.fx) == (320, 240, 260.0)
    assert room.fps == 10.0 and np.allclose(room.stamps, np.arange(60) / 10.0)
    frame = room[5]
    assert frame.rgb.shape == (240, 320, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth.dtype == np.float32 and frame.stamp == 0.5
    assert np.allclose(frame.pose[:3, :3] @ frame.pose[:3, :3].T, np.eye(3))
    assert frame.rgb.std() > 20  # shaded, textured content, not a flat image
    gt = room.ground_truth(5)
    assert gt.class_ids.dtype == np.int32 and gt.instance_ids.shape == (240, 320)
    assert (frame.depth > 0).all() == (gt.instance_ids > 0).all()


def test_deterministic_for_a_seed_and_different_across_seeds():
    a, b = SyntheticSequence(num_frames=6, seed=7), SyntheticSequence(num_frames=6, seed=7)
    c = SyntheticSequence(num_frames=6, seed=8)
    fa, fb, fc = a[4], b[4], c[4]
    assert np.array_equal(fa.rgb, fb.rgb) and np.array_equal(fa.depth, fb.depth)
    assert np.array_equal(fa.pose, fb.pose)
    assert np.array_equal(a.ground_truth(4).instance_ids, b.ground_truth(4).instance_ids)
    assert a.metadata == b.metadata
    assert not np.array_equal(fa.rgb, fc.rgb)
    assert np.array_equal(a.ground_truth_cloud(200).points, b.ground_truth_cloud(200).points)


def test_backprojected_pixels_land_on_the_labelled_instance(room):
    cloud = room.ground_truth_cloud(points_per_m2=3000, seed=1)
    tree = open3d.geometry.KDTreeFlann(open3d.geometry.PointCloud(
        open3d.utility.Vector3dVector(cloud.points.astype(np.float64))))
    rng = np.random.default_rng(0)
    K = room.intrinsics
    checked = agreed = 0
    for index in (0, 17, 33, 48):
        frame, gt = room.render(index)
        ids = gt.instance_ids
        # pixels well inside one instance (same id in the 5x5 neighbourhood), so that sampling density cannot
        # flip the nearest cloud point to a neighbouring object
        same = np.ones_like(ids, dtype=bool)
        for dv in range(-2, 3):
            for du in range(-2, 3):
                same &= np.roll(ids, (dv, du), axis=(0, 1)) == ids
        same[:2], same[-2:], same[:, :2], same[:, -2:] = False, False, False, False
        vs, us = np.nonzero(same & (frame.depth > 0))
        pick = rng.choice(len(vs), size=60, replace=False)
        v, u = vs[pick], us[pick]
        z = frame.depth[v, u].astype(np.float64)
        camera = np.stack([(u - K.cx) / K.fx * z, (v - K.cy) / K.fy * z, z], axis=1)
        world = camera @ frame.pose[:3, :3].T + frame.pose[:3, 3]
        nearest, distance = zip(*(nearest_point(tree, p) for p in world))
        nearest = np.array(nearest)
        assert np.median(distance) < 0.02
        agreed += int((cloud.instance_ids[nearest] == ids[v, u]).sum())
        checked += len(nearest)
        assert np.array_equal(gt.class_ids[v, u], [room.metadata.instance_classes[i] for i in ids[v, u]])
    assert agreed / checked > 0.97


def test_every_instance_is_seen_along_the_path(room):
    pixels = {}
    for index in range(0, 60, 2):
        ids, counts = np.unique(room.ground_truth(index).instance_ids, return_counts=True)
        for i, n in zip(ids, counts):
            pixels[int(i)] = pixels.get(int(i), 0) + int(n)
    for instance in room.instances:
        assert pixels.get(instance.instance_id, 0) >= 100, f"{instance.class_name} {instance.instance_id} unseen"
    assert 0 not in pixels  # walls all round: every ray hits something


def test_metadata_names_and_captions(room):
    meta = room.metadata
    assert meta.class_names == CLASS_NAMES and meta.class_names[0] == "void"
    objects = [i for i in room.instances if i.class_name in OBJECT_CLASSES]
    assert len(objects) == 10
    assert len({i.colour_name for i in objects}) == 10  # distinct colours -> unique captions
    assert meta.instances_of_class("wall") == [2, 3, 4, 5] and meta.instances_of_class("floor") == [1]
    mug = meta.instances_of_class("mug")[0]
    assert meta.caption(mug) == f"a {meta.instance_colours[mug]} mug".replace("a o", "an o")
    assert all(meta.colour_rgb[meta.instance_colours[i.instance_id]] == tuple(i.albedo.astype(int))
               for i in room.instances)
    table = next(i for i in room.instances if i.class_name == "table")
    mug_mesh = next(i for i in room.instances if i.class_name == "mug").mesh
    assert mug_mesh.bounds[0][2] == pytest.approx(table.mesh.bounds[1][2])  # the mug stands on the table


def test_ground_truth_cloud_labels(room):
    cloud = room.ground_truth_cloud(points_per_m2=500)
    assert set(np.unique(cloud.instance_ids)) == {i.instance_id for i in room.instances}
    floor = cloud.instance_ids == 1
    assert np.allclose(cloud.points[floor, 2], 0.0, atol=1e-6)
    assert (cloud.class_ids[floor] == CLASS_NAMES.index("floor")).all()
    objects_only = room.ground_truth_cloud(points_per_m2=500, include_room=False)
    assert not np.isin(objects_only.class_ids, [1, 2, 3]).any()


def test_observed_cloud_drops_hidden_surfaces():
    room = SyntheticSequence(num_frames=12, seed=3)
    cloud = room.ground_truth_cloud(points_per_m2=300, include_room=False)
    observed = room.ground_truth_cloud(points_per_m2=300, include_room=False, observed_only=True)
    assert 0.2 * len(cloud.points) < len(observed.points) < 0.95 * len(cloud.points)
    # object undersides resting on the floor are never seen (only the foot of a side face may touch z = 0)
    on_floor = int((cloud.points[:, 2] < 1e-3).sum())
    assert on_floor > 100 and (observed.points[:, 2] < 1e-3).sum() < 0.02 * on_floor
    # every kept point is seen by some frame: it projects inside an image where the depth matches its own
    pose = room.poses[0]
    mask = room.observed_mask(cloud.points)
    K = room.intrinsics
    frame = room[0]
    camera = (cloud.points - pose[:3, 3]) @ pose[:3, :3]
    u = np.round(K.fx * camera[:, 0] / camera[:, 2] + K.cx).astype(int)
    v = np.round(K.fy * camera[:, 1] / camera[:, 2] + K.cy).astype(int)
    in_view = (camera[:, 2] > 0.1) & (u >= 0) & (u < K.width) & (v >= 0) & (v < K.height)
    front = in_view & (np.abs(frame.depth[v.clip(0, K.height - 1), u.clip(0, K.width - 1)] - camera[:, 2]) < 0.005)
    assert front.sum() > 50 and mask[front].mean() > 0.95


def test_camera_looks_into_the_room_along_a_closed_loop():
    poses = camera_loop(40, seed=2)
    steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    closing = np.linalg.norm(poses[0, :3, 3] - poses[-1, :3, 3])
    assert steps.max() < 0.5 and closing == pytest.approx(steps.mean(), rel=0.3)
    forward = poses[:, :3, 2]
    to_centre = -poses[:, :3, 3]
    assert (np.sum(forward * to_centre, axis=1) > 0).all()
    pose = look_at(np.array([0.0, 0, 1]), np.array([1.0, 0, 1]))
    assert np.allclose(pose[:3, 0], [0, -1, 0]) and np.allclose(pose[:3, 1], [0, 0, -1])


def test_object_views_are_varied_and_labelled():
    views = list(render_object_views(24, size=48, seed=5, views_per_object=6))
    assert len(views) == 24
    assert all(v.image.shape == (48, 48, 3) and v.mask.shape == (48, 48) for v in views)
    assert all(v.class_name in OBJECT_CLASSES and v.colour_name in OBJECT_COLOURS for v in views)
    assert all(0.05 < v.mask.mean() < 0.95 for v in views)
    first_object = views[:6]
    assert len({v.class_name for v in first_object}) == 1
    assert not np.array_equal(first_object[0].image, first_object[1].image)  # another viewpoint
    again = list(render_object_views(6, size=48, seed=5, views_per_object=6))
    assert all(np.array_equal(a.image, b.image) for a, b in zip(again, first_object))
    reds = list(render_object_views(4, size=32, seed=1, classes=["chair"], colours=["red"]))
    for view in reds:
        assert view.caption == "a red chair"
        mean = view.image[view.mask].mean(axis=0)
        assert mean[0] > mean[1] + 30 and mean[0] > mean[2] + 30
    with pytest.raises(ValueError, match="unknown classes or colours"):
        next(render_object_views(1, classes=["unicorn"]))


def test_crop_instances_from_a_frame(room):
    frame, gt = room.render(10)
    crops = crop_instances(frame.rgb, gt.instance_ids, room.metadata, size=40, min_pixels=200)
    assert crops and all(c.image.shape == (40, 40, 3) for c in crops)
    assert all(c.class_name in OBJECT_CLASSES for c in crops)
    with pytest.raises(ValueError, match="must match the image"):
        crop_instances(frame.rgb, gt.instance_ids[:10], room.metadata)


def test_object_meshes_face_outwards():
    rng = np.random.default_rng(0)
    meshes = {"box": build_object("box", rng), "ball": build_object("ball", rng),
              "cylinder": make_cylinder(0.2, 0.5, (1.0, 2.0, 0.0))}
    for class_name, mesh in meshes.items():  # convex shapes: every face points away from the centre
        centres = mesh.vertices[mesh.triangles].mean(axis=1)
        middle = (mesh.bounds[0] + mesh.bounds[1]) / 2
        assert (np.sum(mesh.triangle_normals() * (centres - middle), axis=1) > 0).all(), class_name


def test_bad_parameters():
    with pytest.raises(ValueError, match="num_frames"):
        SyntheticSequence(num_frames=0)
    with pytest.raises(ValueError, match="num_objects"):
        build_room(num_objects=40)
    with pytest.raises(ValueError, match="unknown object class"):
        build_object("dragon", np.random.default_rng(0))
    with pytest.raises(IndexError):
        SyntheticSequence(num_frames=3)[3]
