"""reconstruction_node: camera stream in, keyframes with world pointmaps and camera poses out.

RGB-D mode: colour and depth are paired by stamp; the camera pose comes from TF (``pose_frame`` set) or from RGB-D
odometry; frames that move or age enough become keyframes. RGB mode: CLIP3R (SLAM3R I2P + L2W with CLIP injection)
reconstructs a world pointmap per keyframe from colour alone, on sliding causal windows, and recovers each camera pose
from its local and world pointmaps; its scale is not metric (``metric_scale`` false in the message). CLIP3R weights
whose I2P carries the CLIP injection need each frame's object-level CLIP map first: the node then computes masks and
their CLIP embeddings itself (``clip3r_mask_source``, ``clip3r_clip_*``) and forwards them as the keyframe's upstream
segments, which the segmentation node reuses instead of computing them again.

Both modes publish ``keyframes`` (ov_mapping/Keyframe), the camera pose (``camera_pose`` and TF ``map_frame`` ->
``tracked_frame``) and a per-keyframe cloud. Decoding and the models run on a worker thread behind a bounded
drop-oldest queue.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Optional

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from tf2_msgs.msg import TFMessage

from ov_mapping.core.params import ParamSpec
from ov_mapping.core.sync import StampSynchronizer
from ov_mapping.core.types import RGBDFrame
from ov_mapping.core.worker import DropOldestWorker
from ov_mapping.geometry.tf_buffer import TransformBuffer, TransformLookupError
from ov_mapping.msg import Keyframe as KeyframeMsg
from ov_mapping.reconstruction.clip3r_factory import (ClipMapSettings, Clip3rSettings, SegmentingStream,
                                                      build_clip_mapper, build_stream)
from ov_mapping.reconstruction.keyframes import KeyframeSelector
from ov_mapping.reconstruction.rgbd import RGBDOdometry, frame_to_keyframe
from ov_mapping.ros import conversions as conv
from ov_mapping.ros.diagnostics import DiagnosticsPublisher
from ov_mapping.ros.node_main import run_node
from ov_mapping.ros.params import declare_parameters
from ov_mapping.ros.qos import PIPELINE_QOS, POSE_QOS, sensor_qos

PARAMS = (
    ParamSpec("mode", "rgbd", "Reconstruction mode: 'rgbd' uses depth images; 'rgb' runs CLIP3R on colour only.",
              choices=("rgbd", "rgb")),
    ParamSpec("map_frame", "map", "Frame of the map, the keyframe pointmaps and the published poses."),
    ParamSpec("pose_frame", "", "Take camera poses from TF, as the transform pose_frame -> camera frame (e.g. 'odom'); "
              "empty: estimate them with RGB-D odometry."),
    ParamSpec("camera_frame", "", "Camera frame for TF lookups; empty: the colour image's frame_id."),
    ParamSpec("tf_timeout", 0.2, "How long to wait for a camera pose on TF before skipping a frame (s).",
              min_value=0.0, max_value=5.0),
    ParamSpec("tracked_frame", "ov_mapping_camera", "Child frame of the published TF map_frame -> camera pose."),
    ParamSpec("use_compressed", False, "Subscribe to image/compressed (jpeg/png) instead of the raw colour image."),
    ParamSpec("input_reliability", "best_effort", "QoS reliability of the camera subscriptions.",
              choices=("best_effort", "reliable")),
    ParamSpec("sync_tolerance", 0.02, "Maximum stamp difference (s) of a colour/depth pair.",
              min_value=0.0005, max_value=1.0),
    ParamSpec("min_depth", 0.1, "Depths below this (m) are invalid.", min_value=0.0, max_value=10.0),
    ParamSpec("max_depth", 5.0, "Depths beyond this (m) are invalid.", min_value=0.1, max_value=100.0),
    ParamSpec("keyframe_translation", 0.10, "A frame that moved this far (m) from the last keyframe is a keyframe.",
              min_value=0.0, max_value=100.0),
    ParamSpec("keyframe_rotation_deg", 10.0, "... or turned this much (degrees).", min_value=0.0, max_value=360.0),
    ParamSpec("keyframe_max_interval", 2.0, "... or is this many seconds after the last keyframe.",
              min_value=0.01, max_value=3600.0),
    ParamSpec("keyframe_min_interval", 0.0, "Keyframes are at least this many seconds apart.",
              min_value=0.0, max_value=3600.0),
    ParamSpec("pointmap_stride", 2, "Keep every Nth pixel (each way) in the keyframe pointmap.",
              min_value=1, max_value=16),
    ParamSpec("odometry_max_failures", 5, "After this many frames in a row without odometry, restart tracking at the "
              "last good pose (the map may show a seam; staying lost would stop mapping).", min_value=1,
              max_value=1000),
    ParamSpec("queue_size", 2, "Frames waiting for the worker; older ones are dropped.", min_value=1, max_value=100),
    ParamSpec("publish_keyframe_cloud", True, "Also publish each keyframe's points as a PointCloud2."),
    # RGB mode (CLIP3R).
    ParamSpec("clip3r_config", "slam3r_i2p", "CLIP3R architecture: 'slam3r_i2p' (public checkpoints) or 'small'.",
              choices=("slam3r_i2p", "small")),
    ParamSpec("clip3r_i2p_weights", "slam3r_i2p", "I2P checkpoint: a registry name or a file."),
    ParamSpec("clip3r_l2w_weights", "slam3r_l2w", "L2W checkpoint: a registry name or a file."),
    ParamSpec("clip3r_allow_random_weights", False, "Run with untrained networks when weights are missing "
              "(plumbing tests only: the geometry is meaningless)."),
    ParamSpec("clip3r_backend", "torch", "Runtime.", choices=("torch", "onnxruntime", "tensorrt")),
    ParamSpec("clip3r_precision", "fp32", "Precision.", choices=("fp32", "fp16", "bf16")),
    ParamSpec("clip3r_device", "cpu", "Device.", choices=("cpu", "cuda")),
    ParamSpec("clip3r_keyframe_stride", 0, "Every Nth frame is a keyframe; 0 chooses N automatically.", min_value=0,
              max_value=100),
    ParamSpec("clip3r_window_radius", 5, "Past keyframes in each I2P window.", min_value=1, max_value=10),
    ParamSpec("clip3r_lookahead", 0, "Future keyframes in each I2P window (adds latency).", min_value=0, max_value=5),
    ParamSpec("clip3r_register_group", 1, "Keyframes registered per L2W call (1 = lowest latency).", min_value=1,
              max_value=20),
    ParamSpec("clip3r_buffer_size", 100, "Scene frames kept for retrieval (reservoir sampling).", min_value=5,
              max_value=10000),
    ParamSpec("clip3r_i2p_min_confidence", 1.5, "Local points at or below this I2P confidence are dropped.",
              min_value=0.0),
    ParamSpec("clip3r_l2w_min_confidence", 10.0, "World points at or below this L2W confidence are dropped.",
              min_value=0.0),
    # Only for CLIP3R weights with Ov3R's CLIP injection: each frame's object-level CLIP map is computed here and
    # its masks + embeddings travel with the keyframe. The CLIP parameters must match the segmentation node's.
    ParamSpec("clip3r_mask_source", "auto", "Masks of the object-level CLIP map: 'sam', 'graph' (CPU) or 'auto' "
              "(SAM when its weights are on disk, else graph).", choices=("auto", "sam", "graph")),
    ParamSpec("clip3r_clip_model", "clip_vit_b32_laion2b_s34b_b79k", "CLIP of the object-level CLIP map: a registry "
              "name, or an open_clip architecture with clip3r_clip_weights (same as the segmentation node's "
              "clip_model)."),
    ParamSpec("clip3r_clip_weights", "", "open_clip pretrained tag or checkpoint file (same as the segmentation "
              "node's clip_weights)."),
    ParamSpec("clip3r_clip_config", "", "JSON config of a custom open_clip architecture (same as the segmentation "
              "node's clip_config)."),
)


class ReconstructionNode(Node):
    def __init__(self) -> None:
        super().__init__("reconstruction_node")
        p = self.params = declare_parameters(self, PARAMS)
        self.selector = KeyframeSelector(p.keyframe_translation, p.keyframe_rotation_deg, p.keyframe_max_interval,
                                         p.keyframe_min_interval)
        self.odometry = None
        self.stream = None
        self.segmenting = None  # with CLIP3R weights: the stream fed object-level CLIP maps
        if p.mode == "rgb":
            self.stream, description = build_stream(Clip3rSettings(
                config=p.clip3r_config, i2p_weights=p.clip3r_i2p_weights, l2w_weights=p.clip3r_l2w_weights,
                allow_random_weights=p.clip3r_allow_random_weights, backend=p.clip3r_backend,
                precision=p.clip3r_precision, device=p.clip3r_device, keyframe_stride=p.clip3r_keyframe_stride,
                window_radius=p.clip3r_window_radius, lookahead=p.clip3r_lookahead,
                register_group_size=p.clip3r_register_group, buffer_size=p.clip3r_buffer_size,
                i2p_min_confidence=p.clip3r_i2p_min_confidence, l2w_min_confidence=p.clip3r_l2w_min_confidence))
            if self.stream.clip_dim is None:
                description += "; no CLIP injection: keyframes go out without upstream segments"
            else:
                mapper, mapping = build_clip_mapper(ClipMapSettings(
                    mask_source=p.clip3r_mask_source, clip_model=p.clip3r_clip_model,
                    clip_weights=p.clip3r_clip_weights, clip_config=p.clip3r_clip_config, device=p.clip3r_device),
                    self.stream.clip_dim)
                self.segmenting = SegmentingStream(self.stream, mapper)
                description += f"; CLIP injection fed object-level CLIP maps ({mapping}), forwarded as segments"
        elif not p.pose_frame:
            self.odometry = RGBDOdometry(min_depth=p.min_depth, max_depth=p.max_depth)
        self.tf_buffer = TransformBuffer()
        self.sync = StampSynchronizer(p.sync_tolerance)
        self.intrinsics = None
        self.keyframe_count = 0
        self.lost_frames = 0
        self.frames_in = 0
        self.failures_in_row = 0
        self.odometry_restarts = 0
        self.last_pose = None
        self.bad_inputs = 0
        self.last_error = ""
        self._lock = threading.Lock()

        qos = sensor_qos(p.input_reliability)
        on_colour = self.on_colour if self.stream is None else self.on_colour_only
        if p.use_compressed:
            self.create_subscription(CompressedImage, "image/compressed", on_colour, qos)
        else:
            self.create_subscription(Image, "image", on_colour, qos)
        if self.stream is None:
            self.create_subscription(Image, "depth", self.on_depth, qos)
        self.create_subscription(CameraInfo, "camera_info", self.on_camera_info, qos)
        if p.pose_frame:
            self.create_subscription(TFMessage, "/tf", self.on_tf, 100)
            self.create_subscription(TFMessage, "/tf_static", lambda m: self.on_tf(m, static=True), 10)

        self.pub_keyframe = self.create_publisher(KeyframeMsg, "keyframes", PIPELINE_QOS)
        self.pub_pose = self.create_publisher(PoseStamped, "camera_pose", POSE_QOS)
        self.pub_cloud = self.create_publisher(PointCloud2, "keyframe_cloud", PIPELINE_QOS)
        self.pub_tf = self.create_publisher(TFMessage, "/tf", 100)
        process = self.process_pair if self.stream is None else self.process_colour
        self.worker = DropOldestWorker(process, p.queue_size, "reconstruction", self.on_worker_error)
        self.diagnostics = DiagnosticsPublisher(self, self.collect_diagnostics)
        if self.stream is not None:
            mode = f"RGB mode: {description}"
        else:
            mode = f"RGB-D mode, poses from {f'TF {p.pose_frame} -> camera' if p.pose_frame else 'RGB-D odometry'}"
        self.get_logger().info(f"{mode}; keyframes on {self.resolve_topic_name('keyframes')}")

    # Callbacks only convert stamps and queue: the work happens on the worker.
    def on_colour(self, msg) -> None:
        with self._lock:
            pair = self.sync.add_colour(conv.stamp_to_seconds(msg.header.stamp), msg)
        if pair is not None:
            self.worker.submit(pair)

    def on_depth(self, msg: Image) -> None:
        with self._lock:
            pair = self.sync.add_depth(conv.stamp_to_seconds(msg.header.stamp), msg)
        if pair is not None:
            self.worker.submit(pair)

    def on_colour_only(self, msg) -> None:
        self.frames_in += 1
        self.worker.submit(msg)

    def on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self.intrinsics = conv.camera_info_to_intrinsics(msg)
        except ValueError as exc:
            self._refuse(f"camera_info refused: {exc}")

    def on_tf(self, msg: TFMessage, static: bool = False) -> None:
        for transform in msg.transforms:
            try:
                self.tf_buffer.set_transform(transform.header.frame_id, transform.child_frame_id,
                                             conv.stamp_to_seconds(transform.header.stamp),
                                             conv.transform_to_matrix(transform.transform), static=static)
            except ValueError as exc:
                self._refuse(f"transform refused: {exc}")

    def on_worker_error(self, item, exc: BaseException) -> None:
        self._refuse(f"frame failed: {type(exc).__name__}: {exc}")

    def _refuse(self, message: str) -> None:
        self.bad_inputs += 1
        self.last_error = message
        self.get_logger().warning(message, throttle_duration_sec=5.0)

    def _decode_colour(self, msg) -> np.ndarray:
        return conv.compressed_to_rgb(msg) if isinstance(msg, CompressedImage) else conv.image_to_rgb(msg)

    def process_colour(self, msg) -> None:
        """RGB mode: feed CLIP3R; publish every keyframe it completes."""
        try:
            rgb = self._decode_colour(msg)
        except ValueError as exc:
            self._refuse(f"image refused: {exc}")
            return
        intrinsics = self.intrinsics
        if intrinsics is not None and (intrinsics.width, intrinsics.height) != (rgb.shape[1], rgb.shape[0]):
            intrinsics = intrinsics.scaled(rgb.shape[1], rgb.shape[0])
        stamp_s = conv.stamp_to_seconds(msg.header.stamp)
        if self.segmenting is None:
            completed = [(streamed, ()) for streamed in self.stream.push(rgb, stamp_s, intrinsics)]
        else:
            completed = self.segmenting.push(rgb, stamp_s, intrinsics)
        for streamed, segments in completed:
            stamp = conv.seconds_to_stamp(streamed.keyframe.stamp)
            self.publish_pose(streamed.keyframe.pose, stamp)
            self.publish_keyframe(streamed.keyframe, stamp, segments)

    def publish_keyframe(self, keyframe, stamp, segments=()) -> None:
        self.keyframe_count += 1
        self.pub_keyframe.publish(conv.keyframe_to_msg(keyframe, self.params.map_frame, segments=segments))
        if self.params.publish_keyframe_cloud:
            points, colours = keyframe.valid_points()
            self.pub_cloud.publish(conv.encode_xyzrgb(points, colours, frame_id=self.params.map_frame, stamp=stamp))

    def process_pair(self, pair) -> None:
        colour_msg, depth_msg = pair
        intrinsics = self.intrinsics
        if intrinsics is None:
            self._refuse("no camera_info received yet; frame skipped")
            return
        try:
            rgb = self._decode_colour(colour_msg)
            depth = conv.image_to_depth_m(depth_msg)
        except ValueError as exc:
            self._refuse(f"image refused: {exc}")
            return
        if depth.shape != rgb.shape[:2]:
            self._refuse(f"depth {depth.shape[1]}x{depth.shape[0]} does not match colour "
                         f"{rgb.shape[1]}x{rgb.shape[0]}; pair skipped")
            return
        if (intrinsics.width, intrinsics.height) != (rgb.shape[1], rgb.shape[0]):
            intrinsics = intrinsics.scaled(rgb.shape[1], rgb.shape[0])
        stamp = conv.stamp_to_seconds(colour_msg.header.stamp)
        frame = RGBDFrame(stamp=stamp, rgb=rgb, intrinsics=intrinsics, depth=depth)
        pose = self.pose_of(frame, colour_msg.header.frame_id)
        if pose is None:
            return
        self.publish_pose(pose, colour_msg.header.stamp)
        if not self.selector.select(stamp, pose):
            return
        keyframe = frame_to_keyframe(frame, pose, self.keyframe_count, stride=self.params.pointmap_stride,
                                     min_depth=self.params.min_depth, max_depth=self.params.max_depth)
        self.publish_keyframe(keyframe, colour_msg.header.stamp)

    def pose_of(self, frame: RGBDFrame, image_frame_id: str) -> Optional[np.ndarray]:
        p = self.params
        if p.pose_frame:
            camera_frame = p.camera_frame or image_frame_id
            deadline = time.monotonic() + p.tf_timeout
            while True:  # the transform may still be on its way (we run on the worker, not the executor)
                try:
                    return self.tf_buffer.lookup(p.pose_frame, camera_frame, frame.stamp)
                except TransformLookupError as exc:
                    if time.monotonic() >= deadline:
                        self.lost_frames += 1
                        self.get_logger().warning(f"no pose for frame at {frame.stamp:.3f}: {exc}",
                                                  throttle_duration_sec=5.0)
                        return None
                    time.sleep(0.01)
        result = self.odometry.track(frame)
        if result.pose is not None:
            self.failures_in_row = 0
            self.last_pose = result.pose
            return result.pose
        self.lost_frames += 1
        self.failures_in_row += 1
        self.get_logger().warning(f"odometry lost at {frame.stamp:.3f}: {result.reason}", throttle_duration_sec=5.0)
        if self.failures_in_row >= p.odometry_max_failures:
            self.get_logger().warning(f"odometry failed {self.failures_in_row} times in a row; restarting at the last "
                                      "good pose")
            self.odometry.reset(self.last_pose)
            self.failures_in_row = 0
            self.odometry_restarts += 1
        return None

    def publish_pose(self, pose: np.ndarray, stamp) -> None:
        self.pub_pose.publish(conv.matrix_to_pose_stamped(pose, self.params.map_frame, stamp))
        self.pub_tf.publish(TFMessage(transforms=[
            conv.matrix_to_transform_stamped(pose, self.params.map_frame, self.params.tracked_frame, stamp)]))

    def close(self) -> None:
        self.worker.stop()

    def collect_diagnostics(self):
        s = self.worker.stats
        values = {"mode": self.params.mode, "frames_in": self.frames_in or self.sync.paired,
                  "frames_paired": self.sync.paired, "unsynchronised": self.sync.unsynchronised,
                  "processed": s.processed, "dropped": s.dropped, "failed": s.failed, "keyframes": self.keyframe_count,
                  "lost_frames": self.lost_frames, "odometry_restarts": self.odometry_restarts, "bad_inputs": self.bad_inputs, "queue_depth": s.queue_depth,
                  "last_duration_ms": round(s.last_duration_s * 1e3, 1), "last_error": self.last_error}
        level = "warn" if (s.dropped or self.lost_frames or self.bad_inputs) else "ok"
        return level, f"{self.keyframe_count} keyframes", values


def main(args=None) -> int:
    return run_node(ReconstructionNode, args)


if __name__ == "__main__":
    sys.exit(main())
