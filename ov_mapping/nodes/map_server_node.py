"""map_server_node: integrates segmented keyframes into the map, publishes it, saves and loads it.

Topics: ``segmented_keyframes`` in; ``map_cloud`` (PointCloud2: x y z rgb instance label score; latched, published at
``publish_rate`` and only when the map changed) out. Services: ``save_map`` / ``load_map`` (paths inside ``map_dir``
only; atomic writes). Autosaves every ``autosave_period`` seconds when the map changed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rclpy.node import Node
from sensor_msgs.msg import PointCloud2

from ov_mapping.core.params import ParamSpec
from ov_mapping.core.worker import DropOldestWorker
from ov_mapping.mapping.map_store import MapPathError, MapStore, resolve_map_path
from ov_mapping.mapping.persistence import MapFileError
from ov_mapping.msg import SegmentedKeyframe as SegmentedKeyframeMsg
from ov_mapping.ros import conversions as conv
from ov_mapping.ros.diagnostics import DiagnosticsPublisher
from ov_mapping.ros.node_main import run_node
from ov_mapping.ros.params import declare_parameters
from ov_mapping.ros.qos import LATCHED_QOS, PIPELINE_QOS
from ov_mapping.srv import LoadMap, SaveMap

PARAMS = (
    ParamSpec("map_frame", "map", "Frame of the map."),
    ParamSpec("voxel_size", 0.02, "Voxel edge length (m).", min_value=0.001, max_value=1.0),
    ParamSpec("max_points", 2_000_000, "Voxel budget; past it the voxel size doubles (coarser map, same coverage).",
              min_value=1000, max_value=100_000_000),
    ParamSpec("min_confidence", 0.0, "Pointmap points at or below this confidence are not integrated.",
              min_value=0.0, max_value=1e6),
    ParamSpec("publish_rate", 1.0, "Map cloud publications per second (only when the map changed).",
              min_value=0.01, max_value=100.0),
    ParamSpec("map_dir", "~/.ros/ov_mapping/maps", "Directory save_map / load_map / autosave use; other paths "
              "are refused."),
    ParamSpec("autosave_period", 0.0, "Autosave every this many seconds when the map changed (0 = off).",
              min_value=0.0, max_value=86400.0),
    ParamSpec("autosave_name", "autosave", "File name of the autosave inside map_dir."),
    ParamSpec("load_on_start", "", "Load this map (inside map_dir) at start; empty = start empty."),
    ParamSpec("queue_size", 4, "Keyframes waiting for integration; older ones are dropped.", min_value=1,
              max_value=1000),
)


class MapServerNode(Node):
    def __init__(self) -> None:
        super().__init__("map_server_node")
        p = self.params = declare_parameters(self, PARAMS)
        self.map_dir = Path(p.map_dir).expanduser().resolve()
        self.map_dir.mkdir(parents=True, exist_ok=True)
        self.store = MapStore(p.voxel_size, p.max_points, p.map_frame, p.min_confidence)
        if p.load_on_start:
            self._load(p.load_on_start)
        self.bad_inputs = 0
        self.last_error = ""
        self._published_version = None
        self._saved_version = self.store.version
        self.publish_seconds = 0.0

        self.pub_cloud = self.create_publisher(PointCloud2, "map_cloud", LATCHED_QOS)
        self.create_subscription(SegmentedKeyframeMsg, "segmented_keyframes", self.on_keyframe, PIPELINE_QOS)
        self.create_service(SaveMap, "save_map", self.on_save)
        self.create_service(LoadMap, "load_map", self.on_load)
        self.worker = DropOldestWorker(self.integrate, p.queue_size, "map_integration", self.on_worker_error)
        self.create_timer(1.0 / p.publish_rate, self.publish_if_changed)
        if p.autosave_period > 0:
            self.create_timer(p.autosave_period, self.autosave)
        self.diagnostics = DiagnosticsPublisher(self, self.collect_diagnostics)
        self.get_logger().info(f"map server ready: voxel {p.voxel_size} m, budget {p.max_points} points, "
                               f"maps in {self.map_dir}")

    def on_keyframe(self, msg: SegmentedKeyframeMsg) -> None:
        self.worker.submit(msg)

    def integrate(self, msg: SegmentedKeyframeMsg) -> None:
        try:
            segmented = conv.msg_to_segmented_keyframe(msg)
        except ValueError as exc:
            self._refuse(f"keyframe refused: {exc}")
            return
        self.store.integrate_keyframe(segmented.keyframe)

    def on_worker_error(self, item, exc: BaseException) -> None:
        self._refuse(f"keyframe failed: {type(exc).__name__}: {exc}")

    def _refuse(self, message: str) -> None:
        self.bad_inputs += 1
        self.last_error = message
        self.get_logger().warning(message, throttle_duration_sec=5.0)

    def publish_if_changed(self) -> None:
        if self.store.version == self._published_version:
            return
        start = time.perf_counter()
        version, arrays = self.store.snapshot()
        cloud = conv.encode_xyzrgb(arrays.positions, arrays.colours, instance=arrays.instance_ids,
                                   label=arrays.label_ids, score=arrays.label_scores,
                                   frame_id=self.params.map_frame, stamp=self.get_clock().now().to_msg())
        self.pub_cloud.publish(cloud)
        self._published_version = version
        self.publish_seconds = time.perf_counter() - start

    # ------------------------------------------------------------------ persistence
    def _save(self, requested: str) -> Path:
        path = resolve_map_path(self.map_dir, requested)
        path.parent.mkdir(parents=True, exist_ok=True)
        version = self.store.version
        saved = self.store.save(path)
        self._saved_version = version
        return saved

    def _load(self, requested: str) -> None:
        path = resolve_map_path(self.map_dir, requested)
        if not path.is_file():
            raise MapFileError(f"no map file {path}")
        self.store.load(path)

    def on_save(self, request: SaveMap.Request, response: SaveMap.Response) -> SaveMap.Response:
        requested = request.path or time.strftime("map_%Y%m%d_%H%M%S")
        try:
            saved = self._save(requested)
        except (MapPathError, MapFileError, OSError) as exc:
            response.success, response.message = False, str(exc)
            self.get_logger().warning(f"save_map refused: {exc}")
            return response
        response.success, response.path, response.num_points = True, str(saved), len(self.store)
        response.message = f"saved {len(self.store)} points to {saved}"
        self.get_logger().info(response.message)
        return response

    def on_load(self, request: LoadMap.Request, response: LoadMap.Response) -> LoadMap.Response:
        try:
            self._load(request.path)
        except (MapPathError, MapFileError, OSError) as exc:
            response.success, response.message = False, f"map unchanged: {exc}"
            self.get_logger().warning(f"load_map refused: {exc}")
            return response
        response.success, response.num_points = True, len(self.store)
        response.message = f"loaded {len(self.store)} points from {request.path}"
        self.get_logger().info(response.message)
        return response

    def autosave(self) -> None:
        if self.store.version == self._saved_version:
            return
        try:
            saved = self._save(self.params.autosave_name)
            self.get_logger().info(f"autosaved {len(self.store)} points to {saved}")
        except (MapPathError, MapFileError, OSError) as exc:
            self._refuse(f"autosave failed: {exc}")

    def collect_diagnostics(self):
        s, w = self.store.stats, self.worker.stats
        values = {"keyframes": s.keyframes, "points": len(self.store), "points_in": s.points_in,
                  "points_rejected": s.points_rejected, "dropped": w.dropped, "failed": w.failed,
                  "queue_depth": w.queue_depth, "voxel_size": self.store.voxel_map.voxel_size,
                  "integrate_ms_total": round(s.seconds * 1e3, 1),
                  "last_publish_ms": round(self.publish_seconds * 1e3, 1), "bad_inputs": self.bad_inputs,
                  "last_error": self.last_error}
        level = "warn" if (w.dropped or self.bad_inputs) else "ok"
        return level, f"{len(self.store)} points", values

    def close(self) -> None:
        self.worker.stop()


def main(args=None) -> int:
    return run_node(MapServerNode, args)


if __name__ == "__main__":
    sys.exit(main())
