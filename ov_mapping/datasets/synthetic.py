"""A synthetic furnished room with exact ground truth, rendered by open3d ray casting (headless, CPU).

World frame: z up, floor at z = 0, room centred on the origin. Every object is one instance with a class from
``CLASS_NAMES`` and a named colour from ``COLOURS``; floor, walls (one instance each) and the optional ceiling are
instances too. A camera circles the room looking inward; each frame gives RGB (Lambertian shading, a checker on
floor and walls so that images have texture), depth (metres), the pose and per-pixel class / instance ids.
Everything is a deterministic function of the parameters and ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ov_mapping.core.types import CameraIntrinsics, RGBDFrame
from ov_mapping.datasets.base import FrameGroundTruth, IndexedSequence, LabeledCloud, SceneMetadata
from ov_mapping.datasets.synthetic_assets import (
    CLASS_NAMES, COLOURS, FLOOR_CLASSES, OBJECT_COLOURS, OBJECT_CLASSES, ROOM_SURFACE_COLOURS, TABLETOP_CLASSES,
    WALL_CLASSES, Mesh, build_object, make_rectangle,
)

ROOM_HALF_EXTENT = (3.5, 3.0)  # metres, x and y
ROOM_HEIGHT = 2.7
CENTRE_HALF_EXTENT = (1.5, 1.1)  # free-standing objects stay inside this, well within the camera's loop
CAMERA_LOOP = (2.2, 1.7, 1.5)  # semi-axes (x, y) and height of the camera's elliptic loop
DEFAULT_INTRINSICS = CameraIntrinsics(260.0, 260.0, 159.5, 119.5, 320, 240)


def import_open3d():
    """open3d, or an ImportError that says how to fix the usual cause on Debian."""
    try:
        import open3d
    except ImportError as error:
        raise ImportError(f"open3d is needed for synthetic scenes ({error}); on Debian open3d 0.20 also needs "
                          "the system package libusb-1.0-0 (apt-get install -y libusb-1.0-0)") from error
    return open3d


@dataclass
class SceneInstance:
    """One labelled surface of the scene: mesh in world coordinates, class, colour name and albedo (sRGB)."""

    instance_id: int
    class_name: str
    colour_name: str
    mesh: Mesh

    @property
    def class_id(self) -> int:
        return CLASS_NAMES.index(self.class_name)

    @property
    def albedo(self) -> np.ndarray:
        return np.array(COLOURS[self.colour_name], dtype=np.float64)


def _room_instances(ceiling: bool) -> list[SceneInstance]:
    hx, hy = ROOM_HALF_EXTENT
    h = ROOM_HEIGHT
    e = 0.01  # surfaces overlap a little at the room's edges so that no ray slips out through a seam
    # Edge order sets each rectangle's normal (u x v) towards the inside of the room.
    surfaces = [("floor", make_rectangle((-hx - e, -hy - e, 0), (2 * hx + 2 * e, 0, 0), (0, 2 * hy + 2 * e, 0))),
                ("wall", make_rectangle((-hx, -hy - e, -e), (0, 2 * hy + 2 * e, 0), (0, 0, h + 2 * e))),
                ("wall", make_rectangle((hx, -hy - e, -e), (0, 0, h + 2 * e), (0, 2 * hy + 2 * e, 0))),
                ("wall", make_rectangle((-hx - e, -hy, -e), (0, 0, h + 2 * e), (2 * hx + 2 * e, 0, 0))),
                ("wall", make_rectangle((-hx - e, hy, -e), (2 * hx + 2 * e, 0, 0), (0, 0, h + 2 * e)))]
    if ceiling:
        surfaces.append(("ceiling", make_rectangle((-hx - e, -hy - e, h), (0, 2 * hy + 2 * e, 0),
                                                   (2 * hx + 2 * e, 0, 0))))
    return [SceneInstance(k + 1, name, ROOM_SURFACE_COLOURS[name], mesh) for k, (name, mesh) in enumerate(surfaces)]


def _footprint(mesh: Mesh, margin: float) -> np.ndarray:
    """(xmin, ymin, xmax, ymax) of the mesh's floor-plan bounds, grown by ``margin``."""
    lo, hi = mesh.bounds
    return np.array([lo[0] - margin, lo[1] - margin, hi[0] + margin, hi[1] + margin])


def _overlaps(box: np.ndarray, boxes: list[np.ndarray]) -> bool:
    return any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in boxes)


def choose_object_classes(num_objects: int, rng: np.random.Generator) -> list[str]:
    """The classes of a scene's objects: a table with a mug and a chair, then distinct-as-possible others."""
    others = [c for c in OBJECT_CLASSES if c not in ("table", "mug")]
    chosen = ["table", "mug", "chair"]
    pool = list(rng.permutation([c for c in others if c != "chair"])) + ["chair", "box"]
    return chosen + [str(c) for c in pool[: num_objects - len(chosen)]]


def _place_against_wall(mesh: Mesh, rng: np.random.Generator) -> Mesh:
    """Rotate the object's back (-y) to a random wall and slide it along that wall."""
    hx, hy = ROOM_HALF_EXTENT
    wall = int(rng.integers(4))
    # yaw turning local -y towards the wall: walls at -y, +x, +y, -x
    yaw = (0.0, np.pi / 2, np.pi, -np.pi / 2)[wall]
    turned = mesh.transformed(yaw, np.zeros(3))
    lo, hi = turned.bounds
    gap = 0.02
    if wall in (0, 2):
        x = rng.uniform(-hx - lo[0] + 0.1, hx - hi[0] - 0.1)
        y = -hy - lo[1] + gap if wall == 0 else hy - hi[1] - gap
    else:
        y = rng.uniform(-hy - lo[1] + 0.1, hy - hi[1] - 0.1)
        x = -hx - lo[0] + gap if wall == 3 else hx - hi[0] - gap
    return turned.transformed(0.0, np.array([x, y, 0.0]))


def _place_in_centre(mesh: Mesh, rng: np.random.Generator, yaw_spread: float = np.pi) -> Mesh:
    """Stand the object somewhere in the middle, turned by a random multiple of 90 degrees +- ``yaw_spread``."""
    yaw = np.pi / 2 * rng.integers(4) + rng.uniform(-yaw_spread, yaw_spread)
    turned = mesh.transformed(yaw, np.zeros(3))
    lo, hi = turned.bounds
    cx, cy = CENTRE_HALF_EXTENT
    x = rng.uniform(-cx - lo[0], cx - hi[0]) if hi[0] - lo[0] < 2 * cx else 0.0
    y = rng.uniform(-cy - lo[1], cy - hi[1]) if hi[1] - lo[1] < 2 * cy else 0.0
    return turned.transformed(0.0, np.array([x, y, 0.0]))


def _place_on(mesh: Mesh, support: Mesh, rng: np.random.Generator) -> Mesh:
    """Stand ``mesh`` on the top of ``support`` (a table), somewhere inside its top."""
    turned = mesh.transformed(rng.uniform(-np.pi, np.pi), np.zeros(3))
    lo, hi = turned.bounds
    s_lo, s_hi = support.bounds
    x = rng.uniform(s_lo[0] + 0.05 - lo[0], s_hi[0] - 0.05 - hi[0])
    y = rng.uniform(s_lo[1] + 0.05 - lo[1], s_hi[1] - 0.05 - hi[1])
    return turned.transformed(0.0, np.array([x, y, s_hi[2]]))


def build_room(seed: int = 0, num_objects: int = 10, ceiling: bool = False) -> list[SceneInstance]:
    """The instances of a furnished room: floor (id 1), walls (2-5), ceiling (6, optional), then the objects.

    Objects get distinct colours; wall furniture stands with its back to a wall, tables and chairs stand in the
    middle of the room (never on the camera's loop), other floor objects in either place, mugs and monitors on
    the table.
    """
    if not 3 <= num_objects <= len(OBJECT_COLOURS):
        raise ValueError(f"num_objects must be in 3..{len(OBJECT_COLOURS)}, got {num_objects}")
    rng = np.random.default_rng(seed)
    instances = _room_instances(ceiling)
    colours = [str(c) for c in rng.permutation(list(OBJECT_COLOURS))]
    floor_boxes: list[np.ndarray] = []
    top_boxes: list[np.ndarray] = []
    table: Optional[Mesh] = None
    for k, class_name in enumerate(choose_object_classes(num_objects, rng)):
        shape = build_object(class_name, rng)
        for _ in range(500):
            if class_name in TABLETOP_CLASSES:
                placed = _place_on(shape, table, rng)
                boxes = top_boxes
            elif class_name in WALL_CLASSES or (class_name not in ("table", "chair") and rng.random() < 0.5):
                placed = _place_against_wall(shape, rng)
                boxes = floor_boxes
            else:
                placed = _place_in_centre(shape, rng, yaw_spread=0.25 if class_name == "table" else np.pi)
                boxes = floor_boxes
            box = _footprint(placed, margin=0.1 if class_name in FLOOR_CLASSES + WALL_CLASSES else 0.02)
            if not _overlaps(box, boxes):
                boxes.append(box)
                break
        else:
            raise RuntimeError(f"could not place a {class_name} in the room (seed {seed}); try fewer objects")
        if class_name == "table":
            table = placed
        instances.append(SceneInstance(len(instances) + 1, class_name, colours[k], placed))
    return instances


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(4, 4) T_world_camera of an optical-frame camera (x right, y down, z forward) at ``eye`` looking at
    ``target``, with the world's z axis up."""
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("look_at cannot look straight up or down")
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, forward], axis=1)
    pose[:3, 3] = eye
    return pose


def camera_loop(num_frames: int, seed: int = 0) -> np.ndarray:
    """(N, 4, 4) poses of one smooth closed loop around the room, looking at a slowly wandering point near the
    middle. The start angle, loop size, height wave and gaze wander depend on ``seed``."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    rng = np.random.default_rng([seed, 1])  # its own stream so the layout's randomness does not shift the path
    a, b, height = CAMERA_LOOP
    start = rng.uniform(0, 2 * np.pi)
    scale = rng.uniform(0.95, 1.03)
    phases = rng.uniform(0, 2 * np.pi, size=3)
    poses = []
    for k in range(num_frames):
        angle = start + 2 * np.pi * k / num_frames
        eye = np.array([scale * a * np.cos(angle), scale * b * np.sin(angle),
                        height + 0.12 * np.sin(2 * angle + phases[0])])
        target = np.array([0.4 * np.cos(3 * angle + phases[1]), 0.3 * np.sin(2 * angle + phases[2]), 0.55])
        poses.append(look_at(eye, target))
    return np.stack(poses)


def pixel_rays(intrinsics: CameraIntrinsics) -> np.ndarray:
    """(H, W, 3) camera-frame ray directions with z = 1, so a hit's ray parameter is its depth."""
    u = (np.arange(intrinsics.width) - intrinsics.cx) / intrinsics.fx
    v = (np.arange(intrinsics.height) - intrinsics.cy) / intrinsics.fy
    uu, vv = np.meshgrid(u, v)
    return np.stack([uu, vv, np.ones_like(uu)], axis=-1)


def checker(points: np.ndarray, cell: float) -> np.ndarray:
    """1 or 0 per point (N, 3) in a 3D checkerboard of ``cell`` metres (texture for floor and walls)."""
    return (np.floor(points / cell).astype(np.int64).sum(axis=-1) % 2).astype(np.float64)


class SceneRenderer:
    """Ray casts a list of instances: colour, depth and labels for any pinhole camera and pose."""

    def __init__(self, instances: list[SceneInstance]) -> None:
        o3d = import_open3d()
        if not instances:
            raise ValueError("a scene needs at least one instance")
        self._o3d = o3d
        self.instances = instances
        self._scene = o3d.t.geometry.RaycastingScene()
        offsets, albedo, instance_of_geometry = [], [], []
        count = 0
        for instance in instances:
            mesh = instance.mesh
            geometry = self._scene.add_triangles(o3d.core.Tensor(mesh.vertices.astype(np.float32)),
                                                 o3d.core.Tensor(mesh.triangles.astype(np.uint32)))
            if geometry != len(instance_of_geometry):
                raise RuntimeError(f"open3d numbered geometry {geometry}, expected {len(instance_of_geometry)}")
            instance_of_geometry.append(instance.instance_id)
            offsets.append(count)
            albedo.append(np.clip(instance.albedo[None, :] * mesh.shade[:, None], 0, 255))
            count += len(mesh.triangles)
        self._offsets = np.array(offsets + [count], dtype=np.int64)
        self._albedo = np.concatenate(albedo)  # (T_total, 3) per-triangle colour
        self._instance_of_geometry = np.array(instance_of_geometry, dtype=np.int32)
        self._class_of_instance = np.zeros(max(i.instance_id for i in instances) + 1, dtype=np.int32)
        for instance in instances:
            self._class_of_instance[instance.instance_id] = instance.class_id
        self._textured = np.array([i.class_name in ("floor", "wall") for i in instances])

    def set_albedo(self, instance_id: int, rgb: np.ndarray) -> None:
        """Repaint an instance with base colour ``rgb`` (3,) (its parts keep their relative shades)."""
        rgb = np.asarray(rgb, dtype=np.float64)
        if rgb.shape != (3,):
            raise ValueError(f"rgb must have shape (3,), got {rgb.shape}")
        matches = np.nonzero(self._instance_of_geometry == instance_id)[0]
        if not len(matches):
            raise KeyError(f"no instance {instance_id} in this scene")
        k = int(matches[0])
        shade = self.instances[k].mesh.shade
        self._albedo[self._offsets[k]:self._offsets[k + 1]] = np.clip(rgb[None, :] * shade[:, None], 0, 255)

    def instance_ids(self, hits: dict) -> np.ndarray:
        """Instance id per ray of ``cast``'s result (int32, 0 where nothing was hit)."""
        hit = hits["geometry"] >= 0
        return np.where(hit, self._instance_of_geometry[np.where(hit, hits["geometry"], 0)], 0).astype(np.int32)

    def cast(self, origins: np.ndarray, directions: np.ndarray) -> dict:
        """Cast rays (..., 3) -> dict of t (inf on miss), geometry (-1 on miss), primitive, normal (unit, facing
        the ray)."""
        rays = np.concatenate([origins, directions], axis=-1).astype(np.float32)
        hits = self._scene.cast_rays(self._o3d.core.Tensor(rays))
        t = hits["t_hit"].numpy().astype(np.float64)
        geometry = hits["geometry_ids"].numpy().astype(np.int64)
        geometry[~np.isfinite(t)] = -1
        normal = hits["primitive_normals"].numpy().astype(np.float64)
        # Surfaces are two-sided: turn every normal towards the viewer.
        flip = np.sum(normal * directions, axis=-1, keepdims=True) > 0
        normal = np.where(flip, -normal, normal)
        return {"t": t, "geometry": geometry, "primitive": hits["primitive_ids"].numpy().astype(np.int64),
                "normal": normal}

    def shade(self, hits: dict, origins: np.ndarray, directions: np.ndarray, light: np.ndarray,
              background: np.ndarray) -> np.ndarray:
        """Lambertian colour (..., 3) uint8: ambient + a directional ``light`` + a headlight; ``background``
        (3,) or (..., 3) where nothing was hit."""
        hit = hits["geometry"] >= 0
        geometry = np.where(hit, hits["geometry"], 0)
        albedo = self._albedo[self._offsets[geometry] + np.where(hit, hits["primitive"], 0)]
        unit = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
        diffuse = np.clip(np.sum(hits["normal"] * light, axis=-1), 0, None)
        head = np.clip(-np.sum(hits["normal"] * unit, axis=-1), 0, None)
        intensity = 0.3 + 0.45 * diffuse + 0.35 * head
        points = origins + directions * np.where(hit, hits["t"], 0)[..., None]
        textured = self._textured[geometry] & hit
        intensity = intensity * np.where(textured, 1.0 - 0.12 * checker(points, 0.5), 1.0)
        colour = albedo * intensity[..., None]
        colour = np.where(hit[..., None], colour, np.broadcast_to(background, colour.shape))
        return np.clip(np.round(colour), 0, 255).astype(np.uint8)

    def render(self, intrinsics: CameraIntrinsics, pose: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """rgb (H, W, 3) uint8, depth (H, W) float32 metres (0 = nothing hit), class and instance ids
        (H, W) int32 (0 = nothing hit) seen from ``pose`` (T_world_camera)."""
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (4, 4):
            raise ValueError(f"pose must be (4, 4), got {pose.shape}")
        directions = pixel_rays(intrinsics) @ pose[:3, :3].T
        origins = np.broadcast_to(pose[:3, 3], directions.shape)
        hits = self.cast(origins, directions)
        hit = hits["geometry"] >= 0
        light = np.array([0.3, 0.2, 1.0]) / np.linalg.norm([0.3, 0.2, 1.0])
        rgb = self.shade(hits, origins, directions, light, background=np.zeros(3))
        depth = np.where(hit, hits["t"], 0.0).astype(np.float32)
        instance_ids = self.instance_ids(hits)
        return rgb, depth, self._class_of_instance[instance_ids], instance_ids


def sample_surface(mesh: Mesh, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points uniformly on the mesh's surface -> points (count, 3) and their triangle indices (meshes'
    triangle normals, from ``Mesh.triangle_normals``, face outwards)."""
    areas = mesh.triangle_areas()
    triangles = rng.choice(len(areas), size=count, p=areas / areas.sum())
    r1, r2 = rng.random(count), rng.random(count)
    # Uniform barycentric coordinates via the square-root trick.
    s = np.sqrt(r1)
    w0, w1, w2 = 1 - s, s * (1 - r2), s * r2
    a, b, c = (mesh.vertices[mesh.triangles[triangles, k]] for k in range(3))
    return w0[:, None] * a + w1[:, None] * b + w2[:, None] * c, triangles


class SyntheticSequence(IndexedSequence):
    """A camera loop through a synthetic furnished room, with per-pixel ground truth.

    Args:
        num_frames: frames on one closed loop.
        width, height: image size; the focal length is 260 px at 320 px wide and scales with ``width``
            (about 63 degrees horizontal field of view).
        seed: drives layout, classes, colours and camera path.
        num_objects: furniture count (3..12; always a table with a mug on it and a chair).
        fps: nominal rate; frame k is stamped k / fps.
        ceiling: close the room with a ceiling.
    """

    def __init__(self, num_frames: int = 60, width: int = 320, height: int = 240, seed: int = 0,
                 num_objects: int = 10, fps: float = 10.0, ceiling: bool = False) -> None:
        if num_frames < 1:
            raise ValueError(f"num_frames must be positive, got {num_frames}")
        if width < 8 or height < 8:
            raise ValueError(f"image must be at least 8x8, got {width}x{height}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        f = DEFAULT_INTRINSICS.fx * width / DEFAULT_INTRINSICS.width
        self.intrinsics = CameraIntrinsics(f, f, (width - 1) / 2, (height - 1) / 2, width, height)
        self.name = f"synthetic_room_seed{seed}"
        self.seed = seed
        self.instances = build_room(seed, num_objects, ceiling)
        self.poses = camera_loop(num_frames, seed)
        self._fps = float(fps)
        self._stamps = np.arange(num_frames, dtype=np.float64) / self._fps
        self._renderer = SceneRenderer(self.instances)
        self._metadata = SceneMetadata(
            class_names=CLASS_NAMES,
            instance_classes={i.instance_id: i.class_id for i in self.instances},
            instance_colours={i.instance_id: i.colour_name for i in self.instances},
            colour_rgb=dict(COLOURS))
        self._last: Optional[tuple[int, RGBDFrame, FrameGroundTruth]] = None

    @property
    def metadata(self) -> SceneMetadata:
        return self._metadata

    @property
    def renderer(self) -> SceneRenderer:
        return self._renderer

    def render(self, position: int) -> tuple[RGBDFrame, FrameGroundTruth]:
        """Frame and labels of frame ``position`` (the last one is cached: frame then labels costs one render)."""
        position = self.resolve_index(position)
        if self._last is None or self._last[0] != position:
            pose = self.poses[position]
            rgb, depth, class_ids, instance_ids = self._renderer.render(self.intrinsics, pose)
            frame = RGBDFrame(stamp=float(self._stamps[position]), rgb=rgb, intrinsics=self.intrinsics,
                              depth=depth, pose=pose.copy())
            self._last = (position, frame, FrameGroundTruth(class_ids, instance_ids))
        return self._last[1], self._last[2]

    def load_frame(self, position: int) -> RGBDFrame:
        return self.render(position)[0]

    def ground_truth(self, index: int) -> FrameGroundTruth:
        return self.render(index)[1]

    def ground_truth_cloud(self, points_per_m2: float = 1000.0, include_room: bool = True, seed: int = 0,
                           observed_only: bool = False) -> LabeledCloud:
        """Points sampled uniformly on every instance's surface (at least 20 per instance), with the instance's
        albedo, class and instance id. Deterministic given ``seed``.

        ``observed_only`` keeps only points that some frame of the sequence sees (the fair reference for a
        reconstruction's completeness: undersides and hidden faces are dropped).
        """
        if not points_per_m2 > 0:
            raise ValueError(f"points_per_m2 must be positive, got {points_per_m2}")
        rng = np.random.default_rng(seed)
        parts = []
        for instance in self.instances:
            if not include_room and instance.class_name in ("floor", "wall", "ceiling"):
                continue
            count = max(20, int(round(instance.mesh.triangle_areas().sum() * points_per_m2)))
            points, triangles = sample_surface(instance.mesh, count, rng)
            colours = np.clip(instance.albedo[None] * instance.mesh.shade[triangles, None], 0, 255)
            parts.append((points, colours, np.full(count, instance.class_id), np.full(count, instance.instance_id),
                          instance.mesh.triangle_normals()[triangles]))
        cloud = LabeledCloud(points=np.concatenate([p[0] for p in parts]).astype(np.float32),
                             colours=np.round(np.concatenate([p[1] for p in parts])).astype(np.uint8),
                             class_ids=np.concatenate([p[2] for p in parts]).astype(np.int32),
                             instance_ids=np.concatenate([p[3] for p in parts]).astype(np.int32))
        if observed_only:
            keep = self.observed_mask(cloud.points, np.concatenate([p[4] for p in parts]))
            cloud = LabeledCloud(cloud.points[keep], cloud.colours[keep], cloud.class_ids[keep],
                                 cloud.instance_ids[keep])
        return cloud

    def observed_mask(self, points: np.ndarray, normals: Optional[np.ndarray] = None,
                      tolerance: float = 0.01) -> np.ndarray:
        """(N,) bool: which world points (N, 3) lie inside some frame's view, unoccluded (the first surface
        along the ray from the camera is within ``tolerance`` metres of the point) and, when outward
        ``normals`` (N, 3) are given, facing that camera (this drops faces that touch another surface, such as
        the bottom of a box on the floor, which occlusion alone cannot tell apart)."""
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"points must be (N, 3), got {points.shape}")
        if normals is not None and np.shape(normals) != points.shape:
            raise ValueError(f"normals must have the shape of points {points.shape}, got {np.shape(normals)}")
        K = self.intrinsics
        seen = np.zeros(len(points), dtype=bool)
        for pose in self.poses:
            camera = (points - pose[:3, 3]) @ pose[:3, :3]
            z = camera[:, 2]
            u = K.fx * camera[:, 0] / np.maximum(z, 1e-9) + K.cx
            v = K.fy * camera[:, 1] / np.maximum(z, 1e-9) + K.cy
            candidates = ~seen & (z > 0.05) & (u > -0.5) & (u < K.width - 0.5) & (v > -0.5) & (v < K.height - 0.5)
            if normals is not None:
                candidates &= np.sum(normals * (pose[:3, 3] - points), axis=1) > 0
            inside = np.nonzero(candidates)[0]
            if not len(inside):
                continue
            directions = points[inside] - pose[:3, 3]  # t = 1 at the point itself
            distance = np.linalg.norm(directions, axis=1)
            hits = self._renderer.cast(np.broadcast_to(pose[:3, 3], directions.shape), directions)
            seen[inside] = hits["t"] >= 1.0 - tolerance / distance
        return seen
