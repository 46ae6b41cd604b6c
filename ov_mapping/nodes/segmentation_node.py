"""segmentation_node: keyframes in, segmented keyframes out.

In this slice it forwards each keyframe unchanged with no segments (mask source "passthrough"), so the graph already
has its final shape; the open-vocabulary pipeline plugs in here.
"""

from __future__ import annotations

import sys

from rclpy.node import Node

from ov_mapping.core.params import ParamSpec
from ov_mapping.msg import Keyframe as KeyframeMsg
from ov_mapping.msg import SegmentedKeyframe as SegmentedKeyframeMsg
from ov_mapping.ros.diagnostics import DiagnosticsPublisher
from ov_mapping.ros.node_main import run_node
from ov_mapping.ros.params import declare_parameters
from ov_mapping.ros.qos import PIPELINE_QOS

PARAMS = (
    ParamSpec("mask_source", "passthrough", "Where segments come from.", choices=("passthrough",)),
)


class SegmentationNode(Node):
    def __init__(self) -> None:
        super().__init__("segmentation_node")
        self.params = declare_parameters(self, PARAMS)
        self.forwarded = 0
        self.pub = self.create_publisher(SegmentedKeyframeMsg, "segmented_keyframes", PIPELINE_QOS)
        self.create_subscription(KeyframeMsg, "keyframes", self.on_keyframe, PIPELINE_QOS)
        self.diagnostics = DiagnosticsPublisher(
            self, lambda: ("ok", f"{self.forwarded} keyframes", {"forwarded": self.forwarded}))
        self.get_logger().info(f"mask source: {self.params.mask_source}")

    def on_keyframe(self, msg: KeyframeMsg) -> None:
        # Forwarding is a reference hand-over, cheap enough for the callback itself.
        out = SegmentedKeyframeMsg(keyframe=msg, segments=list(msg.segments), mask_source=self.params.mask_source)
        out.keyframe.segments = []
        self.pub.publish(out)
        self.forwarded += 1


def main(args=None) -> int:
    return run_node(SegmentationNode, args)


if __name__ == "__main__":
    sys.exit(main())
