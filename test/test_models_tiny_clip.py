"""The committed tiny CLIP (test/assets/tiny_clip, made by scripts/train_tiny_clip.py) loads through
ClipModel.from_checkpoint unchanged and knows the synthetic scene's words on the held-out seed-0 scene.

The accuracy floors sit well below what the committed model measures on these crops (the numbers beside each
floor; 24 object crops, 12 floor / wall regions) and far above chance, so they catch a broken loader,
preprocessing, tokenizer or checkpoint, not a prediction that flips on another CPU.
"""

from pathlib import Path

import numpy as np
import pytest

from ov_mapping.datasets.object_views import crop_instances
from ov_mapping.datasets.synthetic import SyntheticSequence
from ov_mapping.datasets.synthetic_assets import OBJECT_COLOURS
from ov_mapping.models.clip import ClipModel
from ov_mapping.segmentation.crops import region_crops

ASSET = Path(__file__).resolve().parent / "assets" / "tiny_clip"
FRAMES = (0, 3, 6, 9)  # of a 12-frame loop: every side of the room


@pytest.fixture(scope="module")
def clip():
    return ClipModel.from_checkpoint(ASSET / "tiny_clip.safetensors", config=ASSET / "tiny_clip_config.json")


@pytest.fixture(scope="module")
def scene():
    """Object crops and floor / wall regions of the held-out seed-0 scene (the model never saw it)."""
    sequence = SyntheticSequence(num_frames=12, seed=0)
    objects, rooms = [], []
    for index in FRAMES:
        frame, truth = sequence.render(index)
        objects += crop_instances(frame.rgb, truth.instance_ids, sequence.metadata, size=64)
        for instance in np.unique(truth.instance_ids):
            name = sequence.metadata.class_of(int(instance)) if instance else "void"
            mask = truth.instance_ids == instance
            if name in ("floor", "wall") and mask.sum() >= 2000:
                rooms.append((region_crops(frame.rgb, mask)["tight"], name))
    classes = sorted({v.class_name for v in objects}) + ["floor", "wall"]
    return objects, rooms, classes


def class_accuracy(clip, images, truth, labels):
    """Top-1 accuracy of ``images`` against the texts ``labels``; ``truth`` names each image's label."""
    predicted = np.argmax(clip.encode_images(images) @ clip.encode_text(labels).T, axis=1)
    return float(np.mean([labels[p] == t for p, t in zip(predicted, truth)]))


def test_loads_as_the_committed_architecture(clip):
    assert clip.embed_dim == 64 and clip.input_size == (64, 64)
    assert clip.encode_text(["a red chair"]).shape == (1, 64)


def test_zero_shot_object_classes(clip, scene):
    objects, _, classes = scene
    assert len(objects) >= 20 and len(classes) >= 10  # chance is 1 / len(classes) <= 0.1
    accuracy = class_accuracy(clip, [v.image for v in objects], [v.class_name for v in objects], classes)
    # Measured 0.75 (18 / 24); chance 1 / 12. 12 / 24 by chance has probability below 1e-7.
    assert accuracy >= 0.5, f"class accuracy {accuracy:.2f} (0.75 when committed, chance {1 / len(classes):.2f})"


def test_shuffled_class_names_fail(clip, scene):
    """Control: the same crops against the class names shifted by one must score far below the true labels."""
    objects, _, classes = scene
    shifted = classes[1:] + classes[:1]
    renamed = {a: b for a, b in zip(classes, shifted)}
    accuracy = class_accuracy(clip, [v.image for v in objects], [renamed[v.class_name] for v in objects], classes)
    assert accuracy <= 0.2, f"shuffled-label accuracy {accuracy:.2f} should be near zero (0.0 when committed)"


def test_zero_shot_colours(clip, scene):
    objects, _, _ = scene
    colours = list(OBJECT_COLOURS)
    accuracy = class_accuracy(clip, [v.image for v in objects], [v.colour_name for v in objects], colours)
    assert accuracy >= 0.75, f"colour accuracy {accuracy:.2f} (0.96 when committed, chance {1 / len(colours):.2f})"


def test_floor_and_wall_regions(clip, scene):
    _, rooms, classes = scene
    assert {name for _, name in rooms} == {"floor", "wall"}
    accuracy = class_accuracy(clip, [image for image, _ in rooms], [name for _, name in rooms], classes)
    assert accuracy >= 0.75, f"floor / wall accuracy {accuracy:.2f} (0.92 when committed)"


def test_colour_and_class_phrases_find_their_object(clip, scene):
    """Queries like "red chair": each crop's own phrase wins among the scene's objects' phrases."""
    objects, _, _ = scene
    phrases = [f"{v.colour_name} {v.class_name}" for v in objects]
    accuracy = class_accuracy(clip, [v.image for v in objects], phrases, sorted(set(phrases)))
    assert accuracy >= 0.8, f"phrase accuracy {accuracy:.2f} (1.0 when committed)"
