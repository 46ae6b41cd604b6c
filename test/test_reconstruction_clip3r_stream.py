"""The CLIP3R streaming engine driven by a ground-truth runner: exact geometry of a synthetic room stands in
for the networks, so the engine's own logic (stride choice, initial window, causal windows, retrieval,
registration groups, pose and intrinsics recovery) is checked against the true trajectory."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from ov_mapping.core.types import CameraIntrinsics
from ov_mapping.geometry.camera import backproject_depth, pointmap_to_world
from ov_mapping.geometry.transforms import fit_similarity, fit_similarity_robust, invert_pose, rotation_angle
from ov_mapping.engines import Registration, ViewPointmap
from ov_mapping.reconstruction.clip3r_stream import (
    Clip3rStream,
    SceneBuffer,
    StreamConfig,
    probe_stride_windows,
    rank_scene_frames,
)
from ov_mapping.reconstruction.preprocess import centre_crop_box, image_to_model_intrinsics, prepare_image

pytest.importorskip("open3d", reason="the synthetic room is rendered with open3d")
from ov_mapping.datasets.synthetic import SyntheticSequence  # noqa: E402

NUM_FRAMES = 24


class Room:
    """The first ``count`` frames of a synthetic sequence, rendered once: camera images (320 x 240) and the
    true camera-frame pointmaps of their 224 x 224 model inputs (rendered with the crop's intrinsics)."""

    def __init__(self, seq: SyntheticSequence, count: int) -> None:
        self.intrinsics = seq.intrinsics
        self.poses = seq.poses[:count]
        self.frames = [seq[i] for i in range(count)]
        box = centre_crop_box(seq.intrinsics.width, seq.intrinsics.height)
        model_K = image_to_model_intrinsics(seq.intrinsics, box)
        self.cam = [backproject_depth(seq.renderer.render(model_K, pose)[1], model_K) for pose in self.poses]
        self.frame_of = {prepare_image(f.rgb).model_input.tobytes(): i for i, f in enumerate(self.frames)}


@dataclass(frozen=True)
class Handle:
    """The fake runner's token handle: which frame was encoded."""

    frame: int


class GroundTruthRunner:
    """Clip3rRunner that answers with the room's true geometry, corrupted like a network's output would be.

    I2P: true points in the reference camera at a random scale per call, with noise and 10 % wild points.
    L2W: estimates where the stream's world lies from the scene frames it is given (as the network must),
    then returns the keyframes' true points in that world, with noise and wild points.
    ``i2p_conf(window frames, reference frame)`` sets the confidence; retrieval scores fall with frame distance.
    """

    def __init__(self, room: Room, i2p_conf=None, l2w_conf: float = 30.0, unsure_rows: int = 0) -> None:
        self.rng = np.random.default_rng(0)
        self.poses = room.poses
        self.cam = room.cam
        self.frame_of = room.frame_of
        self.i2p_conf = i2p_conf or (lambda window, ref: 20.0)
        self.l2w_conf = l2w_conf
        self.unsure_rows = unsure_rows  # the top image rows get I2P confidence 1.2 (below the 1.5 threshold)
        self.l2w_inputs: list[tuple[np.ndarray, np.ndarray]] = []
        self.i2p_calls: list[tuple[list[int], int]] = []
        self.l2w_calls: list[tuple[list[int], list[int]]] = []

    def corrupt(self, points: np.ndarray, scale: float) -> np.ndarray:
        out = points + self.rng.normal(0.0, 0.002 * scale, points.shape).astype(np.float32)
        wild = self.rng.random(points.shape[:2]) < 0.1
        out[wild] += self.rng.normal(0.0, 0.5 * scale, (int(wild.sum()), 3)).astype(np.float32)
        return out

    def encode(self, images):
        return [Handle(self.frame_of[image.tobytes()]) for image in images]

    def i2p(self, tokens, ref_index):
        frames = [t.frame for t in tokens]
        ref = frames[ref_index]
        self.i2p_calls.append((frames, ref))
        scale = self.rng.uniform(0.3, 3.0)  # every I2P window has its own scale
        ref_from_world = invert_pose(self.poses[ref])
        conf = np.full((224, 224), self.i2p_conf(frames, ref), dtype=np.float32)
        conf[: self.unsure_rows] = 1.2
        views = [pointmap_to_world(self.cam[f], ref_from_world @ self.poses[f]) * np.float32(scale) for f in frames]
        return [ViewPointmap(self.corrupt(v, scale), conf) for v in views]

    def retrieval(self, candidates, sources):
        dist = np.array([[abs(c.frame - s.frame) for s in sources] for c in candidates], dtype=np.float64)
        return np.repeat((1.0 + 10.0 * np.exp(-dist / 4.0))[:, :, None], 196, axis=2).astype(np.float32)

    def l2w(self, scene_tokens, scene_pts3d, key_tokens, key_pts3d):
        scene = [t.frame for t in scene_tokens]
        keys = [t.frame for t in key_tokens]
        self.l2w_calls.append((scene, keys))
        self.l2w_inputs.append((scene_pts3d.copy(), key_pts3d.copy()))
        true_world = np.concatenate([pointmap_to_world(self.cam[f], self.poses[f]).reshape(-1, 3) for f in scene])
        given = scene_pts3d.reshape(-1, 3).astype(np.float64)
        ok = np.isfinite(true_world).all(1) & (given != 0).any(1)  # zeros: unconfident points
        pick = np.flatnonzero(ok)[:: max(1, ok.sum() // 6000)]
        world_from_true = fit_similarity_robust(true_world[pick], given[pick]).matrix()
        out = []
        for f in keys:
            pts = pointmap_to_world(self.cam[f], world_from_true @ self.poses[f])
            out.append(Registration(self.corrupt(pts, 1.0), np.full((224, 224), self.l2w_conf, np.float32), None))
        return out


@pytest.fixture(scope="module")
def room() -> Room:
    return Room(SyntheticSequence(num_frames=60, width=320, height=240, seed=1), NUM_FRAMES)


def run(stream: Clip3rStream, room: Room, count: int, intrinsics: bool = False):
    out = []
    for frame in room.frames[:count]:
        out += stream.push(frame.rgb, frame.stamp, frame.intrinsics if intrinsics else None)
    return out + stream.flush()


def test_stream_recovers_the_ground_truth_trajectory(room):
    runner = GroundTruthRunner(room)
    config = StreamConfig(keyframe_stride=2, window_radius=3, register_group_size=3, num_scene_frames=4)
    results = run(Clip3rStream(runner, config), room, NUM_FRAMES)
    assert [r.keyframe.keyframe_id for r in results] == list(range(NUM_FRAMES // 2))
    assert [r.frame_index for r in results] == list(range(0, NUM_FRAMES, 2))
    est = np.stack([r.keyframe.pose for r in results])
    gt = room.poses[[r.frame_index for r in results]]
    # the stream's world is a similarity of the true one: align camera centres, then compare everything
    align = fit_similarity(est[:, :3, 3], gt[:, :3, 3])
    for e, g, r in zip(est, gt, results):
        position_error = np.linalg.norm(align.apply(e[None, :3, 3])[0] - g[:3, 3])
        angle_error = np.degrees(rotation_angle((align.rotation @ e[:3, :3]).T @ g[:3, :3]))
        assert position_error < 1e-3, f"keyframe {r.keyframe.keyframe_id}: {position_error * 1000:.3f} mm"
        assert angle_error < 0.1, f"keyframe {r.keyframe.keyframe_id}: {angle_error:.4f} deg"
        assert not r.keyframe.metric_scale
    # pointmaps: world points of the pixels; the wild ones are still there (the map fuser's job), most agree
    for r in results:
        kf = r.keyframe
        assert kf.pointmap.shape == (224, 224, 3) and kf.confidence.shape == (224, 224)
        true = pointmap_to_world(runner.cam[r.frame_index], room.poses[r.frame_index]).reshape(-1, 3)
        mapped = align.apply(kf.pointmap.reshape(-1, 3).astype(np.float64))
        assert np.median(np.linalg.norm(mapped - true, axis=1)) < 0.03  # noise: 2 mm per axis in world units
    # registration happened in groups of at most 3 against at most 4 scene frames, with retrieval in use
    assert all(len(keys) <= 3 and len(scene) <= 4 for scene, keys in runner.l2w_calls)


def test_l2w_sees_slam3r_conventions_and_unconfident_points_are_dropped(room):
    runner = GroundTruthRunner(room, unsure_rows=20)
    config = StreamConfig(keyframe_stride=2, window_radius=2, register_group_size=2, num_scene_frames=3)
    results = run(Clip3rStream(runner, config), room, 14)
    for scene_pts, key_pts in runner.l2w_inputs:
        # keyframes: normalised local pointmaps (mean distance 1) with unconfident points at the origin
        assert (key_pts[:, :20] == 0).all()
        norms = np.linalg.norm(key_pts[:, 20:], axis=-1)
        finite = np.isfinite(norms)
        assert np.allclose([n[f].mean() for n, f in zip(norms, finite)], 1.0, rtol=1e-5)
    # the initial window's scene pointmaps have their unconfident points at the origin too
    first_scene = runner.l2w_inputs[0][0]
    assert (first_scene[:, :20] == 0).all() and (first_scene[:, 20:] != 0).any()
    for r in results:  # dropped in the output: NaN
        assert np.isnan(r.keyframe.pointmap[:20]).all() and np.isfinite(r.keyframe.pointmap[20:]).any()


def test_intrinsics_are_estimated_and_mapped_to_the_crop(room):
    runner = GroundTruthRunner(room)
    config = StreamConfig(keyframe_stride=2, window_radius=2, register_group_size=2)
    results = run(Clip3rStream(runner, config), room, 12)
    box = centre_crop_box(320, 240)
    true = CameraIntrinsics(room.intrinsics.fx, room.intrinsics.fy, room.intrinsics.cx - box.x0,
                            room.intrinsics.cy - box.y0, box.side, box.side)
    for r in results:
        kf = r.keyframe
        assert r.intrinsics_source == "estimated"
        assert kf.rgb.shape == (240, 240, 3)
        assert (kf.intrinsics.width, kf.intrinsics.height) == (240, 240)
        assert kf.intrinsics.fx == pytest.approx(true.fx, rel=5e-3)
        assert kf.intrinsics.cx == pytest.approx(true.cx, abs=1e-9)
    given = run(Clip3rStream(runner, StreamConfig(keyframe_stride=2, window_radius=2)), room, 6, intrinsics=True)
    assert all(r.intrinsics_source == "given" and r.keyframe.intrinsics.fx == pytest.approx(true.fx) for r in given)


def test_initial_window_reference_defines_world_frame_and_scale(room):
    # keyframe 2 (frame 4) is the most confident reference of the initial window
    runner = GroundTruthRunner(room, i2p_conf=lambda window, ref: 20.0 + (ref == 4))
    results = run(Clip3rStream(runner, StreamConfig(keyframe_stride=2)), room, 10)
    assert len(results) == 5
    ref = results[2].keyframe
    np.testing.assert_allclose(ref.pose, np.eye(4), atol=1e-6)
    points = np.concatenate([r.keyframe.pointmap.reshape(-1, 3) for r in results])
    points = points[np.isfinite(points).all(1)]
    assert np.linalg.norm(points, axis=1).mean() == pytest.approx(1.0, rel=1e-5)
    # every view was tried as reference: 5 runs of the 5 initial keyframes
    assert [ref for _, ref in runner.i2p_calls] == [0, 2, 4, 6, 8]


def test_low_confidence_shrinks_the_initial_window_to_three(room):
    runner = GroundTruthRunner(room, i2p_conf=lambda window, ref: 4.0)
    results = run(Clip3rStream(runner, StreamConfig(keyframe_stride=2, register_group_size=1)), room, 10)
    # the first 3 keyframes carry I2P confidence (initial window), the last 2 were registered by L2W
    assert [float(r.keyframe.confidence.mean()) for r in results] == [4.0, 4.0, 4.0, 30.0, 30.0]
    assert [keys for _, keys in runner.l2w_calls] == [[6], [8]]


def test_windows_are_causal_unless_lookahead_is_asked(room):
    runner = GroundTruthRunner(room)
    run(Clip3rStream(runner, StreamConfig(keyframe_stride=2, window_radius=2)), room, 16)
    tracked = runner.i2p_calls[5:]  # after the initial runs, one per reference
    assert tracked and all(max(frames) == ref and len(frames) <= 3 for frames, ref in tracked)

    runner = GroundTruthRunner(room)
    stream = Clip3rStream(runner, StreamConfig(keyframe_stride=2, window_radius=2, lookahead=1, register_group_size=1))
    seen = []
    for frame in room.frames[:16]:
        seen.append([r.keyframe.keyframe_id for r in stream.push(frame.rgb, frame.stamp)])
    # keyframe 5 (frame 10) is output only once keyframe 6 (frame 12) arrived
    assert seen[10] == [] and seen[12] == [5]
    assert [r.keyframe.keyframe_id for r in stream.flush()] == [7]
    assert all(frames[-1] == ref + 2 for frames, ref in runner.i2p_calls[5:-1])


def test_automatic_stride_picks_the_most_confident_one(room):
    def conf(window, ref):  # windows with 3 frames between views are the most confident
        gap = (max(window) - min(window)) / (len(window) - 1)
        return 2.0 + 20.0 * np.exp(-((gap - 3.0) ** 2))

    runner = GroundTruthRunner(room, i2p_conf=conf)
    stream = Clip3rStream(runner, StreamConfig(keyframe_stride=None, max_stride=4, window_radius=2))
    results = run(stream, room, 20)
    assert stream.keyframe_stride == 3
    assert [r.frame_index for r in results] == list(range(0, 20, 3))


def test_retrieval_picks_the_best_scored_scene_frames(room):
    runner = GroundTruthRunner(room)
    config = StreamConfig(keyframe_stride=1, window_radius=2, register_group_size=1, num_scene_frames=2)
    run(Clip3rStream(runner, config), room, 12)
    # scores fall with frame distance: the two nearest buffered frames are chosen
    for scene, keys in runner.l2w_calls:
        assert sorted(scene) == [keys[0] - 2, keys[0] - 1]


def test_rank_scene_frames_maps_scores_before_averaging():
    scores = np.ones((3, 2, 4))
    scores[0] = 1.5  # mapped 1/3 everywhere
    scores[1, 0] = 100.0  # mapped ~0.99 on one keyframe only: mean ~0.495
    scores[2] = 2.0  # mapped 0.5 everywhere: best
    assert rank_scene_frames(scores, 2).tolist() == [2, 1]
    with pytest.raises(ValueError, match=">= 1"):
        rank_scene_frames(np.zeros((2, 1, 4)), 1)


def test_scene_buffer_is_bounded_and_keeps_sampling():
    buffer = SceneBuffer(4, seed=0)
    for i in range(500):
        buffer.offer(i)
    assert len(buffer.frames) == 4 and buffer.offered == 500
    assert max(buffer.frames) >= 100  # later frames get in, not only the first ones


def test_probe_windows_fit_the_prefix():
    probes = probe_stride_windows(9, 4, 3, 2)
    assert probes[1] == [[0, 1, 2], [1, 2, 3]]
    assert probes[4] == [[0, 4, 8]]
    assert max(max(w) for ws in probes.values() for w in ws) < 9


def test_bad_inputs_are_rejected_clearly(room):
    stream = Clip3rStream(GroundTruthRunner(room), StreamConfig(keyframe_stride=1))
    frame = room.frames[0]
    with pytest.raises(ValueError, match="uint8"):
        stream.push(frame.rgb.astype(np.float32), 0.0)
    with pytest.raises(ValueError, match="stamp"):
        stream.push(frame.rgb, float("nan"))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        stream.push(frame.rgb[..., 0], 0.0)
    with pytest.raises(ValueError, match="Clip3rRunner"):
        Clip3rStream(object())
    with pytest.raises(ValueError, match="window_radius"):
        StreamConfig(window_radius=0)
    with pytest.raises(ValueError, match="initial_window_fallback"):
        StreamConfig(initial_window=3, initial_window_fallback=4)
    with pytest.raises(ValueError, match="buffer_size"):
        StreamConfig(buffer_size=2)
    assert stream.flush() == []  # nothing pushed successfully: nothing to finish
