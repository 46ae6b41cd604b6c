#!/usr/bin/env python3
"""Mapping benchmarks (issue 2). Not a test: prints a table and writes JSON.

Figures, each the median of several runs:
- keyframe integration throughput (points/s) on redkitchen keyframes (or synthetic points when the data is absent);
- PointCloud2 encode / decode of 1M points (ms), with the ratio against a plain numpy copy of the same bytes;
- map publish latency end to end between two processes (map server -> subscriber, stamp to arrival);
- peak memory (VmHWM) of a map server process after the whole redkitchen sequence went through it over DDS.

Usage: python scripts/bench_mapping.py [--out out/bench_mapping.json] [--data ../shared/data/redkitchen_rgbd_a]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 101)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_large_messages.xml"))

from ov_mapping.core.types import CameraIntrinsics, Keyframe  # noqa: E402
from ov_mapping.mapping.voxel_map import VoxelMap  # noqa: E402


def median_time(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load_keyframes(data: Path, limit: int = 0, stride: int = 2) -> list[Keyframe]:
    from ov_mapping.datasets.folder import open_sequence
    from ov_mapping.reconstruction.rgbd import frame_to_keyframe

    sequence = open_sequence(data)
    count = len(sequence) if not limit else min(limit, len(sequence))
    return [frame_to_keyframe(sequence[i], sequence[i].pose, i, stride=stride) for i in range(count)]


def bench_integration(keyframes: list[Keyframe]) -> dict:
    clouds = [kf.valid_points() for kf in keyframes]
    total = sum(len(p) for p, _ in clouds)

    def integrate_all():
        voxel_map = VoxelMap(0.02)
        for points, colours in clouds:
            voxel_map.integrate(points, colours)
        return voxel_map

    seconds = median_time(integrate_all, runs=3)
    return {"keyframes": len(clouds), "points": total, "seconds": seconds, "points_per_second": total / seconds,
            "map_voxels": len(integrate_all())}


def bench_pointcloud(n: int = 1_000_000) -> dict:
    from ov_mapping.ros import conversions as conv

    rng = np.random.default_rng(0)
    points = rng.normal(size=(n, 3)).astype(np.float32)
    colours = rng.integers(0, 255, (n, 3), dtype=np.uint8)
    instance = rng.integers(-1, 50, n, dtype=np.int32)
    label = rng.integers(-1, 20, n, dtype=np.int32)
    score = rng.random(n, dtype=np.float32)
    msg = conv.encode_xyzrgb(points, colours, instance=instance, label=label, score=score, frame_id="map")
    raw = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    encode = median_time(lambda: conv.encode_xyzrgb(points, colours, instance=instance, label=label, score=score,
                                                   frame_id="map"))
    decode = median_time(lambda: conv.decode_pointcloud(msg))
    copy = median_time(lambda: raw.copy())
    return {"points": n, "bytes": int(raw.nbytes), "encode_ms": encode * 1e3, "decode_ms": decode * 1e3,
            "numpy_copy_ms": copy * 1e3, "encode_vs_copy": encode / copy, "decode_vs_copy": decode / copy}


def bench_publish_latency(map_file: Path, samples: int = 10) -> dict:
    """Latency from the map server stamping a cloud to its arrival in another process."""
    from sensor_msgs.msg import PointCloud2

    from ov_mapping.msg import Keyframe as KeyframeMsg
    from ov_mapping.ros import conversions as conv
    from ov_mapping.ros import graph
    from ov_mapping.ros.graph_client import GraphClient
    from ov_mapping.ros.qos import LATCHED_QOS, PIPELINE_QOS
    from ov_mapping.tools.launcher import Launcher

    launcher = Launcher([graph.SEGMENTATION, graph.MAP_SERVER], extra_params={graph.MAP_SERVER.name: {
        "map_dir": str(map_file.parent), "load_on_start": map_file.stem, "publish_rate": 4.0}})
    launcher.start()
    client = GraphClient("bench_latency")
    latencies, sizes = [], []

    def on_cloud(msg):
        now = client.node.get_clock().now().nanoseconds * 1e-9
        latencies.append(now - conv.stamp_to_seconds(msg.header.stamp))
        sizes.append(msg.width * msg.height)

    try:
        client.subscribe(PointCloud2, graph.TOPIC_MAP_CLOUD, LATCHED_QOS, on_cloud)
        client.spin_until(lambda: latencies, 60)
        publisher = client.node.create_publisher(KeyframeMsg, graph.TOPIC_KEYFRAMES, PIPELINE_QOS)
        client.spin_until(lambda: publisher.get_subscription_count() > 0, 30)
        h, w = 8, 8
        for i in range(samples):  # each tiny keyframe changes the map, so the server publishes again
            kf = Keyframe(i, float(i), np.zeros((h, w, 3), np.uint8), CameraIntrinsics(8, 8, 4, 4, w, h),
                          np.eye(4), np.full((h, w, 3), 100.0 + i, np.float32), np.ones((h, w), np.float32))
            count = len(latencies)
            publisher.publish(conv.keyframe_to_msg(kf, "map"))
            client.spin_until(lambda: len(latencies) > count, 10)
    finally:
        client.close()
        launcher.stop()
    steady = latencies[1:] or latencies
    return {"points": int(statistics.median(sizes)) if sizes else 0, "samples": len(steady),
            "median_ms": statistics.median(steady) * 1e3 if steady else None,
            "max_ms": max(steady) * 1e3 if steady else None}


def bench_server_memory(keyframes: list[Keyframe]) -> dict:
    """Feed every keyframe to a map server process over DDS and read its peak resident memory."""
    from ov_mapping.msg import Keyframe as KeyframeMsg
    from ov_mapping.ros import conversions as conv
    from ov_mapping.ros import graph
    from ov_mapping.ros.graph_client import GraphClient
    from ov_mapping.ros.qos import PIPELINE_QOS
    from ov_mapping.tools.launcher import Launcher

    with tempfile.TemporaryDirectory() as tmp:
        launcher = Launcher([graph.SEGMENTATION, graph.MAP_SERVER],
                            extra_params={graph.MAP_SERVER.name: {"map_dir": tmp, "queue_size": 1000}})
        launcher.start()
        client = GraphClient("bench_memory")
        try:
            publisher = client.node.create_publisher(KeyframeMsg, graph.TOPIC_KEYFRAMES, PIPELINE_QOS)
            client.spin_until(lambda: publisher.get_subscription_count() > 0, 30)
            start = time.perf_counter()
            for kf in keyframes:  # 10 keyframes a second: a fast robot's keyframe rate
                publisher.publish(conv.keyframe_to_msg(kf, "map"))
                client.spin_for(0.1)
            client.spin_until(lambda: client.value("map_server_node", "keyframes") >= len(keyframes), 60)
            seconds = time.perf_counter() - start
            integrated = int(client.value("map_server_node", "keyframes"))
            pid = [n.process.pid for n in launcher.nodes if n.spec is graph.MAP_SERVER][0]
            status = Path(f"/proc/{pid}/status").read_text()
            peak_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
            points = client.value("map_server_node", "points")
        finally:
            client.close()
            launcher.stop()
    return {"keyframes_sent": len(keyframes), "keyframes_integrated": integrated, "map_points": int(points),
            "peak_rss_mb": peak_kb / 1024, "seconds_to_integrate_all": seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench_mapping.json")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "redkitchen_rgbd_a")
    args = parser.parse_args(argv)
    results = {"machine": {"cpus": os.cpu_count()}}
    keyframes = load_keyframes(args.data) if args.data.is_dir() else []
    if keyframes:
        results["integration"] = bench_integration(keyframes)
    results["pointcloud2_1M"] = bench_pointcloud()
    if keyframes:
        from ov_mapping.mapping.persistence import save_map

        with tempfile.TemporaryDirectory() as tmp:
            voxel_map = VoxelMap(0.02)
            for kf in keyframes:
                voxel_map.integrate(*kf.valid_points())
            save_map(Path(tmp) / "bench.npz", voxel_map)
            results["publish_latency"] = bench_publish_latency(Path(tmp) / "bench.npz")
        results["map_server_memory"] = bench_server_memory(keyframes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"{'benchmark':<22} {'figure':<28} value")
    for section, figures in results.items():
        for key, value in figures.items():
            shown = f"{value:,.3f}" if isinstance(value, float) else f"{value}"
            print(f"{section:<22} {key:<28} {shown}")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
