"""The vocabulary and the shapes of the synthetic scenes: class names, named colours, and furniture-like objects
built from boxes, cylinders and spheres.

Every object is built in its own frame: origin at the centre of its footprint on the floor, z up, its front
facing +y (a chair's back, a sofa's back and a bed's headboard are on -y), so it can stand against a wall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Class id = index. 0 is "void" (nothing hit); the room's own surfaces come next, then the objects.
CLASS_NAMES: tuple[str, ...] = (
    "void", "floor", "wall", "ceiling",
    "chair", "table", "sofa", "bed", "cabinet", "lamp", "mug", "monitor", "plant", "box", "bookshelf", "ball",
    "trash can",
)
ROOM_CLASSES = ("floor", "wall", "ceiling")
OBJECT_CLASSES: tuple[str, ...] = CLASS_NAMES[4:]

# Nominal sRGB of the colour words objects are painted with (distinct hues and brightnesses, so that a caption
# like "a red chair" names exactly one thing when a scene paints each object differently).
OBJECT_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (200, 30, 30), "green": (40, 150, 50), "blue": (30, 70, 200), "yellow": (230, 200, 30),
    "orange": (240, 130, 20), "purple": (120, 50, 160), "pink": (240, 140, 190), "cyan": (40, 190, 210),
    "brown": (110, 65, 30), "black": (30, 30, 30), "white": (240, 240, 240), "grey": (125, 125, 125),
}
# The room's surfaces use colours no object uses.
ROOM_COLOURS: dict[str, tuple[int, int, int]] = {"tan": (175, 140, 100), "beige": (225, 215, 190),
                                                 "ivory": (250, 248, 235)}
ROOM_SURFACE_COLOURS = {"floor": "tan", "wall": "beige", "ceiling": "ivory"}
COLOURS: dict[str, tuple[int, int, int]] = {**OBJECT_COLOURS, **ROOM_COLOURS}

# Where an object may stand: against a wall (back to it), anywhere in the middle, or on a table.
WALL_CLASSES = ("sofa", "bed", "cabinet", "bookshelf")
FLOOR_CLASSES = ("chair", "table", "lamp", "plant", "box", "ball", "trash can")
TABLETOP_CLASSES = ("mug", "monitor")


@dataclass
class Mesh:
    """Triangles of one object: vertices (V, 3) float64, triangles (T, 3) int64, shade (T,) float64 (a per-part
    brightness factor so that parts of one colour stay distinguishable)."""

    vertices: np.ndarray
    triangles: np.ndarray
    shade: np.ndarray

    def transformed(self, yaw: float, translation: np.ndarray) -> "Mesh":
        """This mesh rotated by ``yaw`` (radians, about z) then moved by ``translation`` (3,)."""
        c, s = np.cos(yaw), np.sin(yaw)
        R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return Mesh(self.vertices @ R.T + np.asarray(translation, dtype=np.float64), self.triangles, self.shade)

    def scaled(self, factors: np.ndarray) -> "Mesh":
        return Mesh(self.vertices * np.asarray(factors, dtype=np.float64), self.triangles, self.shade)

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.vertices.min(axis=0), self.vertices.max(axis=0)

    def triangle_areas(self) -> np.ndarray:
        """(T,) areas."""
        a, b, c = (self.vertices[self.triangles[:, k]] for k in range(3))
        return 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)

    def triangle_normals(self) -> np.ndarray:
        """(T, 3) unit normals by the right-hand rule; every builder here winds triangles so they face out."""
        a, b, c = (self.vertices[self.triangles[:, k]] for k in range(3))
        normals = np.cross(b - a, c - a)
        return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def merge_meshes(parts: list[Mesh]) -> Mesh:
    """One mesh holding all ``parts``."""
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    return Mesh(np.concatenate([p.vertices for p in parts]),
                np.concatenate([p.triangles + o for p, o in zip(parts, offsets)]),
                np.concatenate([p.shade for p in parts]))


def make_box(size: tuple[float, float, float], centre: tuple[float, float, float], shade: float = 1.0) -> Mesh:
    """An axis-aligned box of ``size`` (x, y, z) centred at ``centre``."""
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    # Corner k has bits (x, y, z) = (k >> 2, k >> 1, k) & 1; two triangles per face.
    faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    triangles = np.array([t for a, b, c, d in faces for t in ((a, b, c), (a, c, d))], dtype=np.int64)
    return Mesh(corners * np.asarray(size) + np.asarray(centre), triangles, np.full(len(triangles), shade))


def make_rectangle(corner: tuple[float, float, float], edge_u: tuple[float, float, float],
                   edge_v: tuple[float, float, float], shade: float = 1.0) -> Mesh:
    """A flat rectangle (two triangles) spanned by ``edge_u`` and ``edge_v`` from ``corner``: a one-sided
    surface such as a floor or a wall, with nothing hidden behind it to sample."""
    c, u, v = (np.asarray(x, dtype=np.float64) for x in (corner, edge_u, edge_v))
    vertices = np.stack([c, c + u, c + u + v, c + v])
    return Mesh(vertices, np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int64), np.full(2, shade))


def make_cylinder(radius: float, height: float, base_centre: tuple[float, float, float], shade: float = 1.0,
                  segments: int = 24) -> Mesh:
    """A closed vertical cylinder standing on ``base_centre``."""
    angles = 2 * np.pi * np.arange(segments) / segments
    ring = np.stack([radius * np.cos(angles), radius * np.sin(angles), np.zeros(segments)], axis=1)
    vertices = np.concatenate([ring, ring + [0, 0, height], [[0, 0, 0], [0, 0, height]]]) + np.asarray(base_centre)
    k = np.arange(segments)
    k1 = (k + 1) % segments
    bottom, top = 2 * segments, 2 * segments + 1
    triangles = np.concatenate([
        np.stack([k, k1, segments + k1], axis=1), np.stack([k, segments + k1, segments + k], axis=1),
        np.stack([np.full(segments, bottom), k1, k], axis=1),
        np.stack([np.full(segments, top), segments + k, segments + k1], axis=1),
    ]).astype(np.int64)
    return Mesh(vertices, triangles, np.full(len(triangles), shade))


def make_sphere(radius: float, centre: tuple[float, float, float], shade: float = 1.0, rings: int = 12,
                segments: int = 24) -> Mesh:
    """A UV sphere."""
    polar = np.pi * np.arange(1, rings) / rings
    azimuth = 2 * np.pi * np.arange(segments) / segments
    p, a = np.meshgrid(polar, azimuth, indexing="ij")
    body = np.stack([np.sin(p) * np.cos(a), np.sin(p) * np.sin(a), np.cos(p)], axis=-1).reshape(-1, 3)
    vertices = np.concatenate([body, [[0, 0, 1], [0, 0, -1]]]) * radius + np.asarray(centre)
    north, south = len(body), len(body) + 1
    triangles = []
    for r in range(rings - 2):
        for s in range(segments):
            a0, a1 = r * segments + s, r * segments + (s + 1) % segments
            b0, b1 = a0 + segments, a1 + segments
            triangles += [(a0, b0, b1), (a0, b1, a1)]
    last = (rings - 2) * segments
    for s in range(segments):
        triangles += [(north, s, (s + 1) % segments), (south, last + (s + 1) % segments, last + s)]
    triangles = np.array(triangles, dtype=np.int64)
    return Mesh(vertices, triangles, np.full(len(triangles), shade))


def _legs(width: float, depth: float, height: float, thickness: float, shade: float) -> list[Mesh]:
    inset_x, inset_y = width / 2 - thickness, depth / 2 - thickness
    return [make_box((thickness, thickness, height), (sx * inset_x, sy * inset_y, height / 2), shade)
            for sx in (-1, 1) for sy in (-1, 1)]


def _chair() -> list[Mesh]:
    w, d, h = 0.46, 0.46, 0.45
    return _legs(w, d, h, 0.04, 0.7) + [make_box((w, d, 0.05), (0, 0, h + 0.025)),
                                        make_box((w, 0.05, 0.5), (0, -d / 2 + 0.025, h + 0.3), 0.9)]


def _table() -> list[Mesh]:
    w, d, h = 1.2, 0.8, 0.72
    return _legs(w, d, h - 0.04, 0.06, 0.7) + [make_box((w, d, 0.04), (0, 0, h - 0.02))]


def _sofa() -> list[Mesh]:
    w, d = 1.8, 0.85
    return [make_box((w, d, 0.42), (0, 0, 0.21)), make_box((w, 0.2, 0.42), (0, -d / 2 + 0.1, 0.63), 0.85),
            make_box((0.18, d, 0.22), (-w / 2 + 0.09, 0, 0.53), 0.9),
            make_box((0.18, d, 0.22), (w / 2 - 0.09, 0, 0.53), 0.9)]


def _bed() -> list[Mesh]:
    w, d = 1.5, 2.0
    return [make_box((w, d, 0.3), (0, 0, 0.15), 0.75), make_box((w - 0.05, d - 0.05, 0.18), (0, 0, 0.39)),
            make_box((w, 0.08, 0.95), (0, -d / 2 + 0.04, 0.475), 0.8),
            make_box((0.6, 0.35, 0.12), (0, -d / 2 + 0.3, 0.54), 1.1)]


def _cabinet() -> list[Mesh]:
    w, d, h = 0.8, 0.45, 1.1
    return [make_box((w, d, h), (0, 0, h / 2)),
            make_box((0.03, 0.03, 0.15), (-0.06, d / 2 + 0.015, 0.7 * h), 0.6),
            make_box((0.03, 0.03, 0.15), (0.06, d / 2 + 0.015, 0.7 * h), 0.6)]


def _lamp() -> list[Mesh]:
    return [make_cylinder(0.16, 0.03, (0, 0, 0), 0.7), make_cylinder(0.025, 1.4, (0, 0, 0.03), 0.7),
            make_cylinder(0.22, 0.3, (0, 0, 1.35))]


def _mug() -> list[Mesh]:
    return [make_cylinder(0.06, 0.13, (0, 0, 0)), make_box((0.03, 0.02, 0.08), (0.075, 0, 0.065), 0.85)]


def _monitor() -> list[Mesh]:
    return [make_box((0.24, 0.18, 0.02), (0, 0, 0.01), 0.6), make_box((0.05, 0.04, 0.16), (0, -0.03, 0.1), 0.6),
            make_box((0.62, 0.04, 0.4), (0, 0, 0.36))]


def _plant() -> list[Mesh]:
    return [make_cylinder(0.17, 0.32, (0, 0, 0), 0.75), make_cylinder(0.03, 0.2, (0, 0, 0.32), 0.8),
            make_sphere(0.3, (0, 0, 0.78))]


def _box() -> list[Mesh]:
    return [make_box((0.5, 0.5, 0.45), (0, 0, 0.225))]


def _bookshelf() -> list[Mesh]:
    w, d, h = 0.9, 0.35, 1.7
    parts = [make_box((0.03, d, h), (sx * (w / 2 - 0.015), 0, h / 2)) for sx in (-1, 1)]
    parts.append(make_box((w, 0.02, h), (0, -d / 2 + 0.01, h / 2), 0.8))
    parts += [make_box((w - 0.06, d, 0.03), (0, 0, z)) for z in np.linspace(0.015, h - 0.015, 5)]
    return parts


def _ball() -> list[Mesh]:
    return [make_sphere(0.2, (0, 0, 0.2))]


def _trash_can() -> list[Mesh]:
    return [make_cylinder(0.16, 0.42, (0, 0, 0)), make_cylinder(0.17, 0.03, (0, 0, 0.42), 0.8)]


_BUILDERS = {
    "chair": _chair, "table": _table, "sofa": _sofa, "bed": _bed, "cabinet": _cabinet, "lamp": _lamp,
    "mug": _mug, "monitor": _monitor, "plant": _plant, "box": _box, "bookshelf": _bookshelf, "ball": _ball,
    "trash can": _trash_can,
}


def build_object(class_name: str, rng: np.random.Generator, size_jitter: float = 0.1) -> Mesh:
    """The mesh of one ``class_name`` object, each axis scaled by a random factor in 1 +- ``size_jitter``
    (balls scale uniformly so that they stay round)."""
    if class_name not in _BUILDERS:
        raise ValueError(f"unknown object class {class_name!r}; known: {sorted(_BUILDERS)}")
    if not 0 <= size_jitter < 1:
        raise ValueError(f"size_jitter must be in [0, 1), got {size_jitter}")
    factors = rng.uniform(1 - size_jitter, 1 + size_jitter, size=3)
    if class_name == "ball":
        factors[:] = factors[0]
    return merge_meshes(_BUILDERS[class_name]()).scaled(factors)
