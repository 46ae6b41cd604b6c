"""PointCloud2 <-> numpy: packed rgb, padded layouts, every datatype, big-endian data and malformed clouds."""

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import PointCloud2, PointField

from ov_mapping.ros.conversions import (
    ConversionError,
    array_to_pointcloud,
    decode_xyzrgb,
    encode_pointcloud,
    encode_xyzrgb,
    pack_rgb,
    pointcloud_dtype,
    pointcloud_to_array,
    decode_pointcloud,
    unpack_rgb,
)

RNG = np.random.default_rng(2)
F32, I32, U16 = PointField.FLOAT32, PointField.INT32, PointField.UINT16


def field(name, offset, datatype, count=1):
    return PointField(name=name, offset=offset, datatype=datatype, count=count)


def map_cloud(n=100):
    points = RNG.normal(size=(n, 3)).astype(np.float32)
    colours = RNG.integers(0, 256, (n, 3), dtype=np.uint8)
    instance = RNG.integers(-1, 50, n).astype(np.int32)
    label = RNG.integers(0, 10, n).astype(np.int32)
    score = RNG.random(n).astype(np.float32)
    return points, colours, instance, label, score


def test_rgb_packing_hand_value():
    packed = pack_rgb(np.array([[255, 128, 1]], np.uint8))
    assert packed.dtype == np.float32
    assert packed.view(np.uint32)[0] == 0x00FF8001
    assert packed.tobytes() == bytes([0x01, 0x80, 0xFF, 0x00])
    np.testing.assert_array_equal(unpack_rgb(packed), [[255, 128, 1]])
    # PCL writes an alpha byte on top; it is ignored.
    np.testing.assert_array_equal(unpack_rgb(np.array([0xFF102030], np.uint32)), [[0x10, 0x20, 0x30]])


def test_encode_xyzrgb_layout_and_bytes():
    msg = encode_xyzrgb(np.array([[1.0, 2.0, 3.0]]), np.array([[255, 128, 1]], np.uint8), frame_id="map", stamp=5.0)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, F32, 1), ("y", 4, F32, 1), ("z", 8, F32, 1), ("rgb", 12, F32, 1)]
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 1, 16, 16)
    assert not msg.is_bigendian and msg.is_dense and msg.header.frame_id == "map" and msg.header.stamp.sec == 5
    expected = np.array([1.0, 2.0, 3.0], "<f4").tobytes() + bytes([0x01, 0x80, 0xFF, 0x00])
    assert bytes(msg.data) == expected


def test_encode_xyzrgb_round_trip_all_fields():
    points, colours, instance, label, score = map_cloud()
    msg = encode_xyzrgb(points, colours, instance=instance, label=label, score=score)
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb", "instance", "label", "score"]
    assert [f.datatype for f in msg.fields][4:] == [I32, I32, F32] and msg.point_step == 28
    out = decode_xyzrgb(deserialize_message(serialize_message(msg), PointCloud2))
    np.testing.assert_array_equal(out["points"], points)
    np.testing.assert_array_equal(out["colours"], colours)
    np.testing.assert_array_equal(out["instance"], instance)
    np.testing.assert_array_equal(out["label"], label)
    np.testing.assert_array_equal(out["score"], score)


def test_encode_casts_wide_inputs():
    points, colours, *_ = map_cloud(10)
    msg = encode_xyzrgb(points.astype(np.float64), colours, label=np.arange(10, dtype=np.int64),
                        score=np.linspace(0, 1, 10))
    out = decode_xyzrgb(msg)
    assert out["label"].dtype == np.int32 and out["score"].dtype == np.float32
    np.testing.assert_array_equal(out["label"], np.arange(10))
    np.testing.assert_array_equal(out["points"], points)


def test_is_dense_reflects_nan_points():
    points, colours, *_ = map_cloud(4)
    points[2, 1] = np.nan
    assert not encode_xyzrgb(points, colours).is_dense


def test_empty_cloud():
    msg = encode_xyzrgb(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8))
    assert (msg.width, len(msg.data)) == (0, 0)
    assert decode_xyzrgb(msg)["points"].shape == (0, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"points": np.zeros((3, 2))}, "points must be a \\(N, 3\\) float"),
        ({"points": np.zeros((3, 3), np.int32)}, "points must be a \\(N, 3\\) float"),
        ({"colours": np.zeros((3, 3), np.float32)}, "colours must be a \\(N, 3\\) uint8"),
        ({"colours": np.zeros((2, 3), np.uint8)}, "colours has 2 rows but points has 3"),
        ({"instance": np.zeros(3, np.float32)}, "instance must be a \\(3,\\) integer"),
        ({"label": np.array([0, 1, 2**40])}, "label values must fit int32"),
        ({"score": np.zeros(2, np.float32)}, "score must be a \\(3,\\) float"),
    ],
)
def test_encode_errors(kwargs, message):
    args = {"points": np.zeros((3, 3), np.float32), "colours": np.zeros((3, 3), np.uint8), **kwargs}
    with pytest.raises(ConversionError, match=message):
        encode_xyzrgb(**args)


ALL_TYPES = {"i8": "i1", "u8": "u1", "i16": "i2", "u16": "u2", "i32": "i4", "u32": "u4", "f32": "f4", "f64": "f8"}


def all_types_columns(n=20):
    columns = {}
    for name, code in ALL_TYPES.items():
        dtype = np.dtype(code)
        if dtype.kind == "f":
            columns[name] = RNG.normal(size=n).astype(dtype)
        else:
            info = np.iinfo(dtype)
            columns[name] = RNG.integers(info.min, info.max, n, endpoint=True, dtype=dtype)
    columns["normal"] = RNG.normal(size=(n, 3)).astype(np.float32)  # count = 3
    return columns


def test_dict_round_trip_every_datatype_and_count():
    columns = all_types_columns()
    msg = encode_pointcloud(columns, frame_id="base")
    datatypes = [f.datatype for f in msg.fields]
    assert datatypes == list(range(1, 9)) + [F32]
    assert msg.fields[-1].count == 3 and msg.point_step == 1 + 1 + 2 + 2 + 4 + 4 + 4 + 8 + 12
    back = decode_pointcloud(msg)
    assert list(back) == list(columns)
    for name, column in columns.items():
        assert back[name].dtype == column.dtype and back[name].flags.c_contiguous
        np.testing.assert_array_equal(back[name], column, err_msg=name)


def padded_layout():
    """x y z at 0..12, 4 padding bytes, rgb at 16, intensity (uint16) at 20, point_step 32 (like PCL's PointXYZRGB)."""
    fields = [field("x", 0, F32), field("y", 4, F32), field("z", 8, F32), field("rgb", 16, F32),
              field("intensity", 20, U16)]
    dtype = np.dtype({"names": ["x", "y", "z", "rgb", "intensity"], "formats": ["<f4"] * 4 + ["<u2"],
                      "offsets": [0, 4, 8, 16, 20], "itemsize": 32})
    return fields, dtype


def filled(dtype, n):
    points = np.zeros(n, dtype)
    for name in dtype.names:
        base = dtype.fields[name][0]
        points[name] = RNG.integers(0, 1000, n).astype(base) if base.kind in "iu" else RNG.normal(size=n)
    return points


def test_padding_between_fields_and_rows():
    fields, dtype = padded_layout()
    height, width, row_pad = 3, 4, 8
    points = filled(dtype, height * width)
    raw = np.frombuffer(points.tobytes(), np.uint8).reshape(height, width * 32)
    raw = raw.copy()
    raw[:, 12:16] = 0xEE  # garbage in padding must not leak into any field
    rows = np.concatenate([raw, np.full((height, row_pad), 0xAB, np.uint8)], axis=1)
    msg = PointCloud2(height=height, width=width, fields=fields, is_bigendian=False, point_step=32,
                      row_step=width * 32 + row_pad, data=rows.tobytes(), is_dense=True)
    back = pointcloud_to_array(msg)
    assert back.shape == (12,) and back.dtype.itemsize == 32
    assert back.dtype.fields["rgb"][1] == 16
    for name in dtype.names:
        np.testing.assert_array_equal(back[name], points[name], err_msg=name)
    assert back.flags.writeable


def test_padded_layout_is_kept_when_writing():
    fields, dtype = padded_layout()
    points = filled(dtype, 6).reshape(2, 3)
    msg = array_to_pointcloud(points, frame_id="cam")
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (2, 3, 32, 96)
    assert [(f.name, f.offset, f.datatype) for f in msg.fields] == [(f.name, f.offset, f.datatype) for f in fields]
    back = pointcloud_to_array(msg).reshape(2, 3)
    for name in dtype.names:
        np.testing.assert_array_equal(back[name], points[name])


def test_copy_false_is_a_read_only_view():
    msg = encode_xyzrgb(*map_cloud(10)[:2])
    view = pointcloud_to_array(msg, copy=False)
    assert not view.flags.writeable
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))
    copy = pointcloud_to_array(msg)
    assert copy.flags.writeable and not np.shares_memory(copy, np.frombuffer(msg.data, np.uint8))
    del view


def test_big_endian_cloud():
    columns = all_types_columns(8)
    little = encode_pointcloud(columns)
    dtype = pointcloud_dtype(list(little.fields), little.point_step)
    big = np.frombuffer(bytes(little.data), dtype).astype(dtype.newbyteorder(">"))
    msg = PointCloud2(height=1, width=8, fields=little.fields, is_bigendian=True, point_step=little.point_step,
                      row_step=little.row_step, data=big.tobytes())
    back = decode_pointcloud(msg)
    for name, column in columns.items():
        assert back[name].dtype.isnative
        np.testing.assert_array_equal(back[name], column, err_msg=name)


def test_big_endian_hand_value():
    msg = PointCloud2(height=1, width=1, fields=[field("v", 0, I32)], is_bigendian=True, point_step=4, row_step=4,
                      data=bytes([0x00, 0x00, 0x01, 0x02]))
    assert pointcloud_to_array(msg)["v"][0] == 0x0102


def raw_cloud(fields, point_step, width, nbytes, row_step=None):
    return PointCloud2(height=1, width=width, fields=fields, point_step=point_step,
                       row_step=point_step * width if row_step is None else row_step, data=bytes(nbytes))


@pytest.mark.parametrize(
    "msg, message",
    [
        (raw_cloud([field("x", 0, F32)], 4, 10, 39), "truncated: 39 bytes, expected .* = 40 \\* 1 = 40"),
        (raw_cloud([field("x", 0, F32)], 4, 10, 44), "width, height or row_step is wrong"),
        (raw_cloud([field("x", 0, F32), field("y", 2, F32)], 8, 1, 8), "'x' and 'y' overlap"),
        (raw_cloud([field("x", 0, F32, count=2), field("y", 4, F32)], 8, 1, 8), "'x' and 'y' overlap"),
        (raw_cloud([field("x", 0, 9)], 4, 1, 4), "unknown datatype 9"),
        (raw_cloud([field("x", 0, 0)], 4, 1, 4), "unknown datatype 0"),
        (raw_cloud([field("x", 0, F32, count=0)], 4, 1, 4), "count 0"),
        (raw_cloud([field("x", 0, F32), field("x", 4, F32)], 8, 1, 8), "'x' appears twice"),
        (raw_cloud([field("", 0, F32)], 4, 1, 4), "empty name"),
        (raw_cloud([field("x", 0, PointField.FLOAT64)], 4, 1, 4), "ends at byte 8, past point_step 4"),
        (raw_cloud([field("x", 0, F32)], 4, 10, 40, row_step=36), "row_step 36 is smaller"),
    ],
)
def test_malformed_clouds(msg, message):
    with pytest.raises(ConversionError, match=message):
        pointcloud_to_array(msg)


@pytest.mark.parametrize(
    "columns, message",
    [
        ({}, "at least one field"),
        ({"x": np.zeros(3, np.int64)}, "PointCloud2 takes"),
        ({"x": np.zeros(3, bool)}, "PointCloud2 takes"),
        ({"x": np.zeros(3, np.float32), "y": np.zeros(4, np.float32)}, "one N"),
        ({"x": np.zeros((3, 2, 2), np.float32)}, "one N"),
    ],
)
def test_dict_errors(columns, message):
    with pytest.raises(ConversionError, match=message):
        encode_pointcloud(columns)


def test_array_to_pointcloud_needs_structured_array():
    with pytest.raises(ConversionError, match="structured array"):
        array_to_pointcloud(np.zeros((3, 3), np.float32))


def test_decode_needs_xyz():
    with pytest.raises(ConversionError, match="no z field"):
        decode_xyzrgb(encode_pointcloud({"x": np.zeros(2, np.float32), "y": np.zeros(2, np.float32)}))


def test_agrees_with_sensor_msgs_py():
    point_cloud2 = pytest.importorskip("sensor_msgs_py.point_cloud2")
    points, colours, instance, label, score = map_cloud(50)
    ours = encode_xyzrgb(points, colours, instance=instance, label=label, score=score)
    theirs = point_cloud2.read_points(ours, field_names=[f.name for f in ours.fields])
    if not isinstance(theirs, np.ndarray):
        pytest.skip("this sensor_msgs_py (Foxy or older) reads points as tuples")
    for name in ("x", "y", "z", "rgb", "instance", "label", "score"):
        np.testing.assert_array_equal(np.asarray(theirs[name]), pointcloud_to_array(ours)[name])
    packed = pack_rgb(colours)
    structured = np.zeros(50, np.dtype({"names": ["x", "y", "z", "rgb"], "formats": ["<f4"] * 4}))
    for axis, name in enumerate("xyz"):
        structured[name] = points[:, axis]
    structured["rgb"] = packed
    their_msg = point_cloud2.create_cloud(ours.header, list(ours.fields)[:4], structured.tolist())
    np.testing.assert_array_equal(decode_xyzrgb(their_msg)["colours"], colours)
    np.testing.assert_array_equal(decode_xyzrgb(their_msg)["points"], points)
