"""``ov-mapping demo``: play a sequence through the whole node graph and show what came out.

Starts the three nodes, waits until they are connected, starts the player, waits until the player is done and the map
server has integrated every keyframe, saves the map through the SaveMap service, then writes into the output directory:
``map.npz`` (the saved map), ``map.ply``, ``map.png`` (top and perspective views) and ``report.json`` (frames in,
keyframes, dropped frames, points, time per stage).

``--semantic-check`` (synthetic input only) also scores the semantics against the scene's ground truth: it sets the
scene's class names as the vocabulary, asks for every object by class and by colour, and writes ``semantic.json``
(mIoU / mAcc / f-mIoU over map points, top-1 query accuracy, and a shuffled-label control). It needs a CLIP model that
knows the scene's objects: ``--clip-weights`` / ``--clip-config`` (the project's test model is trained on synthetic
renders for exactly this check, see test/assets/tiny_clip).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ov_mapping.mapping.persistence import export_ply, load_map
from ov_mapping.mapping.render import save_views_png
from ov_mapping.ros import graph
from ov_mapping.tools.launcher import Launcher


@dataclass(frozen=True)
class SemanticCheck:
    """The CLIP model the segmentation node and the map server use for the check."""

    clip_weights: str
    clip_config: str = ""
    clip_model: str = ""


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def _settled(client, last: dict) -> bool:
    """True once the map server's counters stopped moving: 2 s after it integrated every keyframe the
    reconstruction node made, or 8 s without change if some keyframe never arrived."""
    made = client.value("reconstruction_node", "keyframes", -1)
    integrated = client.value("map_server_node", "keyframes", -2)
    state = (made, integrated, client.value("map_server_node", "queue_depth", 1))
    if state != last.get("state"):
        last.update(state=state, since=time.monotonic())
    quiet = time.monotonic() - last["since"]
    return (made >= 0 and made == integrated and state[2] == 0 and quiet > 2.0) or quiet > 8.0


def _pipeline_connected(client) -> bool:
    """Every pipeline topic has its publisher and subscriber, and the reconstruction node listens to every camera
    topic it needs, so no frame or keyframe is lost at start-up."""
    node = client.node
    cameras = ("image", "depth", "camera_info")
    return all(node.count_publishers(topic) > 0 and node.count_subscribers(topic) > 0
               for topic in (graph.TOPIC_KEYFRAMES, graph.TOPIC_SEGMENTED)) and \
        all(node.count_subscribers(graph.CAMERA_TOPICS[name]) > 0 for name in cameras)


def _node_params(source: str, out_dir: Path, rate: float, frames: int, odometry: bool,
                 semantic: Optional[SemanticCheck]) -> dict:
    params = {
        graph.PLAYER.name: {"input": source, "rate": rate, "max_frames": frames, "wait_for_subscribers": 1},
        graph.RECONSTRUCTION.name: {"input_reliability": "reliable", **({} if odometry else {"pose_frame": "odom"})},
        graph.SEGMENTATION.name: {"queue_size": 100},  # the demo wants every keyframe segmented, however slowly
        graph.MAP_SERVER.name: {"map_dir": str(out_dir), "autosave_period": 0.0, "queue_size": 1000},
    }
    if semantic is not None:
        clip = {"clip_weights": semantic.clip_weights, "clip_config": semantic.clip_config}
        clip.update({"clip_model": semantic.clip_model} if semantic.clip_model else {})
        params[graph.SEGMENTATION.name].update(clip, mask_source="graph")
        params[graph.MAP_SERVER.name].update(clip)
    return params


def _ask_every_object(client, cases) -> list[np.ndarray]:
    """The points of the top instance answering each query (empty when none answered)."""
    from ov_mapping.ros import conversions as conv
    from ov_mapping.srv import QueryText

    answers = []
    for case in cases:
        response = client.call(QueryText, graph.SERVICE_QUERY, QueryText.Request(text=case.text, top_k=1))
        points = np.zeros((0, 3), np.float32)
        if response.success and response.instances:
            cloud = conv.decode_pointcloud(response.points)
            mine = cloud["instance"] == response.instances[0].instance_id
            points = np.stack([cloud["x"][mine], cloud["y"][mine], cloud["z"][mine]], axis=1)
        answers.append(points)
    return answers


def _check_semantics(client, source_frames: int, out_dir: Path) -> dict:
    """Set the scene's vocabulary, query every object, then score the saved map (called with the graph running)."""
    from ov_mapping.datasets.synthetic import SyntheticSequence
    from ov_mapping.evaluation import semantic_check as check
    from ov_mapping.srv import SaveMap, SetVocabulary

    scene = SyntheticSequence(num_frames=source_frames, seed=0)
    vocabulary = check.scene_vocabulary(scene.metadata)
    response = client.call(SetVocabulary, graph.SERVICE_VOCABULARY, SetVocabulary.Request(labels=vocabulary))
    if not response.success:
        raise RuntimeError(f"set_vocabulary failed: {response.message}")
    cases = check.query_cases(scene.metadata)
    answers = _ask_every_object(client, cases)
    saved = client.call(SaveMap, graph.SERVICE_SAVE, SaveMap.Request(path="map"))
    if not saved.success:
        raise RuntimeError(f"save_map failed: {saved.message}")
    truth = scene.ground_truth_cloud(points_per_m2=2000, observed_only=True)
    arrays = load_map(out_dir / "map.npz").voxel_map.to_arrays()
    metrics = check.score_segmentation(arrays.positions, arrays.label_ids, vocabulary, truth, scene.metadata)
    control = check.score_segmentation(arrays.positions, check.shuffled_control(arrays.label_ids, len(vocabulary)),
                                       vocabulary, truth, scene.metadata)
    result = {"vocabulary": vocabulary, "instances": int(saved.num_instances), "segmentation": metrics.to_dict(),
              "shuffled_control": {"mIoU": control.miou, "mAcc": control.macc},
              "queries": check.query_accuracy(cases, answers, truth)}
    (out_dir / "semantic.json").write_text(json.dumps(result, indent=2))
    q = result["queries"]
    _say(f"semantics: mIoU {metrics.miou:.3f}  mAcc {metrics.macc:.3f}  f-mIoU {metrics.fmiou:.3f}  "
         f"(shuffled control mIoU {control.miou:.3f});  top-1 query accuracy: class {q['top1_class']:.2f}, "
         f"colour {q['top1_colour']:.2f}")
    return result


def run_demo(source: str, out_dir: Path, rate: float = 1.0, frames: int = 0, timeout: float = 170.0,
             odometry: bool = False, semantic: Optional[SemanticCheck] = None) -> int:
    """Run the demo; with ``odometry`` the camera poses are estimated (RGB-D odometry) instead of taken from the
    recording's poses, which the player publishes on TF."""
    from ov_mapping.ros.graph_client import GraphClient
    from ov_mapping.srv import SaveMap

    if semantic is not None and source != "synthetic":
        raise ValueError("the semantic check needs the synthetic scene's ground truth: use --input synthetic")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    params = _node_params(source, out_dir, rate, frames, odometry, semantic)
    pipeline = Launcher(list(graph.PIPELINE), extra_params=params)
    player = Launcher([graph.PLAYER], extra_params=params)
    client = GraphClient("ov_mapping_demo")
    report = {"input": source, "rate": rate, "poses": "rgbd_odometry" if odometry else "recorded (TF)"}

    def failed():
        return pipeline.poll() or player.poll()

    try:
        pipeline.start()
        if not client.spin_until(lambda: _pipeline_connected(client) or failed(), 120) or failed():
            _say(f"the pipeline did not come up: {failed() or 'no connection within 120 s'}")
            return 1
        player.start()
        _say(f"playing {source!r} through the graph (timeout {timeout:.0f} s)")
        if not client.spin_until(lambda: client.player_done or failed() is not None, timeout):
            _say("timed out waiting for the player")
            return 1
        if not client.player_done:
            name, code = failed()
            _say(f"{name} exited with code {code} before the sequence was played")
            return 1
        played = time.monotonic()
        last: dict = {}
        if not client.spin_until(lambda: _settled(client, last), max(10.0, timeout - (played - started))):
            _say("the map server did not catch up before the timeout; saving what it has")
        if semantic is not None:
            report["semantic"] = _check_semantics(client, int(client.value("reconstruction_node", "frames_in")),
                                                  out_dir)
        response = client.call(SaveMap, graph.SERVICE_SAVE, SaveMap.Request(path="map"))
        if not response.success:
            _say(f"save_map failed: {response.message}")
            return 1
        report.update(
            frames_in=int(client.value("reconstruction_node", "frames_in")),
            keyframes=int(client.value("reconstruction_node", "keyframes")),
            keyframes_integrated=int(client.value("map_server_node", "keyframes")),
            dropped_frames=int(client.value("reconstruction_node", "dropped")
                               + client.value("reconstruction_node", "unsynchronised")),
            dropped_keyframes=int(client.value("segmentation_node", "dropped")
                                  + client.value("map_server_node", "dropped")),
            points=int(response.num_points),
            instances=int(response.num_instances),
            segmentation=client.diagnostics.get("segmentation_node", {}).get("mode", ""),
            seconds={"playback": round(played - started, 2), "total": round(time.monotonic() - started, 2),
                     "reconstruction_per_frame_ms": client.value("reconstruction_node", "last_duration_ms"),
                     "segmentation_per_keyframe_ms": client.value("segmentation_node", "last_duration_ms"),
                     "map_integration_total_ms": client.value("map_server_node", "integrate_ms_total"),
                     "map_publish_ms": client.value("map_server_node", "last_publish_ms")},
        )
    finally:
        client.close()
        player.stop()
        pipeline.stop()

    loaded = load_map(out_dir / "map.npz")
    export_ply(out_dir / "map.ply", loaded.voxel_map)
    arrays = loaded.voxel_map.to_arrays()
    save_views_png(out_dir / "map.png", arrays.positions, arrays.colours,
                   title=f"ov_mapping demo: {source} ({len(arrays.positions)} points)")
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    _say(f"map: {out_dir / 'map.ply'}  picture: {out_dir / 'map.png'}  report: {out_dir / 'report.json'}")
    _say(json.dumps({k: v for k, v in report.items() if k != "semantic"}))
    return 0
