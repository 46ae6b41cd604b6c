"""segmentation_node: keyframes in, segmented keyframes out.

Per keyframe: masks (SAM, or a graph segmentation on CPU when no SAM weights are present) -> per-mask CLIP embedding
-> Region Semantic Ranking against the map's vocabulary -> DINO / CLIP3R pooling -> 2D-3D association -> a fused
descriptor per segment. Masks computed upstream (CLIP3R with CLIP injection) are reused, not computed twice. Without
CLIP weights the node says so and forwards keyframes with no segments, so geometry keeps flowing.
"""

from __future__ import annotations

import sys

from rclpy.node import Node

from ov_mapping.core.params import ParamSpec
from ov_mapping.core.worker import DropOldestWorker
from ov_mapping.msg import Keyframe as KeyframeMsg
from ov_mapping.msg import SegmentedKeyframe as SegmentedKeyframeMsg
from ov_mapping.msg import Vocabulary
from ov_mapping.ros import conversions as conv
from ov_mapping.ros.diagnostics import DiagnosticsPublisher
from ov_mapping.ros.node_main import run_node
from ov_mapping.ros.params import declare_parameters
from ov_mapping.ros.qos import LATCHED_QOS, PIPELINE_QOS
from ov_mapping.segmentation.factory import SegmenterConfig, build_segmenter

PARAMS = (
    ParamSpec("mask_source", "auto", "Mask source: 'sam' (needs SAM weights), 'graph' (CPU graph segmentation), 'auto' "
              "(SAM when its weights are on disk, else graph) or 'passthrough' (no segmentation).",
              choices=("auto", "sam", "graph", "passthrough")),
    ParamSpec("sam_checkpoint", "", "SAM checkpoint file; empty: the registry's sam_vit_b download."),
    ParamSpec("sam_architecture", "vit_b", "SAM architecture of sam_checkpoint.", choices=("vit_b", "vit_l", "vit_h")),
    ParamSpec("sam_points_per_side", 32, "SAM automatic mask generator: point grid per side.", min_value=4,
              max_value=128),
    ParamSpec("sam_pred_iou_thresh", 0.88, "SAM: minimum predicted mask IoU.", min_value=0.0, max_value=1.0),
    ParamSpec("sam_stability_score_thresh", 0.95, "SAM: minimum stability score.", min_value=0.0, max_value=1.0),
    ParamSpec("min_mask_area", 100, "Masks smaller than this many image pixels are dropped.", min_value=0),
    ParamSpec("clip_model", "clip_vit_b32_laion2b_s34b_b79k", "CLIP model: a registry name, or an open_clip "
              "architecture with clip_weights."),
    ParamSpec("clip_weights", "", "open_clip pretrained tag or checkpoint file (with clip_model or clip_config)."),
    ParamSpec("clip_config", "", "JSON config of a custom open_clip architecture (clip_weights is its checkpoint)."),
    ParamSpec("dino_checkpoint", "", "DINO ViT-S/16 checkpoint; empty: the registry download if present, else "
              "descriptors without DINO."),
    ParamSpec("min_points", 10, "Segments with fewer valid 3D points are dropped.", min_value=1),
    ParamSpec("min_confidence", 0.0, "Pointmap points at or below this confidence are not associated.", min_value=0.0),
    ParamSpec("device", "cpu", "Torch device for the models.", choices=("cpu", "cuda")),
    ParamSpec("queue_size", 2, "Keyframes waiting for segmentation; older ones are dropped.", min_value=1,
              max_value=100),
)


class SegmentationNode(Node):
    def __init__(self) -> None:
        super().__init__("segmentation_node")
        p = self.params = declare_parameters(self, PARAMS)
        config = SegmenterConfig(**{spec.name: getattr(p, spec.name) for spec in PARAMS if spec.name != "queue_size"})
        self.segmenter, reason = build_segmenter(config)
        if self.segmenter is None:
            self.get_logger().warning(f"no semantics: {reason}; keyframes pass through without segments")
        else:
            self.get_logger().info(f"segmentation ready: {reason}")
        self.mode = reason
        self.forwarded = 0
        self.bad_inputs = 0
        self.last_error = ""
        self.pub = self.create_publisher(SegmentedKeyframeMsg, "segmented_keyframes", PIPELINE_QOS)
        self.create_subscription(KeyframeMsg, "keyframes", self.on_keyframe, PIPELINE_QOS)
        self.create_subscription(Vocabulary, "vocabulary", self.on_vocabulary, LATCHED_QOS)
        self.worker = DropOldestWorker(self.segment, p.queue_size, "segmentation", self.on_worker_error)
        self.diagnostics = DiagnosticsPublisher(self, self.collect_diagnostics)

    def on_keyframe(self, msg: KeyframeMsg) -> None:
        if self.segmenter is None:
            # Nothing slow to do: forward in the callback.
            self.pub.publish(SegmentedKeyframeMsg(keyframe=msg, segments=list(msg.segments),
                                                  mask_source="passthrough"))
            self.forwarded += 1
        else:
            self.worker.submit(msg)

    def on_vocabulary(self, msg: Vocabulary) -> None:
        if self.segmenter is not None:
            self.segmenter.set_vocabulary(list(msg.labels) or None)
            self.get_logger().info(f"vocabulary: {len(msg.labels)} labels")

    def segment(self, msg: KeyframeMsg) -> None:
        try:
            keyframe = conv.msg_to_keyframe(msg)
            upstream = conv.msgs_to_segments(msg.segments) if msg.segments else None
        except ValueError as exc:
            self._refuse(f"keyframe refused: {exc}")
            return
        segmented = self.segmenter.process(keyframe, upstream)
        self.pub.publish(conv.segmented_keyframe_to_msg(segmented, frame_id=msg.header.frame_id))
        self.forwarded += 1

    def on_worker_error(self, item, exc: BaseException) -> None:
        self._refuse(f"segmentation failed: {type(exc).__name__}: {exc}")

    def _refuse(self, message: str) -> None:
        self.bad_inputs += 1
        self.last_error = message
        self.get_logger().warning(message, throttle_duration_sec=5.0)

    def collect_diagnostics(self):
        w = self.worker.stats
        values = {"mode": self.mode, "forwarded": self.forwarded, "dropped": w.dropped, "failed": w.failed,
                  "queue_depth": w.queue_depth, "last_duration_ms": round(w.last_duration_s * 1e3, 1),
                  "bad_inputs": self.bad_inputs, "last_error": self.last_error}
        if self.segmenter is not None:
            values.update(self.segmenter.stats())
        level = "warn" if (self.segmenter is None or w.dropped or self.bad_inputs) else "ok"
        return level, f"{self.forwarded} keyframes", values

    def close(self) -> None:
        self.worker.stop()


def main(args=None) -> int:
    return run_node(SegmentationNode, args)


if __name__ == "__main__":
    sys.exit(main())
