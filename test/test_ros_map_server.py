"""The map server as a real process: keyframes in over DDS, a map cloud out, SaveMap / LoadMap, bad paths refused."""

import subprocess
import sys

import numpy as np
import pytest

from ov_mapping.core.types import CameraIntrinsics, Keyframe
from ov_mapping.mapping.voxel_map import VoxelMap
from ov_mapping.ros import graph
from ov_mapping.tools.launcher import Launcher, node_command, node_environment


def _keyframe(keyframe_id: int, offset: float) -> Keyframe:
    h, w = 24, 32
    rng = np.random.default_rng(keyframe_id)
    v, u = np.mgrid[0:h, 0:w]
    pointmap = np.stack([u * 0.05 + offset, v * 0.05, np.full_like(u, 2.0, dtype=float)], axis=-1).astype(np.float32)
    pointmap[0, 0] = np.nan  # invalid points must be skipped, not integrated
    return Keyframe(keyframe_id=keyframe_id, stamp=1.0 + keyframe_id, rgb=rng.integers(0, 255, (h, w, 3), np.uint8),
                    intrinsics=CameraIntrinsics(30.0, 30.0, 16.0, 12.0, w, h), pose=np.eye(4),
                    pointmap=pointmap, confidence=np.ones((h, w), np.float32))


@pytest.fixture
def client():
    from ov_mapping.ros.graph_client import GraphClient

    c = GraphClient("test_client")
    yield c
    c.close()


@pytest.fixture
def map_server(tmp_path):
    launcher = Launcher([graph.SEGMENTATION, graph.MAP_SERVER], extra_params={
        graph.MAP_SERVER.name: {"map_dir": str(tmp_path / "maps"), "publish_rate": 5.0, "voxel_size": 0.05,
                                "autosave_period": 1.0}})
    launcher.start()
    yield launcher, tmp_path / "maps"
    launcher.stop()


def _cloud_points(msg) -> int:
    return msg.width * msg.height


def _wait_cloud(client, min_points: int, timeout: float = 30.0):
    from sensor_msgs.msg import PointCloud2

    from ov_mapping.ros.qos import LATCHED_QOS

    latest = []
    sub = client.subscribe(PointCloud2, graph.TOPIC_MAP_CLOUD, LATCHED_QOS, latest.append)
    try:
        client.spin_until(lambda: latest and _cloud_points(latest[-1]) >= min_points, timeout)
    finally:
        client.node.destroy_subscription(sub)
    return latest[-1] if latest else None


def test_keyframes_in_make_a_map_cloud_and_save_load_restores_it(client, map_server, tmp_path):
    from ov_mapping.msg import Keyframe as KeyframeMsg
    from ov_mapping.ros import conversions as conv
    from ov_mapping.ros.qos import PIPELINE_QOS
    from ov_mapping.srv import LoadMap, SaveMap

    launcher, map_dir = map_server
    publisher = client.node.create_publisher(KeyframeMsg, graph.TOPIC_KEYFRAMES, PIPELINE_QOS)
    node = client.node
    assert client.spin_until(lambda: publisher.get_subscription_count() > 0 and node.count_subscribers(
        graph.TOPIC_SEGMENTED) > 0 and node.count_publishers(graph.TOPIC_SEGMENTED) > 0, 30), "pipeline not connected"
    keyframes = [_keyframe(i, offset=i * 0.6) for i in range(2)]
    for keyframe in keyframes:
        publisher.publish(conv.keyframe_to_msg(keyframe, "map"))
    # Exactly the voxels a local map of the same keyframes holds (the second overlaps the first partly).
    expected = VoxelMap(0.05)
    for keyframe in keyframes:
        expected.integrate(*keyframe.valid_points())
    cloud = _wait_cloud(client, min_points=len(expected))
    assert cloud is not None and _cloud_points(cloud) == len(expected), "the map cloud lacks keyframes"
    decoded = conv.decode_pointcloud(cloud)
    positions = np.stack([decoded["x"], decoded["y"], decoded["z"]], axis=1)
    assert np.isfinite(positions).all()
    assert np.allclose(positions[:, 2], 2.0, atol=1e-4)
    before = _cloud_points(cloud)

    # The map changed, so the autosave timer writes it (atomically: no temporary file is left behind).
    assert client.spin_until(lambda: (map_dir / "autosave.npz").is_file(), 10)
    assert not [p for p in map_dir.iterdir() if p.suffix not in (".npz",)]

    saved = client.call(SaveMap, graph.SERVICE_SAVE, SaveMap.Request(path="kitchen"))
    assert saved.success, saved.message
    assert (map_dir / "kitchen.npz").is_file()
    assert saved.num_points == before

    for bad in ("/etc/passwd", "../outside", "sub/../../outside"):
        refused = client.call(SaveMap, graph.SERVICE_SAVE, SaveMap.Request(path=bad))
        assert not refused.success and "inside" in refused.message
    assert not (tmp_path / "outside.npz").exists()

    # A fresh map server restores the same points from the file.
    launcher.stop()
    fresh = Launcher([graph.MAP_SERVER], extra_params={graph.MAP_SERVER.name: {"map_dir": str(map_dir),
                                                                                "publish_rate": 5.0}})
    fresh.start()
    try:
        missing = client.call(LoadMap, graph.SERVICE_LOAD, LoadMap.Request(path="no_such_map"))
        assert not missing.success and "unchanged" in missing.message
        loaded = client.call(LoadMap, graph.SERVICE_LOAD, LoadMap.Request(path="kitchen"))
        assert loaded.success, loaded.message
        assert loaded.num_points == before
        restored = _wait_cloud(client, min_points=before)
        restored_xyz = conv.decode_pointcloud(restored)
        order_a, order_b = np.lexsort(positions.T), np.lexsort(
            np.stack([restored_xyz["x"], restored_xyz["y"], restored_xyz["z"]], 0))
        assert np.allclose(positions[order_a], np.stack([restored_xyz["x"], restored_xyz["y"],
                                                         restored_xyz["z"]], 1)[order_b])
    finally:
        fresh.stop()


def test_a_bad_parameter_is_refused_with_a_clear_message(tmp_path):
    command = node_command(graph.MAP_SERVER, graph.default_params_file(), {"voxel_size": -1.0,
                                                                            "map_dir": str(tmp_path)})
    result = subprocess.run(command, env=node_environment(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "voxel_size" in result.stdout + result.stderr


def test_launcher_stops_every_node_on_ctrl_c_and_exits_zero(tmp_path):
    import signal
    import time

    env = node_environment()
    process = subprocess.Popen([sys.executable, "-m", "ov_mapping.tools.cli", "launch"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 60
    # Wait for every node to report ready before interrupting.
    while time.monotonic() < deadline and not all(
            any(name in line and ("ready" in line or "mode" in line or "source" in line) for line in lines)
            for name in ("reconstruction_node", "segmentation_node", "map_server_node")):
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0, "".join(lines) + out
    text = "".join(lines) + out
    for name in ("reconstruction_node", "segmentation_node", "map_server_node"):
        assert f"[{name}]" in text
