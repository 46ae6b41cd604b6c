"""``sensor_msgs/PointCloud2`` <-> numpy structured arrays and dicts of columns.

Reading respects every layout PointCloud2 allows: field offsets (with padding between fields), ``point_step``,
``row_step`` (row padding), ``is_bigendian``, datatypes INT8..FLOAT64 and ``count`` > 1 (a sub-array column).
Writing produces little-endian, unpadded rows. Colours use ROS/PCL's packed ``rgb`` field: the uint32
``0x00RRGGBB`` reinterpreted bit for bit as a float32.

Speed: clouds are written by allocating the message's ``array.array`` once and filling it through a numpy view
(see buffers.py), so encoding a 1M-point xyz+rgb cloud costs a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField

from ov_mapping.ros.conversions.buffers import new_message, row_view, zero_byte_field
from ov_mapping.ros.conversions.errors import ConversionError
from ov_mapping.ros.conversions.header import Stamp, make_header

DATATYPES: dict[int, np.dtype] = {
    PointField.INT8: np.dtype("<i1"),
    PointField.UINT8: np.dtype("<u1"),
    PointField.INT16: np.dtype("<i2"),
    PointField.UINT16: np.dtype("<u2"),
    PointField.INT32: np.dtype("<i4"),
    PointField.UINT32: np.dtype("<u4"),
    PointField.FLOAT32: np.dtype("<f4"),
    PointField.FLOAT64: np.dtype("<f8"),
}
_DATATYPE_OF = {(dtype.kind, dtype.itemsize): code for code, dtype in DATATYPES.items()}


def pointcloud_dtype(fields: list[PointField], point_step: int, is_bigendian: bool = False) -> np.dtype:
    """The structured dtype (itemsize ``point_step``) of one point described by PointFields.

    Raises ConversionError for empty or duplicate names, unknown datatypes, count 0, overlapping fields
    and fields that run past ``point_step``.
    """
    order = ">" if is_bigendian else "<"
    names, formats, offsets = [], [], []
    for field in fields:
        if not field.name:
            raise ConversionError(f"PointCloud2 field at offset {field.offset} has an empty name")
        if field.name in names:
            raise ConversionError(f"PointCloud2 field name {field.name!r} appears twice; names must be unique")
        if field.datatype not in DATATYPES:
            raise ConversionError(
                f"PointCloud2 field {field.name!r} has unknown datatype {field.datatype} (valid: 1..8, INT8..FLOAT64)"
            )
        if field.count < 1:
            raise ConversionError(f"PointCloud2 field {field.name!r} has count {field.count}; it must be at least 1")
        base = DATATYPES[field.datatype].newbyteorder(order)
        names.append(field.name)
        formats.append(base if field.count == 1 else np.dtype((base, (field.count,))))
        offsets.append(int(field.offset))
    spans = sorted((offset, offset + fmt.itemsize, name) for name, fmt, offset in zip(names, formats, offsets))
    for (_, end, name), (start, _, next_name) in zip(spans, spans[1:]):
        if end > start:
            raise ConversionError(
                f"PointCloud2 fields {name!r} and {next_name!r} overlap ({name!r} ends at byte {end}, "
                f"{next_name!r} starts at {start})"
            )
    if spans and spans[-1][1] > point_step:
        raise ConversionError(
            f"PointCloud2 field {spans[-1][2]!r} ends at byte {spans[-1][1]}, past point_step {point_step}"
        )
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(point_step)})


def pointcloud_to_array(msg: PointCloud2, copy: bool = True) -> np.ndarray:
    """The points of a PointCloud2 as a (height * width,) structured array in row-major order.

    The dtype keeps the message's field offsets and ``point_step`` (padding included) in native byte order;
    reshape to (msg.height, msg.width) for organised clouds.

    Args:
        copy: True returns an array of its own. False returns a read-only view into ``msg.data`` when the layout
            allows it (native byte order, no row padding) and a copy otherwise; while such a view lives,
            ``msg.data`` cannot be resized.
    """
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    dtype = pointcloud_dtype(list(msg.fields), point_step, bool(msg.is_bigendian))
    count = height * width
    if count and point_step < 1:
        raise ConversionError(f"PointCloud2 point_step must be positive, got {point_step}")
    rows = row_view("PointCloud2", msg.data, row_step, height, width * point_step,
                    f"width * point_step = {width} * {point_step}", "row_step")
    if count == 0:
        return np.zeros(0, dtype=dtype.newbyteorder("="))
    copied = not rows.flags.c_contiguous  # row padding: dropping it needs a copy anyway
    points = np.ascontiguousarray(rows).reshape(-1).view(dtype)
    native = dtype.newbyteorder("=")
    if points.dtype != native:
        return points.astype(native)
    return points.copy() if copy and not copied else points


def decode_pointcloud(msg: PointCloud2) -> dict[str, np.ndarray]:
    """Each field of a PointCloud2 as its own contiguous array: (N,) or (N, count), native byte order."""
    points = pointcloud_to_array(msg, copy=False)
    return {name: np.ascontiguousarray(points[name]) for name in points.dtype.names}


def pack_rgb(colours: np.ndarray) -> np.ndarray:
    """ROS packed colours: (N, 3) uint8 RGB -> (N,) float32 holding the bits of uint32 0x00RRGGBB."""
    if not isinstance(colours, np.ndarray) or colours.dtype != np.uint8 or colours.ndim != 2 or colours.shape[1] != 3:
        raise ConversionError(
            f"colours must be a (N, 3) uint8 array, got {getattr(colours, 'shape', None)} "
            f"{getattr(colours, 'dtype', type(colours).__name__)}"
        )
    c = colours.astype(np.uint32)
    return ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).view(np.float32)


def unpack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 RGB from a packed rgb column (float32 or uint32 0x??RRGGBB; the top byte is ignored)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 1 or rgb.dtype.itemsize != 4 or rgb.dtype.kind not in "fui":
        raise ConversionError(f"packed rgb must be a (N,) 4-byte column, got {rgb.shape} {rgb.dtype}")
    bits = np.ascontiguousarray(rgb).view(np.uint32)
    return np.stack([(bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF], axis=1).astype(np.uint8)


def _point_fields(dtype: np.dtype) -> list[PointField]:
    fields = []
    for name in dtype.names:
        field_dtype, offset = dtype.fields[name][:2]
        base, shape = field_dtype.base, field_dtype.shape
        code = _DATATYPE_OF.get((base.kind, base.itemsize))
        if code is None or len(shape) > 1:
            raise ConversionError(
                f"cloud field {name!r} has dtype {field_dtype}; PointCloud2 takes int8..int32, uint8..uint32, "
                "float32, float64, as scalars or 1-D sub-arrays"
            )
        fields.append(PointField(name=name, offset=offset, datatype=code, count=int(np.prod(shape, dtype=int))))
    return fields


def _little_endian(dtype: np.dtype) -> np.dtype:
    formats = [dtype.fields[name][0] for name in dtype.names]
    return np.dtype({
        "names": list(dtype.names),
        "formats": [np.dtype((f.base.newbyteorder("<"), f.shape)) if f.shape else f.newbyteorder("<") for f in formats],
        "offsets": [dtype.fields[name][1] for name in dtype.names],
        "itemsize": dtype.itemsize,
    })


def _is_dense(columns: Mapping[str, np.ndarray]) -> bool:
    """True when every x, y, z value is finite (ROS: no invalid points)."""
    return all(np.isfinite(columns[axis]).all() for axis in ("x", "y", "z") if axis in columns)


def _make_cloud(
    dtype: np.dtype, columns: Mapping[str, np.ndarray], height: int, width: int, frame_id: str, stamp: Stamp
) -> PointCloud2:
    """Fill a new PointCloud2 of ``dtype`` points straight from ``columns`` (numpy casts on assignment)."""
    fields = _point_fields(dtype)
    data = zero_byte_field(height * width * dtype.itemsize)
    if height * width:
        view = np.frombuffer(data, dtype=dtype)
        for name, column in columns.items():
            view[name] = column
        del view  # release the export so the message owns a resizable buffer
    msg = new_message(
        PointCloud2,
        header=make_header(stamp, frame_id),
        height=height,
        width=width,
        fields=fields,
        is_bigendian=False,
        point_step=dtype.itemsize,
        row_step=dtype.itemsize * width,
        is_dense=_is_dense(columns),
    )
    msg.data = data  # no copy: see buffers.py
    return msg


def array_to_pointcloud(points: np.ndarray, frame_id: str = "", stamp: Stamp = 0.0) -> PointCloud2:
    """A PointCloud2 from a structured array: (N,) gives height 1, (H, W) an organised cloud.

    The layout (field offsets, padding, itemsize) is kept; values are written little-endian.
    """
    if not isinstance(points, np.ndarray) or points.dtype.names is None:
        raise ConversionError(f"points must be a numpy structured array, got {getattr(points, 'dtype', type(points))}")
    if points.ndim not in (1, 2):
        raise ConversionError(f"points must have shape (N,) or (H, W), got {points.shape}")
    height, width = (1, points.shape[0]) if points.ndim == 1 else points.shape
    flat = points.reshape(-1)
    columns = {name: flat[name] for name in points.dtype.names}
    return _make_cloud(_little_endian(points.dtype), columns, height, width, frame_id, stamp)


def encode_pointcloud(columns: Mapping[str, np.ndarray], frame_id: str = "", stamp: Stamp = 0.0) -> PointCloud2:
    """An unorganised PointCloud2 with one field per column, packed in the mapping's order.

    Args:
        columns: name -> (N,) or (N, count) array of int8..int32, uint8..uint32, float32 or float64;
            the dtype is kept exactly (cast before calling, e.g. int64 labels to int32).
    """
    if not columns:
        raise ConversionError("a point cloud needs at least one field")
    arrays = {name: np.asarray(column) for name, column in columns.items()}
    n = {array.shape[0] if array.ndim else None for array in arrays.values()}
    if len(n) != 1 or None in n or any(array.ndim > 2 for array in arrays.values()):
        shapes = {name: array.shape for name, array in arrays.items()}
        raise ConversionError(f"cloud columns must be (N,) or (N, count) with one N, got {shapes}")
    formats = [
        np.dtype((array.dtype.newbyteorder("<"), array.shape[1:])) if array.ndim == 2 else array.dtype.newbyteorder("<")
        for array in arrays.values()
    ]
    dtype = np.dtype({"names": list(arrays), "formats": formats})  # packed: offsets follow each other
    return _make_cloud(dtype, arrays, 1, n.pop(), frame_id, stamp)


def _int32_column(name: str, values: Optional[np.ndarray], n: int) -> Optional[np.ndarray]:
    if values is None:
        return None
    values = np.asarray(values)
    if values.shape != (n,) or not np.issubdtype(values.dtype, np.integer):
        raise ConversionError(f"{name} must be a ({n},) integer array, got {values.shape} {values.dtype}")
    info = np.iinfo(np.int32)
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise ConversionError(f"{name} values must fit int32, got range [{values.min()}, {values.max()}]")
    return values


def encode_xyzrgb(
    points: np.ndarray,
    colours: np.ndarray,
    instance: Optional[np.ndarray] = None,
    label: Optional[np.ndarray] = None,
    score: Optional[np.ndarray] = None,
    frame_id: str = "map",
    stamp: Stamp = 0.0,
) -> PointCloud2:
    """The map cloud: fields x y z rgb (float32) then, when given, instance (int32), label (int32), score (float32).

    Args:
        points: (N, 3) float (written as float32).
        colours: (N, 3) uint8 RGB, packed into the float32 ``rgb`` field.
        instance, label: (N,) integers that fit int32. score: (N,) float.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3 or not np.issubdtype(points.dtype, np.floating):
        raise ConversionError(f"points must be a (N, 3) float array, got {points.shape} {points.dtype}")
    n = points.shape[0]
    rgb = pack_rgb(colours)
    if rgb.shape[0] != n:
        raise ConversionError(f"colours has {rgb.shape[0]} rows but points has {n}")
    columns = {"x": points[:, 0], "y": points[:, 1], "z": points[:, 2], "rgb": rgb}
    names, formats = ["x", "y", "z", "rgb"], ["<f4"] * 4
    for name, values in (("instance", instance), ("label", label)):
        values = _int32_column(name, values, n)
        if values is not None:
            columns[name] = values
            names.append(name)
            formats.append("<i4")
    if score is not None:
        score = np.asarray(score)
        if score.shape != (n,) or not np.issubdtype(score.dtype, np.floating):
            raise ConversionError(f"score must be a ({n},) float array, got {score.shape} {score.dtype}")
        columns["score"] = score
        names.append("score")
        formats.append("<f4")
    return _make_cloud(np.dtype({"names": names, "formats": formats}), columns, 1, n, frame_id, stamp)


def decode_xyzrgb(msg: PointCloud2) -> dict[str, np.ndarray]:
    """The inverse of ``encode_xyzrgb`` for any cloud with x, y, z (and optionally rgb, instance, label, score).

    Returns:
        "points" (N, 3) float32, plus "colours" (N, 3) uint8 when the cloud has ``rgb``, and "instance",
        "label", "score" (N,) columns as stored when present.
    """
    cloud = pointcloud_to_array(msg, copy=False)
    names = cloud.dtype.names
    missing = [axis for axis in ("x", "y", "z") if axis not in names]
    if missing:
        raise ConversionError(f"cloud has no {', '.join(missing)} field (fields: {', '.join(names)})")
    out = {"points": np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=1).astype(np.float32)}
    if "rgb" in names:
        out["colours"] = unpack_rgb(cloud["rgb"])
    for name in ("instance", "label", "score"):
        if name in names:
            out[name] = np.ascontiguousarray(cloud[name])
    return out
