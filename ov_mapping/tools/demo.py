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
    """True once the map server has integrated every keyframe the reconstruction node made."""
    made = client.value("reconstruction_node", "keyframes", -1)
    integrated = client.value("map_server_node", "keyframes", -2)
    queue = client.value("map_server_node", "queue_depth", 1)
    state = (made, integrated)
    stable = state == last.get("state") and time.monotonic() - last.get("since", 0) > 2.0
    if state != last.get("state"):
        last.update(state=state, since=time.monotonic())
    return made >= 0 and made == integrated and queue == 0 and stable


def run_demo(source: str, out_dir: Path, rate: float = 1.0, frames: int = 0, timeout: float = 170.0) -> int:
    from ov_mapping.ros.graph_client import GraphClient
    from ov_mapping.srv import SaveMap

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    pose_from_tf = {"pose_frame": "odom"} if source == "synthetic" else {}
    extra = {
        graph.PLAYER.name: {"input": source, "rate": rate, "max_frames": frames, "wait_for_subscribers": 1},
        graph.RECONSTRUCTION.name: {"input_reliability": "reliable", **pose_from_tf},
        graph.MAP_SERVER.name: {"map_dir": str(out_dir), "autosave_period": 0.0},
    }
    launcher = Launcher([*graph.PIPELINE, graph.PLAYER], extra_params=extra)
    client = GraphClient("ov_mapping_demo")
    report = {"input": source, "rate": rate}
    try:
        launcher.start()
        _say(f"playing {source!r} through the graph (timeout {timeout:.0f} s)")
        if not client.spin_until(lambda: client.player_done or launcher.poll() is not None, timeout):
            _say("timed out waiting for the player")
            return 1
        if not client.player_done:
            name, code = launcher.poll()
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
        launcher.stop()

    loaded = load_map(out_dir / "map.npz")
    export_ply(out_dir / "map.ply", loaded.voxel_map)
    arrays = loaded.voxel_map.to_arrays()
    save_views_png(out_dir / "map.png", arrays.positions, arrays.colours,
                   title=f"ov_mapping demo: {source} ({len(arrays.positions)} points)")
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    _say(f"map: {out_dir / 'map.ply'}  picture: {out_dir / 'map.png'}  report: {out_dir / 'report.json'}")
    _say(json.dumps(report))
    return 0
