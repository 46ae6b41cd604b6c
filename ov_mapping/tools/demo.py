"""``ov-mapping demo``: play a sequence through the whole node graph and show what came out.

Starts the three nodes and the player as separate processes, waits until the player is done and the map server has
integrated every keyframe, saves the map through the SaveMap service, then writes into the output directory:
``map.npz`` (the saved map), ``map.ply``, ``map.png`` (top and perspective views) and ``report.json`` (frames in,
keyframes, dropped frames, points, time per stage).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ov_mapping.mapping.persistence import export_ply, load_map
from ov_mapping.mapping.render import save_views_png
from ov_mapping.ros import graph
from ov_mapping.tools.launcher import Launcher


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
    """Every pipeline topic has its publisher and subscriber, so no keyframe is lost at start-up."""
    node = client.node
    return all(node.count_publishers(topic) > 0 and node.count_subscribers(topic) > 0
               for topic in (graph.TOPIC_KEYFRAMES, graph.TOPIC_SEGMENTED)) and \
        node.count_subscribers(graph.CAMERA_TOPICS["image"]) > 0


def run_demo(source: str, out_dir: Path, rate: float = 1.0, frames: int = 0, timeout: float = 170.0,
             odometry: bool = False) -> int:
    """Run the demo; with ``odometry`` the camera poses are estimated (RGB-D odometry) instead of taken from the
    recording's poses, which the player publishes on TF."""
    from ov_mapping.ros.graph_client import GraphClient
    from ov_mapping.srv import SaveMap

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    pose_from_tf = {} if odometry else {"pose_frame": "odom"}
    extra = {
        graph.PLAYER.name: {"input": source, "rate": rate, "max_frames": frames, "wait_for_subscribers": 1},
        graph.RECONSTRUCTION.name: {"input_reliability": "reliable", **pose_from_tf},
        graph.MAP_SERVER.name: {"map_dir": str(out_dir), "autosave_period": 0.0},
    }
    pipeline = Launcher(list(graph.PIPELINE), extra_params=extra)
    player = Launcher([graph.PLAYER], extra_params=extra)
    client = GraphClient("ov_mapping_demo")
    report = {"input": source, "rate": rate, "poses": "rgbd_odometry" if odometry else "recorded (TF)"}

    def failed():
        return pipeline.poll() or player.poll()

    try:
        pipeline.start()
        if not client.spin_until(lambda: _pipeline_connected(client) or failed(), 60):
            _say("the pipeline nodes did not connect within 60 s")
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
        response = client.call(SaveMap, graph.SERVICE_SAVE, SaveMap.Request(path="map"))
        if not response.success:
            _say(f"save_map failed: {response.message}")
            return 1
        report.update(
            frames_in=int(client.value("reconstruction_node", "frames_paired")),
            keyframes=int(client.value("reconstruction_node", "keyframes")),
            keyframes_integrated=int(client.value("map_server_node", "keyframes")),
            dropped_frames=int(client.value("reconstruction_node", "dropped")
                               + client.value("reconstruction_node", "unsynchronised")),
            dropped_keyframes=int(client.value("map_server_node", "dropped")),
            points=int(response.num_points),
            seconds={"playback": round(played - started, 2), "total": round(time.monotonic() - started, 2),
                     "reconstruction_per_frame_ms": client.value("reconstruction_node", "last_duration_ms"),
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
    _say(json.dumps(report))
    return 0
