"""``ov_mapping/Instance`` and ``InstanceArray`` from plain records (dicts or dataclasses) and back.

The mapping layer cannot import ROS, so it describes instances with plain records carrying these keys
(or attributes): ``instance_id`` (int), ``centroid`` (3,), ``box_size`` (3,) full extents in metres, and the box
centre as either ``box_pose`` (4, 4) rigid pose in the map frame or ``box_center`` (3,) for an axis-aligned box;
optional ``label`` (""), ``label_score`` (0.0), ``num_points`` (0), ``num_observations`` (0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from geometry_msgs.msg import Point, Vector3

from ov_mapping.msg import Instance, InstanceArray
from ov_mapping.ros.conversions.errors import ConversionError
from ov_mapping.ros.conversions.header import Stamp, make_header
from ov_mapping.ros.conversions.pose import matrix_to_pose, pose_to_matrix

_UINT32_MAX = 2**32 - 1
_MISSING = object()


def _get(record: Any, key: str, default: Any = _MISSING) -> Any:
    value = record.get(key, default) if isinstance(record, Mapping) else getattr(record, key, default)
    if value is _MISSING:
        raise ConversionError(f"instance record has no {key!r} (got {type(record).__name__})")
    return value


def _vector3(record: Any, key: str) -> np.ndarray:
    raw = _get(record, key)
    try:
        value = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        value = None
    if value is None or value.shape != (3,) or not np.isfinite(value).all():
        raise ConversionError(f"instance {key} must be 3 finite numbers, got {raw!r}")
    return value


def _count(record: Any, key: str, default: Any = _MISSING) -> int:
    value = _get(record, key, default)
    if not isinstance(value, (int, np.integer)) or not 0 <= int(value) <= _UINT32_MAX:
        raise ConversionError(f"instance {key} must be an integer in [0, 2^32), got {value!r}")
    return int(value)


def _box_pose(record: Any) -> np.ndarray:
    pose, centre = _get(record, "box_pose", None), _get(record, "box_center", None)
    if (pose is None) == (centre is None):
        raise ConversionError("instance record needs exactly one of 'box_pose' (4, 4) and 'box_center' (3,)")
    if pose is not None:
        return np.asarray(pose, dtype=np.float64)
    matrix = np.eye(4)
    matrix[:3, 3] = _vector3(record, "box_center")
    return matrix


def instance_to_msg(record: Any) -> Instance:
    """An Instance message from a dict or an object with the keys listed in the module docstring."""
    centroid, size = _vector3(record, "centroid"), _vector3(record, "box_size")
    if (size < 0).any():
        raise ConversionError(f"instance box_size must be non-negative, got {size.tolist()}")
    return Instance(
        instance_id=_count(record, "instance_id"),
        label=str(_get(record, "label", "")),
        label_score=float(_get(record, "label_score", 0.0)),
        centroid=Point(x=float(centroid[0]), y=float(centroid[1]), z=float(centroid[2])),
        box_center=matrix_to_pose(_box_pose(record)),
        box_size=Vector3(x=float(size[0]), y=float(size[1]), z=float(size[2])),
        num_points=_count(record, "num_points", 0),
        num_observations=_count(record, "num_observations", 0),
    )


def msg_to_instance(msg: Instance) -> dict[str, Any]:
    """A dict record of an Instance message, with ``box_pose`` as a (4, 4) float64 matrix."""
    return {
        "instance_id": int(msg.instance_id),
        "label": msg.label,
        "label_score": float(msg.label_score),
        "centroid": np.array([msg.centroid.x, msg.centroid.y, msg.centroid.z]),
        "box_pose": pose_to_matrix(msg.box_center),
        "box_size": np.array([msg.box_size.x, msg.box_size.y, msg.box_size.z]),
        "num_points": int(msg.num_points),
        "num_observations": int(msg.num_observations),
    }


def instances_to_msg(records: Iterable[Any], frame_id: str = "map", stamp: Stamp = 0.0) -> InstanceArray:
    """An InstanceArray of records (dicts or objects) in ``frame_id``."""
    return InstanceArray(header=make_header(stamp, frame_id), instances=[instance_to_msg(r) for r in records])


def msg_to_instances(msg: InstanceArray) -> list[dict[str, Any]]:
    """The dict records of an InstanceArray (its header stays on the message)."""
    return [msg_to_instance(instance) for instance in msg.instances]
