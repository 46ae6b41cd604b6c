import os

import numpy as np
import pytest

from ov_mapping.mapping import persistence
from ov_mapping.mapping.persistence import MapFileError, export_ply, load_map, save_map
from ov_mapping.mapping.voxel_map import VoxelMap


def sample_map(seed=0, n=3000):
    rng = np.random.default_rng(seed)
    vmap = VoxelMap(0.05, max_points=100000, frame_id="odom")
    vmap.integrate(rng.uniform(-1, 1, (n, 3)), rng.integers(0, 256, (n, 3), dtype=np.uint8), rng.uniform(0.5, 2, n))
    idx = np.arange(0, len(vmap), 3)
    vmap.set_fields(idx, instance_ids=np.arange(len(idx)), label_ids=2, label_scores=0.5)
    return vmap


def assert_same(a: VoxelMap, b: VoxelMap):
    assert (a.voxel_size, a.max_points, a.frame_id, len(a)) == (b.voxel_size, b.max_points, b.frame_id, len(b))
    for name, value in a.export_state().items():
        np.testing.assert_array_equal(value, b.export_state()[name], err_msg=name)


def test_round_trip_with_extra_and_metadata(tmp_path):
    vmap = sample_map()
    path = save_map(tmp_path / "map.npz", vmap, extra={"names": np.array(["mug", "chair"])}, metadata={"run": 3})
    loaded = load_map(path)
    assert_same(vmap, loaded.voxel_map)
    assert loaded.metadata["voxel_size"] == 0.05 and loaded.metadata["frame_id"] == "odom"
    assert loaded.metadata["num_voxels"] == len(vmap) and loaded.metadata["user"] == {"run": 3}
    assert loaded.extra["names"].tolist() == ["mug", "chair"]
    # The loaded map is live: it keeps integrating.
    assert loaded.voxel_map.integrate(np.array([[5.0, 5.0, 5.0]]), np.zeros((1, 3), np.uint8)) == 1
    compressed = save_map(tmp_path / "small.npz", vmap, compress=True)
    assert_same(vmap, load_map(compressed).voxel_map)
    assert os.path.getsize(compressed) < os.path.getsize(path)


def test_corrupt_and_foreign_files_raise_clear_errors(tmp_path):
    path = save_map(tmp_path / "map.npz", sample_map())
    data = bytearray(path.read_bytes())
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(bytes(data[: len(data) // 2]))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    for bad in (truncated, garbage, foreign, tmp_path / "missing.npz"):
        with pytest.raises(MapFileError):
            load_map(bad)
    with pytest.raises(MapFileError, match="version"):
        load_map(_rewrite(path, tmp_path / "v99.npz", header={"version": 99}))
    with pytest.raises(MapFileError, match="sorted"):
        load_map(_rewrite(path, tmp_path / "unsorted.npz", arrays={"map.keys": lambda k: k[::-1].copy()}))
    with pytest.raises(MapFileError, match="voxel"):
        load_map(_rewrite(path, tmp_path / "size.npz", header={"voxel_size": 0.5}))
    with pytest.raises(MapFileError, match="shape"):
        load_map(_rewrite(path, tmp_path / "short.npz", arrays={"map.colours": lambda c: c[:-1]}))


def _rewrite(source, target, header=None, arrays=None):
    """Copy a saved map, editing its header or arrays, to fake a damaged or foreign file."""
    import json

    with np.load(source) as data:
        content = {name: data[name] for name in data.files}
    meta = json.loads(str(content["meta"][()]))
    meta.update(header or {})
    content["meta"] = np.array(json.dumps(meta))
    for name, edit in (arrays or {}).items():
        content[name] = edit(content[name])
    np.savez(target, **content)
    return target


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_map(tmp_path / "map.npz", sample_map(seed=1))
    before = path.read_bytes()

    def broken_savez(handle, **arrays):
        handle.write(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(persistence.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_map(path, sample_map(seed=2))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.npz"]  # no temporary files left behind
    monkeypatch.undo()
    with pytest.raises(ValueError, match="JSON"):
        save_map(path, sample_map(seed=2), metadata={"bad": object()})
    with pytest.raises(ValueError, match="object"):
        save_map(path, sample_map(seed=2), extra={"table": np.array([{}], dtype=object)})
    assert path.read_bytes() == before
    assert_same(load_map(path).voxel_map, sample_map(seed=1))


def test_ply_export_layout(tmp_path):
    vmap = sample_map()
    path = export_ply(tmp_path / "map.ply", vmap)
    raw = path.read_bytes()
    header, body = raw.split(b"end_header\n", 1)
    assert b"format binary_little_endian 1.0" in header
    assert f"element vertex {len(vmap)}".encode() in header
    for prop in (b"float x", b"uchar red", b"int instance", b"int label", b"float score"):
        assert prop in header
    vertices = np.frombuffer(body, dtype=persistence.PLY_DTYPE)
    arrays = vmap.to_arrays()
    np.testing.assert_array_equal(vertices["x"], arrays.positions[:, 0])
    np.testing.assert_array_equal(vertices["green"], arrays.colours[:, 1])
    np.testing.assert_array_equal(vertices["instance"], arrays.instance_ids)


def test_ply_is_readable_by_open3d(tmp_path):
    o3d = pytest.importorskip("open3d")
    vmap = sample_map()
    path = export_ply(tmp_path / "map.ply", vmap)
    cloud = o3d.io.read_point_cloud(str(path))
    arrays = vmap.to_arrays()
    np.testing.assert_allclose(np.asarray(cloud.points), arrays.positions, atol=1e-6)
    np.testing.assert_allclose(np.asarray(cloud.colors) * 255, arrays.colours, atol=0.5)
