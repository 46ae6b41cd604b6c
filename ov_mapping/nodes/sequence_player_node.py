"""sequence_player_node: publish a recorded or synthetic sequence as camera topics.

For people with no camera attached: a 7-Scenes / TUM folder, a rosbag2 (mcap or sqlite3) or the project's synthetic
scene (``input:=synthetic``) comes out as colour Image, depth Image and CameraInfo at the recording's rate times
``rate``. With ``publish_pose_tf`` the recorded pose goes out on /tf (``pose_frame`` -> camera frame), so the
reconstruction node can use ground-truth poses instead of odometry. When done it publishes ``player_done`` (latched)
and exits 0.
"""

from __future__ import annotations

import sys
import time

import rclpy
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Bool
from tf2_msgs.msg import TFMessage

from ov_mapping.core.params import ParamSpec
from ov_mapping.datasets.inputs import open_input
from ov_mapping.ros import conversions as conv
from ov_mapping.ros.node_main import run_node
from ov_mapping.ros.params import declare_parameters
from ov_mapping.ros.qos import LATCHED_QOS, RELIABLE_SENSOR_QOS

PARAMS = (
    ParamSpec("input", "synthetic", "Sequence to play: 'synthetic', a 7-Scenes or TUM folder, or a rosbag2."),
    ParamSpec("rate", 1.0, "Playback speed as a multiple of the recording's rate; 0 plays as fast as the "
              "subscribers take it (waits for their acknowledgement).", min_value=0.0, max_value=1000.0),
    ParamSpec("start_frame", 0, "First frame to play.", min_value=0),
    ParamSpec("max_frames", 0, "Stop after this many frames (0 = all).", min_value=0),
    ParamSpec("stride", 1, "Play every Nth frame.", min_value=1, max_value=1000),
    ParamSpec("depth_encoding", "16UC1", "Depth image encoding to publish.", choices=("16UC1", "32FC1")),
    ParamSpec("camera_frame", "camera_color_optical_frame", "frame_id of the published images."),
    ParamSpec("publish_pose_tf", True, "Publish the recorded camera pose on /tf when the sequence has poses."),
    ParamSpec("pose_frame", "odom", "Parent frame of the recorded camera pose on /tf."),
    ParamSpec("wait_for_subscribers", 1, "Wait until this many subscribers listen to the colour topic before playing.",
              min_value=0, max_value=100),
    ParamSpec("wait_timeout", 30.0, "Give up waiting for subscribers after this many seconds.", min_value=0.0),
    ParamSpec("synthetic_frames", 60, "Frames of the synthetic scene.", min_value=2, max_value=100000),
    ParamSpec("synthetic_seed", 0, "Seed of the synthetic scene.", min_value=0),
    ParamSpec("exit_when_done", True, "Exit (code 0) after the last frame."),
)


class SequencePlayerNode(Node):
    def __init__(self) -> None:
        super().__init__("sequence_player_node")
        self.params = declare_parameters(self, PARAMS)
        p = self.params
        self.sequence = open_input(p.input, synthetic_frames=p.synthetic_frames, synthetic_seed=p.synthetic_seed)
        self.get_logger().info(f"playing {self.sequence!r} at rate x{p.rate}")
        self.pub_image = self.create_publisher(Image, "image", RELIABLE_SENSOR_QOS)
        self.pub_depth = self.create_publisher(Image, "depth", RELIABLE_SENSOR_QOS)
        self.pub_info = self.create_publisher(CameraInfo, "camera_info", RELIABLE_SENSOR_QOS)
        self.pub_tf = self.create_publisher(TFMessage, "/tf", 100)
        self.pub_done = self.create_publisher(Bool, "player_done", LATCHED_QOS)
        self.frames_published = 0

    def wait_for_subscribers(self) -> bool:
        """Wait until colour and camera_info have ``wait_for_subscribers`` subscribers each, then up to a second
        for depth too (an RGB-only consumer never subscribes to it), so the first frames are not lost."""
        p = self.params

        def matched(*publishers) -> bool:
            return all(pub.get_subscription_count() >= p.wait_for_subscribers for pub in publishers)

        deadline = time.monotonic() + p.wait_timeout
        while not matched(self.pub_image, self.pub_info):
            if time.monotonic() > deadline:
                self.get_logger().warning(f"only {self.pub_image.get_subscription_count()} subscribers after "
                                          f"{p.wait_timeout:.0f} s; playing anyway")
                return False
            rclpy.spin_once(self, timeout_sec=0.05)
        depth_deadline = time.monotonic() + 1.0
        while not matched(self.pub_depth) and time.monotonic() < depth_deadline:
            rclpy.spin_once(self, timeout_sec=0.05)
        return True

    def play(self) -> None:
        p = self.params
        indices = range(p.start_frame, len(self.sequence), p.stride)
        if p.max_frames:
            indices = indices[: p.max_frames]
        info = conv.intrinsics_to_camera_info(self.sequence.intrinsics, frame_id=p.camera_frame)
        wall_start = time.monotonic()
        first_stamp = None
        for count, index in enumerate(indices):
            frame = self.sequence[index]
            if first_stamp is None:
                first_stamp = frame.stamp
            if p.rate > 0:  # pace against the recording's clock
                due = wall_start + (frame.stamp - first_stamp) / p.rate
                while (delay := due - time.monotonic()) > 0:
                    rclpy.spin_once(self, timeout_sec=min(delay, 0.05))
            stamp = self.get_clock().now().to_msg()
            # Pose and camera model first, so a listener has them when the image arrives.
            if p.publish_pose_tf and frame.pose is not None:
                self.pub_tf.publish(TFMessage(transforms=[
                    conv.matrix_to_transform_stamped(frame.pose, p.pose_frame, p.camera_frame, stamp)]))
            info.header.stamp = stamp
            self.pub_info.publish(info)
            if frame.depth is not None:
                self.pub_depth.publish(conv.depth_m_to_image(frame.depth, p.depth_encoding, stamp, p.camera_frame))
            self.pub_image.publish(conv.array_to_image(frame.rgb, "rgb8", stamp, p.camera_frame))
            self.frames_published += 1
            if p.rate == 0:
                # No clock to keep: give the subscribers' queues time to drain (bounded, reliable QoS).
                while not self.pub_image.wait_for_all_acked(rclpy.duration.Duration(seconds=1.0)):
                    rclpy.spin_once(self, timeout_sec=0.0)
            if (count + 1) % 20 == 0:
                self.get_logger().info(f"published {count + 1}/{len(indices)} frames")
        self.pub_done.publish(Bool(data=True))
        self.get_logger().info(f"done: {self.frames_published} frames in {time.monotonic() - wall_start:.1f} s")


def _play(node: SequencePlayerNode) -> None:
    node.wait_for_subscribers()
    node.play()
    if node.params.exit_when_done:
        end = time.monotonic() + 1.0  # let the latched 'done' reach late listeners
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
    else:
        rclpy.spin(node)


def main(args=None) -> int:
    return run_node(SequencePlayerNode, args, run=_play)


if __name__ == "__main__":
    sys.exit(main())
