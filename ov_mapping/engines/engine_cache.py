"""On-disk cache of serialised TensorRT engines, keyed by everything an engine depends on.

An engine is only valid for the exact ONNX file (or weights), input shape profile, TensorRT version, GPU model
and precision it was built with; the key is a sha256 over all of them, so a change of any part gives a new key
and a rebuild. Each entry is ``<graph>-<key>.engine`` plus ``<graph>-<key>.json`` (the key's fields and the
engine file's sha256 and size, checked on load so a truncated or edited file is rebuilt, never deserialised).
Nothing here imports TensorRT.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

# (min, opt, max) shape of every input of one optimisation profile.
ShapeProfile = dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialised engine depends on."""

    graph: str
    onnx_sha256: str
    profile: tuple[tuple[str, tuple[tuple[int, ...], ...]], ...]
    tensorrt_version: str
    gpu_name: str
    precision: str
    workspace_bytes: int

    def digest(self) -> str:
        """Hex sha256 of the canonical JSON of the fields (stable across processes and Python versions)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def stem(self) -> str:
        """File stem of this entry: graph name and the first 24 hex digits of the digest."""
        return f"{self.graph}-{self.digest()[:24]}"


def make_engine_key(
    graph: str,
    onnx_sha256: str,
    profile: ShapeProfile,
    tensorrt_version: str,
    gpu_name: str,
    precision: str,
    workspace_bytes: int,
) -> EngineKey:
    """Canonical key: the profile is sorted by input name and every shape made a tuple of ints."""
    if not onnx_sha256 or not graph:
        raise ValueError("graph name and onnx_sha256 must be non-empty")
    canonical = []
    for name in sorted(profile):
        shapes = profile[name]
        if len(shapes) != 3:
            raise ValueError(f"profile[{name!r}] must be (min, opt, max) shapes, got {shapes!r}")
        canonical.append((name, tuple(tuple(int(d) for d in s) for s in shapes)))
    return EngineKey(graph, onnx_sha256, tuple(canonical), str(tensorrt_version), str(gpu_name), precision,
                     int(workspace_bytes))


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # readers never see a half-written file


class EngineCache:
    """A folder of engines; :meth:`load` returns bytes only for an intact entry of exactly this key."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def paths(self, key: EngineKey) -> tuple[Path, Path]:
        """(engine file, metadata json) of ``key``."""
        stem = key.stem()
        return self.root / f"{stem}.engine", self.root / f"{stem}.json"

    def load(self, key: EngineKey) -> bytes | None:
        """The engine bytes of ``key``, or None if absent, its metadata differs, or the file does not match."""
        engine_path, meta_path = self.paths(key)
        if not engine_path.is_file() or not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, OSError):
            return None
        if meta.get("key") != json.loads(json.dumps(asdict(key))):
            return None
        data = engine_path.read_bytes()
        if len(data) != meta.get("size") or _sha256_bytes(data) != meta.get("sha256"):
            return None
        return data

    def store(self, key: EngineKey, engine: bytes) -> Path:
        """Write ``engine`` and its metadata (engine first: metadata present means the engine is complete)."""
        self.root.mkdir(parents=True, exist_ok=True)
        engine_path, meta_path = self.paths(key)
        _write_atomic(engine_path, engine)
        meta = {"key": asdict(key), "size": len(engine), "sha256": _sha256_bytes(engine)}
        _write_atomic(meta_path, json.dumps(meta, indent=1, sort_keys=True).encode())
        return engine_path

    def remove_stale(self, key: EngineKey) -> list[Path]:
        """Delete the other entries of ``key.graph`` (older builds of the same graph); returns what was deleted."""
        keep = set(self.paths(key))
        removed = []
        for suffix in ("engine", "json"):
            for path in self.root.glob(f"{key.graph}-*.{suffix}"):
                # The graph name may itself contain '-': only exact '<graph>-<24 hex>' stems are ours.
                tail = path.stem[len(key.graph) + 1:]
                if path not in keep and len(tail) == 24 and all(c in "0123456789abcdef" for c in tail):
                    path.unlink()
                    removed.append(path)
        return removed
