"""RViz markers of the map's instances: one box and one text label per instance.

Every array starts with a DELETEALL marker, so instances that merged or were evicted disappear from RViz instead of
lingering. Box colours follow the instance id (stable across updates) so an instance keeps its colour.
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable
from typing import Any

from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from ov_mapping.ros.conversions.header import Stamp, make_header
from ov_mapping.ros.conversions.instance import instance_to_msg

NAMESPACE_BOXES = "instances"
NAMESPACE_LABELS = "labels"


def instance_colour(instance_id: int, alpha: float = 0.35) -> ColorRGBA:
    """A distinct, stable colour per instance id (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((instance_id * 0.618033988749895) % 1.0, 0.75, 0.95)
    return ColorRGBA(r=r, g=g, b=b, a=alpha)


def instances_to_markers(records: Iterable[Any], frame_id: str, stamp: Stamp = 0.0,
                         text_height: float = 0.12) -> MarkerArray:
    """A MarkerArray (DELETEALL, then a CUBE and a TEXT_VIEW_FACING per instance) from instance records."""
    header = make_header(stamp, frame_id)
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    for record in records:
        instance = instance_to_msg(record)  # validates the record once, for both markers
        box = Marker(header=header, ns=NAMESPACE_BOXES, id=instance.instance_id, type=Marker.CUBE,
                     action=Marker.ADD, pose=instance.box_center, color=instance_colour(instance.instance_id))
        box.scale.x, box.scale.y, box.scale.z = (max(instance.box_size.x, 1e-3), max(instance.box_size.y, 1e-3),
                                                 max(instance.box_size.z, 1e-3))
        label = Marker(header=header, ns=NAMESPACE_LABELS, id=instance.instance_id, type=Marker.TEXT_VIEW_FACING,
                       action=Marker.ADD, color=ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0))
        label.pose.position.x = instance.box_center.position.x
        label.pose.position.y = instance.box_center.position.y
        label.pose.position.z = instance.box_center.position.z + instance.box_size.z / 2 + text_height
        label.pose.orientation.w = 1.0
        label.scale.z = text_height
        name = instance.label or f"instance {instance.instance_id}"
        label.text = f"{name} ({instance.label_score:.2f})" if instance.label else name
        markers += [box, label]
    return MarkerArray(markers=markers)
