"""Labelled object crops for training and testing image-text models on the synthetic vocabulary.

Two sources:

- ``render_object_views``: single objects of any class and colour, each seen from many random viewpoints under
  random light, size and shade jitter, over random backgrounds (flat, gradient, or standing on a random floor),
  cropped to the object. An endless, seeded supply of varied (image, class, colour) samples.
- ``crop_instances``: crops of the instances visible in a labelled frame (e.g. a ``SyntheticSequence`` frame),
  with their real context and occlusions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence as Seq

import numpy as np
from PIL import Image

from ov_mapping.core.types import CameraIntrinsics
from ov_mapping.datasets.base import SceneMetadata
from ov_mapping.datasets.synthetic import SceneInstance, SceneRenderer, look_at, pixel_rays
from ov_mapping.datasets.synthetic_assets import COLOURS, OBJECT_CLASSES, OBJECT_COLOURS, build_object, make_rectangle


@dataclass
class ObjectView:
    """One crop: image (S, S, 3) uint8, mask (S, S) bool of the object's pixels, its class and colour names."""

    image: np.ndarray
    mask: np.ndarray
    class_name: str
    colour_name: str

    @property
    def caption(self) -> str:
        words = f"{self.colour_name} {self.class_name}"
        return f"an {words}" if words[0] in "aeiou" else f"a {words}"


def square_crop_box(mask: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    """(top, left, side, side) of a square around the mask's bounding box, grown by ``margin`` of its size on each
    side; it may extend past the image (``crop_square`` pads)."""
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        raise ValueError("cannot crop around an empty mask")
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    side = int(np.ceil(max(bottom - top, right - left) * (1 + 2 * margin)))
    centre_r, centre_c = (top + bottom) / 2, (left + right) / 2
    return int(round(centre_r - side / 2)), int(round(centre_c - side / 2)), side, side


def crop_square(image: np.ndarray, box: tuple[int, int, int, int], size: int, fill: np.ndarray) -> np.ndarray:
    """Cut ``box`` (top, left, height, width) out of ``image`` (H, W[, C]), padding with ``fill`` outside it, and
    resize to ``size`` x ``size`` (bilinear for colour, nearest for masks)."""
    top, left, height, width = box
    out = np.empty((height, width) + image.shape[2:], dtype=image.dtype)
    out[...] = fill
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + height, image.shape[0]), min(left + width, image.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0 - top:r1 - top, c0 - left:c1 - left] = image[r0:r1, c0:c1]
    if image.dtype == bool:
        return np.asarray(Image.fromarray(out).resize((size, size), Image.NEAREST), dtype=bool)
    return np.asarray(Image.fromarray(out).resize((size, size), Image.BILINEAR))


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random flat or vertically graded backdrop (H, W, 3) float64."""
    top, bottom = rng.uniform(0, 255, size=3), rng.uniform(0, 255, size=3)
    if rng.random() < 0.5:
        bottom = top
    alpha = np.linspace(0, 1, height)[:, None, None]
    return np.broadcast_to((1 - alpha) * top + alpha * bottom, (height, width, 3))


def render_object_views(num_views: int, size: int = 64, seed: int = 0, classes: Optional[Seq[str]] = None,
                        colours: Optional[Seq[str]] = None, views_per_object: int = 8, margin: float = 0.15,
                        render_size: Optional[int] = None) -> Iterator[ObjectView]:
    """Yield ``num_views`` crops of single synthetic objects.

    Every ``views_per_object`` views a new object is made: a random class of ``classes`` (default: all
    ``OBJECT_CLASSES``) and colour of ``colours`` (default: all ``OBJECT_COLOURS``), with random proportions
    (+-15 %) and a shade of its colour (brightness and per-channel jitter). Each view picks a random azimuth,
    elevation (5 to 70 degrees), distance (object fills 35 to 90 % of the view), light direction and background;
    half the objects stand on a floor of random colour. Deterministic given the arguments.

    Args:
        size: side of the square crops in pixels.
        render_size: side of the rendered images before cropping (default ``max(2 * size, 96)``).
    """
    classes = list(OBJECT_CLASSES if classes is None else classes)
    colours = list(OBJECT_COLOURS if colours is None else colours)
    unknown = [c for c in classes if c not in OBJECT_CLASSES] + [c for c in colours if c not in COLOURS]
    if unknown:
        raise ValueError(f"unknown classes or colours {unknown}; classes: {OBJECT_CLASSES}, colours: {list(COLOURS)}")
    if not classes or not colours:
        raise ValueError("classes and colours must not be empty")
    if num_views < 0 or size < 8 or views_per_object < 1:
        raise ValueError(f"need num_views >= 0, size >= 8 and views_per_object >= 1, got {num_views}, {size}, "
                         f"{views_per_object}")
    side = render_size or max(2 * size, 96)
    focal = side * 0.9
    intrinsics = CameraIntrinsics(focal, focal, (side - 1) / 2, (side - 1) / 2, side, side)
    rays = pixel_rays(intrinsics)
    half_fov = np.arctan((side / 2) / focal)
    rng = np.random.default_rng(seed)
    made = 0
    while made < num_views:
        class_name = classes[int(rng.integers(len(classes)))]
        colour_name = colours[int(rng.integers(len(colours)))]
        mesh = build_object(class_name, rng, size_jitter=0.15)
        lo, hi = mesh.bounds
        centre = (lo + hi) / 2
        radius = float(np.linalg.norm(hi - lo) / 2)
        instances = [SceneInstance(1, class_name, colour_name, mesh)]
        on_floor = rng.random() < 0.5
        if on_floor:
            floor = make_rectangle((-20.0, -20.0, 0.0), (40.0, 0.0, 0.0), (0.0, 40.0, 0.0))
            instances.append(SceneInstance(2, "floor", "tan", floor))
        renderer = SceneRenderer(instances)
        # Jitter the colour so that a class of "red" things is not one exact RGB value.
        tint = np.clip(np.array(COLOURS[colour_name]) * rng.uniform(0.8, 1.15) + rng.uniform(-15, 15, 3), 0, 255)
        renderer.set_albedo(1, tint)
        if on_floor:
            renderer.set_albedo(2, rng.uniform(40, 230, size=3))
        for _ in range(min(views_per_object, num_views - made)):
            azimuth = rng.uniform(0, 2 * np.pi)
            elevation = np.radians(rng.uniform(5, 70))
            distance = radius / np.sin(half_fov * rng.uniform(0.35, 0.9))
            eye = centre + distance * np.array([np.cos(elevation) * np.cos(azimuth),
                                                np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
            pose = look_at(eye, centre + rng.normal(0, 0.1 * radius, 3))
            directions = rays @ pose[:3, :3].T
            origins = np.broadcast_to(pose[:3, 3], directions.shape)
            hits = renderer.cast(origins, directions)
            light = rng.normal(size=3) + [0, 0, 1.5]
            image = renderer.shade(hits, origins, directions, light / np.linalg.norm(light),
                                   background=_background(rng, side, side))
            mask = renderer.instance_ids(hits) == 1
            if mask.sum() < 16:  # the jittered gaze missed the object: skip this view
                continue
            box = square_crop_box(mask, margin * rng.uniform(0.5, 1.5))
            yield ObjectView(crop_square(image, box, size, fill=image[0, 0]),
                             crop_square(mask, box, size, fill=np.array(False)), class_name, colour_name)
            made += 1


def crop_instances(rgb: np.ndarray, instance_ids: np.ndarray, metadata: SceneMetadata, size: int = 64,
                   min_pixels: int = 100, margin: float = 0.15, skip_classes: Seq[str] = ("void", "floor", "wall",
                                                                                       "ceiling")) -> list[ObjectView]:
    """Square crops of every instance with at least ``min_pixels`` pixels in a labelled frame.

    Args:
        rgb: (H, W, 3) uint8; instance_ids: (H, W) int32 (0 = none), e.g. ``SyntheticSequence.ground_truth``.
        metadata: names the instances' classes and colours.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if instance_ids.shape != rgb.shape[:2]:
        raise ValueError(f"instance_ids {instance_ids.shape} must match the image {rgb.shape[:2]}")
    views = []
    for instance in np.unique(instance_ids):
        if instance == 0 or metadata.class_of(int(instance)) in skip_classes:
            continue
        mask = instance_ids == instance
        if mask.sum() < min_pixels:
            continue
        box = square_crop_box(mask, margin)
        views.append(ObjectView(crop_square(rgb, box, size, fill=np.zeros(3, np.uint8)),
                                crop_square(mask, box, size, fill=np.array(False)),
                                metadata.class_of(int(instance)), metadata.instance_colours.get(int(instance), "")))
    return views

