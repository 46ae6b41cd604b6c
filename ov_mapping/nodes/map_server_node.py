"""map_server_node: integrates segmented keyframes into the map, publishes it, answers text queries, saves and loads.

Topics: ``segmented_keyframes`` in; out, all latched and published at ``publish_rate`` only when the map changed:
``map_cloud`` (PointCloud2: x y z rgb instance label score; label indexes the vocabulary), ``instances``
(InstanceArray), ``markers`` (RViz boxes + labels), ``vocabulary``. Services: ``query`` (text -> instances, scores,
goal poses, points), ``set_vocabulary``, ``embed_text``, ``save_map`` / ``load_map`` (paths inside ``map_dir`` only;
atomic writes). Autosaves every ``autosave_period`` seconds when the map changed. Without CLIP weights the map is
geometric and instance-level; the text services answer with a clear failure.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2
from visualization_msgs.msg import MarkerArray

from ov_mapping.core.params import ParamSpec
from ov_mapping.core.worker import DropOldestWorker
from ov_mapping.mapping.map_store import MapPathError, MapStore, TextEncoderMissingError, resolve_map_path
from ov_mapping.mapping.persistence import MapFileError
from ov_mapping.msg import InstanceArray, Vocabulary
from ov_mapping.msg import SegmentedKeyframe as SegmentedKeyframeMsg
from ov_mapping.ros import conversions as conv
from ov_mapping.ros.diagnostics import DiagnosticsPublisher
from ov_mapping.ros.node_main import run_node
from ov_mapping.ros.params import declare_parameters
from ov_mapping.ros.qos import LATCHED_QOS, PIPELINE_QOS
from ov_mapping.srv import EmbedText, LoadMap, QueryText, SaveMap, SetVocabulary

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
    ParamSpec("clip_model", "clip_vit_b32_laion2b_s34b_b79k", "CLIP text encoder for queries and vocabularies; "
              "must match the segmentation node's."),
    ParamSpec("clip_weights", "", "open_clip pretrained tag or checkpoint file (with clip_model or clip_config)."),
    ParamSpec("clip_config", "", "JSON config of a custom open_clip architecture (clip_weights is its checkpoint)."),
    ParamSpec("device", "cpu", "Torch device of the text encoder.", choices=("cpu", "cuda")),
    ParamSpec("instance_overlap", 0.25, "A segment joins an instance when their voxel overlap (over the smaller) "
              "reaches this ...", min_value=0.0, max_value=1.0),
    ParamSpec("instance_similarity", 0.75, "... and their descriptors' cosine similarity reaches this.",
              min_value=-1.0, max_value=1.0),
    ParamSpec("vocabulary", [""], "Initial label vocabulary (empty: none until set_vocabulary)."),
    ParamSpec("query_min_observations", 2, "Only instances seen in at least this many keyframes answer queries.",
              min_value=1, max_value=1000),
    ParamSpec("default_top_k", 5, "Instances a query returns when its top_k is 0.", min_value=1, max_value=1000),
    ParamSpec("goal_standoff", 0.5, "Distance (m) a goal pose keeps from the object's box.", min_value=0.0,
              max_value=10.0),
    ParamSpec("robot_radius", 0.3, "Goal poses keep this clearance (m) from mapped points.", min_value=0.0,
              max_value=5.0),
)


class MapServerNode(Node):
    def __init__(self) -> None:
        super().__init__("map_server_node")
        p = self.params = declare_parameters(self, PARAMS)
        self.map_dir = Path(p.map_dir).expanduser().resolve()
        self.map_dir.mkdir(parents=True, exist_ok=True)
        self.text_encoder = self._load_text_encoder()
        self.store = MapStore(p.voxel_size, p.max_points, p.map_frame, p.min_confidence,
                              instance_params={"overlap_threshold": p.instance_overlap,
                                               "similarity_threshold": p.instance_similarity},
                              embed_text=self.text_encoder.encode_text if self.text_encoder else None,
                              goal_params={"standoff": p.goal_standoff, "robot_radius": p.robot_radius},
                              query_min_observations=p.query_min_observations)
        initial_vocabulary = [label for label in p.vocabulary if label]
        if initial_vocabulary and self.text_encoder is not None:
            self.store.set_vocabulary(initial_vocabulary)
        if p.load_on_start:
            self._load(p.load_on_start)
        self.bad_inputs = 0
        self.last_error = ""
        self._published_version = None
        self._saved_version = self.store.version
        self.publish_seconds = 0.0

        self.pub_cloud = self.create_publisher(PointCloud2, "map_cloud", LATCHED_QOS)
        self.pub_instances = self.create_publisher(InstanceArray, "instances", LATCHED_QOS)
        self.pub_markers = self.create_publisher(MarkerArray, "markers", LATCHED_QOS)
        self.pub_vocabulary = self.create_publisher(Vocabulary, "vocabulary", LATCHED_QOS)
        self.publish_vocabulary()
        self.create_subscription(SegmentedKeyframeMsg, "segmented_keyframes", self.on_keyframe, PIPELINE_QOS)
        self.create_service(SaveMap, "save_map", self.on_save)
        self.create_service(LoadMap, "load_map", self.on_load)
        self.create_service(QueryText, "query", self.on_query)
        self.create_service(SetVocabulary, "set_vocabulary", self.on_set_vocabulary)
        self.create_service(EmbedText, "embed_text", self.on_embed)
        self.worker = DropOldestWorker(self.integrate, p.queue_size, "map_integration", self.on_worker_error)
        self.create_timer(1.0 / p.publish_rate, self.publish_if_changed)
        if p.autosave_period > 0:
            self.create_timer(p.autosave_period, self.autosave)
        self.diagnostics = DiagnosticsPublisher(self, self.collect_diagnostics)
        self.get_logger().info(f"map server ready: voxel {p.voxel_size} m, budget {p.max_points} points, "
                               f"maps in {self.map_dir}")

    def on_keyframe(self, msg: SegmentedKeyframeMsg) -> None:
        self.worker.submit(msg)

    def _load_text_encoder(self):
        from ov_mapping.models.registry import missing_clip_weights

        p = self.params
        missing = missing_clip_weights(p.clip_model, p.clip_weights, p.clip_config)
        if missing:
            self.get_logger().warning(f"no text encoder, queries and vocabularies are off: {missing}")
            return None
        from ov_mapping.models.clip import load_clip  # torch and open_clip load only when there are weights

        encoder = load_clip(p.clip_model, p.clip_weights, p.clip_config, p.device)
        self.get_logger().info(f"text encoder: {encoder.name}")
        return encoder

    def integrate(self, msg: SegmentedKeyframeMsg) -> None:
        try:
            segmented = conv.msg_to_segmented_keyframe(msg)
        except ValueError as exc:
            self._refuse(f"keyframe refused: {exc}")
            return
        self.store.integrate_segmented(segmented)

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
        stamp = cloud.header.stamp
        records = self.store.instance_records()
        self.pub_instances.publish(conv.instances_to_msg(records, self.params.map_frame, stamp))
        self.pub_markers.publish(conv.instances_to_markers(records, self.params.map_frame, stamp))
        self._published_version = version
        self.publish_seconds = time.perf_counter() - start

    def publish_vocabulary(self) -> None:
        msg = Vocabulary(labels=list(self.store.vocabulary))
        msg.header.stamp = self.get_clock().now().to_msg()
        self.pub_vocabulary.publish(msg)

    # ------------------------------------------------------------------ text services
    def on_query(self, request: QueryText.Request, response: QueryText.Response) -> QueryText.Response:
        top_k = request.top_k or self.params.default_top_k
        if not 0.0 <= request.min_score <= 1.0:
            response.success, response.message = False, f"min_score must lie in [0, 1], got {request.min_score}"
            return response
        try:
            hits = self.store.query(request.text, top_k=top_k, min_score=request.min_score)
        except (ValueError, TextEncoderMissingError) as exc:
            response.success, response.message = False, str(exc)
            return response
        stamp = self.get_clock().now().to_msg()
        frame = self.params.map_frame
        response.success = True
        response.message = f"{len(hits)} instances match {request.text!r}"
        response.instances = [conv.instance_to_msg(hit.record) for hit in hits]
        response.scores = [float(hit.score) for hit in hits]
        response.goals = [conv.matrix_to_pose_stamped(hit.goal, frame, stamp) for hit in hits]
        if hits:
            points = np.concatenate([hit.points for hit in hits])
            colours = np.concatenate([hit.colours for hit in hits])
            ids = np.concatenate([np.full(len(hit.points), hit.instance_id, np.int32) for hit in hits])
            scores = np.concatenate([np.full(len(hit.points), hit.score, np.float32) for hit in hits])
            response.points = conv.encode_xyzrgb(points, colours, instance=ids, score=scores, frame_id=frame,
                                                 stamp=stamp)
        return response

    def on_set_vocabulary(self, request: SetVocabulary.Request,
                          response: SetVocabulary.Response) -> SetVocabulary.Response:
        try:
            labelled = self.store.set_vocabulary(list(request.labels))
        except (ValueError, TextEncoderMissingError) as exc:
            response.success, response.message = False, f"vocabulary unchanged: {exc}"
            return response
        self.publish_vocabulary()
        response.success, response.num_instances_labelled = True, labelled
        response.message = f"{len(request.labels)} labels; {labelled} instances labelled"
        self.get_logger().info(response.message)
        return response

    def on_embed(self, request: EmbedText.Request, response: EmbedText.Response) -> EmbedText.Response:
        try:
            response.embedding = self.store.embed(request.text).astype(np.float32).tolist()
        except (ValueError, TextEncoderMissingError) as exc:
            response.success, response.message = False, str(exc)
            return response
        response.success, response.model_name = True, self.text_encoder.name
        return response

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
        if hasattr(self, "pub_vocabulary"):
            self.publish_vocabulary()

    def on_save(self, request: SaveMap.Request, response: SaveMap.Response) -> SaveMap.Response:
        requested = request.path or time.strftime("map_%Y%m%d_%H%M%S")
        try:
            saved = self._save(requested)
        except (MapPathError, MapFileError, OSError) as exc:
            response.success, response.message = False, str(exc)
            self.get_logger().warning(f"save_map refused: {exc}")
            return response
        response.success, response.path, response.num_points = True, str(saved), len(self.store)
        response.num_instances = self.store.num_instances
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
        response.num_instances = self.store.num_instances
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
        values = {"keyframes": s.keyframes, "points": len(self.store), "instances": self.store.num_instances,
                  "vocabulary_size": len(self.store.vocabulary), "points_in": s.points_in,
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
