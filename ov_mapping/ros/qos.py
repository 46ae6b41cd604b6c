"""The QoS profiles of ov_mapping's topics, chosen on purpose.

- Camera input: best effort, keep last 5. Camera drivers commonly publish best effort; a best-effort subscription
  matches both kinds of publisher, and a stale camera frame is worth nothing to a mapper.
- Pipeline topics (keyframes, segmented keyframes): reliable, keep last 30. Each keyframe carries map content; losing one
  loses geometry, so the depth absorbs bursts (30 keyframes of a few MB each); it is still bounded, so a dead consumer
  cannot grow memory, and a slow one drops oldest in its worker instead.
- Map outputs (map cloud, instances, markers): reliable + transient local, keep last 1, so RViz or a planner that joins
  late gets the current map at once.
- Poses: reliable, keep last 10.
"""

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

SENSOR_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
RELIABLE_SENSOR_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.VOLATILE)
PIPELINE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=30, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
POSE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def sensor_qos(reliability: str) -> QoSProfile:
    """Camera input QoS for the ``input_reliability`` parameter ("best_effort" or "reliable")."""
    return RELIABLE_SENSOR_QOS if reliability == "reliable" else SENSOR_QOS
