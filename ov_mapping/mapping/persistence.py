"""Saving and loading voxel maps: atomic .npz files with a versioned format, and PLY export.

Writes go to a temporary file in the target's directory, are fsynced, then renamed over the target
(``os.replace``), so a crash or a failed save never leaves a half-written map: the old file stays.
``load_map`` validates everything and returns a new map; the live map is never touched, so a
caller swaps maps only after a load succeeded.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Optional

import numpy as np

from ov_mapping.mapping.voxel_map import STATE_FIELDS, VoxelMap

FORMAT_NAME = "ov_mapping.voxel_map"
FORMAT_VERSION = 1
_META_KEY = "meta"
_MAP_PREFIX = "map."
_EXTRA_PREFIX = "extra."
_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class MapFileError(ValueError):
    """A map file is missing, unreadable, corrupt, of another format or inconsistent."""


@dataclass
class LoadedMap:
    voxel_map: VoxelMap
    metadata: dict  # what the file's header holds (format, version, voxel_size, frame_id, counts, user)
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # arrays saved with ``extra=``


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Run ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; maps are ordinary data files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    # The rename itself lives in the directory: sync it so the new file survives a power cut.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _check_extra(extra: Optional[dict]) -> dict[str, np.ndarray]:
    arrays = {}
    for name, value in (extra or {}).items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"extra array names must match [A-Za-z0-9_]+, got {name!r}")
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise ValueError(f"extra array {name!r} has object dtype; only plain numeric/string arrays are saved")
        arrays[name] = array
    return arrays


def save_map(
    path: str | os.PathLike,
    voxel_map: VoxelMap,
    extra: Optional[dict[str, np.ndarray]] = None,
    metadata: Optional[dict] = None,
    compress: bool = False,
) -> Path:
    """Save a map atomically as .npz.

    Args:
        path: target file (its directory must exist); an existing file is replaced only on success.
        voxel_map: the map to save.
        extra: further named arrays (names [A-Za-z0-9_]+, no object dtype), e.g. an instance table.
        metadata: JSON-serialisable user metadata stored in the header under "user".
        compress: zip-deflate the arrays (smaller, slower).
    Returns:
        The path written.
    """
    if not isinstance(voxel_map, VoxelMap):
        raise ValueError(f"voxel_map must be a VoxelMap, got {type(voxel_map).__name__}")
    arrays = {_MAP_PREFIX + name: value for name, value in voxel_map.export_state().items()}
    arrays.update({_EXTRA_PREFIX + name: value for name, value in _check_extra(extra).items()})
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "voxel_size": voxel_map.voxel_size,
        "max_points": voxel_map.max_points,
        "frame_id": voxel_map.frame_id,
        "num_voxels": len(voxel_map),
        "num_points": int(voxel_map.counts.sum()),
        "saved_unix": time.time(),
        "user": metadata or {},
    }
    try:
        header_text = json.dumps(header)
    except (TypeError, ValueError) as error:
        raise ValueError(f"metadata must be JSON-serialisable: {error}") from None
    arrays[_META_KEY] = np.array(header_text)
    savez = np.savez_compressed if compress else np.savez
    path = Path(path)
    atomic_write(path, lambda handle: savez(handle, **arrays))
    return path


def _read_header(data) -> dict:
    if _META_KEY not in data.files:
        raise MapFileError("not an ov_mapping map: no header")
    try:
        header = json.loads(str(data[_META_KEY][()]))
    except (ValueError, TypeError) as error:
        raise MapFileError(f"unreadable map header: {error}") from None
    if not isinstance(header, dict):
        raise MapFileError("not an ov_mapping map: the header is not a JSON object")
    if header.get("format") != FORMAT_NAME:
        raise MapFileError(f"not an ov_mapping map (format {header.get('format')!r})")
    if header.get("version") != FORMAT_VERSION:
        raise MapFileError(
            f"unsupported map format version {header.get('version')!r} (this code reads {FORMAT_VERSION})"
        )
    for name in ("voxel_size", "frame_id", "num_voxels"):
        if name not in header:
            raise MapFileError(f"map header lacks {name!r}")
    return header


def load_map(path: str | os.PathLike, max_points: Optional[int] = None) -> LoadedMap:
    """Load and validate a map saved by ``save_map``.

    Args:
        path: the .npz file.
        max_points: budget of the returned map (default: the one saved).
    Returns:
        LoadedMap with a new VoxelMap, the header and the extra arrays.
    Raises:
        MapFileError: missing, corrupt, foreign or inconsistent file (the message says which).
    """
    path = Path(path)
    if not path.is_file():
        raise MapFileError(f"map file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            header = _read_header(data)
            state = {name: data[_MAP_PREFIX + name] for name in STATE_FIELDS if _MAP_PREFIX + name in data.files}
            extra = {
                name[len(_EXTRA_PREFIX):]: data[name] for name in data.files if name.startswith(_EXTRA_PREFIX)
            }
    except MapFileError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        raise MapFileError(f"cannot read map file {path}: {type(error).__name__}: {error}") from None
    if len(state) != len(STATE_FIELDS):
        missing = sorted(set(STATE_FIELDS) - set(state))
        raise MapFileError(f"map file {path} lacks arrays {missing}")
    if int(np.asarray(state["keys"]).shape[0]) != header["num_voxels"]:
        raise MapFileError(
            f"map file {path} holds {len(state['keys'])} voxels but its header says {header['num_voxels']}"
        )
    budget = header.get("max_points") if max_points is None else max_points
    try:
        voxel_map = VoxelMap.from_state(state, header["voxel_size"], budget, header["frame_id"])
    except (ValueError, TypeError) as error:
        raise MapFileError(f"inconsistent map file {path}: {error}") from None
    return LoadedMap(voxel_map=voxel_map, metadata=header, extra=extra)


PLY_DTYPE = np.dtype(
    [
        ("x", "<f4"),
        ("y", "<f4"),
        ("z", "<f4"),
        ("red", "u1"),
        ("green", "u1"),
        ("blue", "u1"),
        ("instance", "<i4"),
        ("label", "<i4"),
        ("score", "<f4"),
    ]
)
_PLY_TYPES = {"<f4": "float", "u1": "uchar", "<i4": "int"}


def export_ply(path: str | os.PathLike, voxel_map: VoxelMap) -> Path:
    """Write the map as a binary little-endian PLY point cloud, atomically.

    One vertex per voxel with properties x y z (float), red green blue (uchar), instance label
    (int, -1 = none) and score (float); viewers that know only xyz/rgb ignore the rest.
    """
    if not isinstance(voxel_map, VoxelMap):
        raise ValueError(f"voxel_map must be a VoxelMap, got {type(voxel_map).__name__}")
    arrays = voxel_map.to_arrays()
    vertices = np.empty(len(voxel_map), dtype=PLY_DTYPE)
    for axis, name in enumerate("xyz"):
        vertices[name] = arrays.positions[:, axis]
    for channel, name in enumerate(("red", "green", "blue")):
        vertices[name] = arrays.colours[:, channel]
    vertices["instance"] = arrays.instance_ids
    vertices["label"] = arrays.label_ids
    vertices["score"] = arrays.label_scores
    frame_id = "_".join(voxel_map.frame_id.split())  # a PLY comment must stay on one line
    lines = [
        "ply",
        "format binary_little_endian 1.0",
        f"comment ov_mapping voxel map frame_id={frame_id} voxel_size={voxel_map.voxel_size:g}",
        f"element vertex {len(vertices)}",
    ]
    lines += [f"property {_PLY_TYPES[PLY_DTYPE[name].str.replace('|', '')]} {name}" for name in PLY_DTYPE.names]
    lines.append("end_header")
    header = ("\n".join(lines) + "\n").encode("ascii")
    path = Path(path)
    atomic_write(path, lambda handle: (handle.write(header), handle.write(vertices.tobytes())))
    return path
