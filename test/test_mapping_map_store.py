import os

import numpy as np
import pytest

from ov_mapping.core.types import CameraIntrinsics, Keyframe
from ov_mapping.mapping.map_store import MapPathError, MapStore, resolve_map_path
from ov_mapping.mapping.persistence import MapFileError


def test_resolve_map_path_keeps_paths_inside_the_map_directory(tmp_path):
    root = tmp_path / "maps"
    root.mkdir()
    assert resolve_map_path(root, "kitchen") == (root / "kitchen.npz").resolve()
    assert resolve_map_path(root, "sub/kitchen.npz") == (root / "sub" / "kitchen.npz").resolve()
    assert resolve_map_path(root, str(root / "abs")) == (root / "abs.npz").resolve()
    for bad in ("", "   ", "../x", "/etc/passwd", "a/../../x", "bad\x00name"):
        with pytest.raises(MapPathError):
            resolve_map_path(root, bad)
    os.symlink(tmp_path, root / "escape")
    with pytest.raises(MapPathError, match="inside"):
        resolve_map_path(root, "escape/x")


def _keyframe(offset: float) -> Keyframe:
    pointmap = np.zeros((4, 4, 3), np.float32)
    pointmap[..., 0] = np.arange(4)[None, :] * 0.1 + offset
    pointmap[..., 1] = np.arange(4)[:, None] * 0.1
    confidence = np.ones((4, 4), np.float32)
    confidence[0, 0] = 0.0  # below min_confidence: not integrated
    return Keyframe(0, 0.0, np.full((4, 4, 3), 200, np.uint8), CameraIntrinsics(4, 4, 2, 2, 4, 4), np.eye(4),
                    pointmap, confidence)


def test_failed_load_leaves_the_live_map_and_version_unchanged(tmp_path):
    store = MapStore(voxel_size=0.05, min_confidence=0.5)
    assert store.integrate_keyframe(_keyframe(0.0)) == 15
    assert store.stats.points_rejected == 1
    saved = store.save(tmp_path / "m.npz")
    version = store.version
    (tmp_path / "bad.npz").write_bytes(b"not a map")
    with pytest.raises(MapFileError):
        store.load(tmp_path / "bad.npz")
    assert len(store) == 15 and store.version == version
    store.integrate_keyframe(_keyframe(5.0))
    assert len(store) == 30
    store.load(saved)
    assert len(store) == 15 and store.version != version  # a load always counts as a change
