"""SegmentationPipeline on synthetic keyframes: 2D-3D association, drops and stats, RSR, descriptors."""

import numpy as np
import pytest
import torch

from ov_mapping.core.types import CameraIntrinsics, Keyframe
from ov_mapping.models.clip import ClipModel, build_clip_from_config
from ov_mapping.models.dino import DinoModel, build_dino
from ov_mapping.segmentation.crops import region_crops
from ov_mapping.segmentation.descriptor import DescriptorLayout, DescriptorPart
from ov_mapping.segmentation.mask_sources import Mask, make_mask_source
from ov_mapping.segmentation.pipeline import SegmentationConfig, SegmentationPipeline
from ov_mapping.segmentation.region_ranking import label_grid, rank_region_labels

H, W = 96, 128
RED_BOX = (slice(20, 60), slice(16, 56))  # image rows, cols (even bounds: whole pointmap pixels)
BLUE_BOX = (slice(30, 80), slice(76, 116))
DEPTH = {"wall": 3.0, "red": 1.5, "blue": 2.0}
TINY_CLIP = {
    "embed_dim": 24,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


class ColourClip:
    """A stand-in CLIP whose image embedding is the crop's mean colour direction: semantics tests can check labels."""

    embed_dim = 3
    name = "colour-stub"
    WORDS = {"red box": [1.0, 0.0, 0.0], "blue box": [0.0, 0.0, 1.0], "wall": [0.0, 1.0, 0.0]}

    def encode_images(self, images):
        means = np.array([img.reshape(-1, 3).mean(axis=0) for img in images], np.float32).reshape(-1, 3)
        # Redness, greyness, blueness: grey pixels score on the middle axis.
        feats = np.stack([means[:, 0] - means[:, 2], 255 - np.abs(means[:, 0] - means[:, 2]) * 2,
                          means[:, 2] - means[:, 0]], axis=1).clip(min=0)
        return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-9)

    def encode_text(self, texts):
        return np.array([self.WORDS[t] for t in texts], np.float32).reshape(-1, 3)


def synthetic_keyframe(rgb=None, pointmap=None, feature_map=None, flat=False):
    """Grey wall at 3 m, a red box at 1.5 m and a blue box at 2 m (mild sensor noise); pointmap at half resolution."""
    if rgb is None:
        clean = np.full((H, W, 3), 128, np.int64)
        clean[RED_BOX] = (210, 30, 30)
        clean[BLUE_BOX] = (30, 40, 200)
        rgb = np.clip(clean + np.random.default_rng(0).integers(-6, 7, clean.shape), 0, 255).astype(np.uint8)
    intr = CameraIntrinsics(100.0, 100.0, W / 2, H / 2, W, H)
    if pointmap is None:
        depth = np.full((H, W), DEPTH["wall"], np.float32)
        if not flat:
            depth[RED_BOX], depth[BLUE_BOX] = DEPTH["red"], DEPTH["blue"]
        v, u = np.mgrid[0:H, 0:W].astype(np.float32)
        full = np.stack([(u - intr.cx) / intr.fx * depth, (v - intr.cy) / intr.fy * depth, depth], axis=2)
        pointmap = full[::2, ::2].copy()
    return Keyframe(keyframe_id=7, stamp=1.0, rgb=rgb, intrinsics=intr, pose=np.eye(4), pointmap=pointmap,
                    confidence=np.ones(pointmap.shape[:2], np.float32), feature_map=feature_map)


def graph_source():
    return make_mask_source("graph", min_size=200, max_side=128)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    torch.save(build_clip_from_config(TINY_CLIP).state_dict(), root / "clip.pt")
    dino_arch = dict(embed_dim=16, depth=1, num_heads=2, img_size=32)
    torch.save(build_dino(**dino_arch).state_dict(), root / "dino.pth")
    clip = ClipModel.from_checkpoint(root / "clip.pt", config=TINY_CLIP)
    dino = DinoModel.from_checkpoint(root / "dino.pth", input_short_side=32, **dino_arch)
    return clip, dino


def box_masks():
    """Ground-truth masks of the wall, the red box and the blue box."""
    red, blue = np.zeros((H, W), bool), np.zeros((H, W), bool)
    red[RED_BOX], blue[BLUE_BOX] = True, True
    return [Mask(~red & ~blue), Mask(red), Mask(blue)]


def segment_on(segments, box):
    """The segment whose grid mask overlaps the image box (a half-resolution slice pair) most."""
    rows, cols = slice(box[0].start // 2, box[0].stop // 2), slice(box[1].start // 2, box[1].stop // 2)
    return max(segments, key=lambda s: s.mask[rows, cols].sum())


def test_segments_carry_the_points_of_their_box(tiny_models):
    clip, dino = tiny_models
    pipeline = SegmentationPipeline(graph_source(), clip, dino)
    out = pipeline.process(synthetic_keyframe())
    assert out.mask_source == "graph" and out.keyframe.keyframe_id == 7
    assert len(out.segments) == 3
    red, blue = segment_on(out.segments, RED_BOX), segment_on(out.segments, BLUE_BOX)
    assert red is not blue
    np.testing.assert_allclose(red.points[:, 2], DEPTH["red"])
    np.testing.assert_allclose(blue.points[:, 2], DEPTH["blue"])
    assert len(red.points) == 20 * 20 and len(blue.points) == 25 * 20
    assert red.mask.shape == (H // 2, W // 2)
    for seg in out.segments:
        assert seg.descriptor.shape == (pipeline.layout.dim,) == (24 + 16,)
        np.testing.assert_allclose(np.linalg.norm(seg.descriptor), 1.0, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(seg.clip_embedding), 1.0, atol=1e-5)
        # The CLIP slice is the CLIP embedding scaled: still comparable with text embeddings.
        clip_part = seg.descriptor[pipeline.layout.slices["clip"]]
        np.testing.assert_allclose(clip_part / np.linalg.norm(clip_part), seg.clip_embedding, atol=1e-5)
    stats = pipeline.last_stats
    assert (stats.masks_in, stats.segments_out, stats.dropped_no_3d) == (3, 3, 0)
    assert stats.masks_in == stats.dropped_small + stats.dropped_background + stats.dropped_no_3d + stats.segments_out


def test_region_semantic_ranking_labels_the_boxes():
    pipeline = SegmentationPipeline(graph_source(), ColourClip(), vocabulary=["red box", "blue box", "wall"],
                                    config=SegmentationConfig(rsr_window_fractions=(0.25,)))
    segments = pipeline.process(synthetic_keyframe()).segments
    red, blue = segment_on(segments, RED_BOX), segment_on(segments, BLUE_BOX)
    assert red.label == "red box" and blue.label == "blue box"
    assert 0.5 < red.label_score <= 1.0
    wall = [s for s in segments if s is not red and s is not blue][0]
    assert wall.label == "wall"
    np.testing.assert_allclose(wall.points[:, 2], DEPTH["wall"])


def test_rsr_takes_the_majority_of_pixel_labels():
    labels = np.array([[0, 0, 1, 1], [0, 2, 1, 1], [-1, -1, 1, 1], [-1, -1, 1, 0]])
    masks = np.zeros((3, 8, 8), bool)
    masks[0, :4, :4] = True  # cells 0, 0, 0, 2 -> class 0 with 3/4
    masks[1, :, 4:] = True  # 7 of 8 cells are class 1
    masks[2, 4:, :4] = True  # unlabelled
    classes, shares = rank_region_labels(labels, masks, 3)
    assert classes.tolist() == [0, 1, -1]
    np.testing.assert_allclose(shares, [0.75, 7 / 8, 0.0])
    grid = label_grid(np.array([[[1.0, 0.1], [0.0, 0.0]]]), np.eye(2, dtype=np.float32))
    assert grid.tolist() == [[0, -1]]


def test_uniform_and_empty_images_give_no_segments(tiny_models):
    clip, _ = tiny_models
    pipeline = SegmentationPipeline(graph_source(), clip)
    out = pipeline.process(synthetic_keyframe(rgb=np.full((H, W, 3), 90, np.uint8), flat=True))
    assert out.segments == [] and pipeline.last_stats.dropped_background == 1
    empty = Keyframe(0, 0.0, np.zeros((0, 0, 3), np.uint8), CameraIntrinsics(1, 1, 0, 0, 1, 1), np.eye(4),
                     np.zeros((0, 0, 3), np.float32), np.zeros((0, 0), np.float32))
    assert pipeline.process(empty).segments == [] and pipeline.last_stats.masks_in == 0
    assert pipeline.total_stats.keyframes == 2


def test_nan_points_drop_segments_and_are_counted(tiny_models):
    clip, _ = tiny_models
    pipeline = SegmentationPipeline(graph_source(), clip)
    keyframe = synthetic_keyframe()
    keyframe.pointmap[BLUE_BOX[0].start // 2:BLUE_BOX[0].stop // 2, BLUE_BOX[1].start // 2:BLUE_BOX[1].stop // 2] = np.nan
    out = pipeline.process(keyframe, masks=box_masks())
    assert pipeline.last_stats.dropped_no_3d == 1 and len(out.segments) == 2
    assert all(np.isfinite(s.points).all() for s in out.segments)
    assert not any(np.allclose(s.points[:, 2], DEPTH["blue"]) for s in out.segments)
    all_nan = synthetic_keyframe(pointmap=np.full((H // 2, W // 2, 3), np.nan, np.float32))
    assert pipeline.process(all_nan, masks=box_masks()).segments == []
    assert pipeline.last_stats.dropped_no_3d == 3
    assert pipeline.total_stats.dropped_no_3d == 4
    assert pipeline.process(all_nan).segments == []  # masks from the graph source, colour edges only
    stats = pipeline.last_stats
    assert stats.masks_in >= 3 and stats.dropped_no_3d == stats.masks_in - stats.dropped_small - stats.dropped_background


def test_small_masks_and_given_masks(tiny_models):
    clip, _ = tiny_models
    pipeline = SegmentationPipeline(graph_source(), clip, config=SegmentationConfig(min_mask_area=50))
    tiny, red = np.zeros((H, W), bool), np.zeros((H, W), bool)
    tiny[0:4, 0:4] = True
    red[RED_BOX] = True
    out = pipeline.process(synthetic_keyframe(), masks=[Mask(tiny, 0.9), Mask(red, 0.8)])
    assert pipeline.last_stats.dropped_small == 1 and len(out.segments) == 1 and out.mask_source == "upstream"
    assert out.segments[0].score == pytest.approx(0.8)
    given = np.zeros((2, clip.embed_dim), np.float32)
    given[:, 0] = [5.0, 2.0]  # upstream embeddings are used (normalised), not recomputed
    out = pipeline.process(synthetic_keyframe(), masks=[Mask(tiny, 0.9), Mask(red, 0.8)], clip_embeddings=given)
    np.testing.assert_allclose(out.segments[0].clip_embedding, np.eye(clip.embed_dim)[0], atol=1e-6)
    with pytest.raises(ValueError, match="clip_embeddings must be"):
        pipeline.process(synthetic_keyframe(), masks=[Mask(red)], clip_embeddings=given)
    with pytest.raises(ValueError, match="mask 0"):
        pipeline.process(synthetic_keyframe(), masks=[Mask(np.zeros((5, 5), bool))])


def test_clip3r_feature_map_is_pooled_into_the_descriptor(tiny_models):
    clip, _ = tiny_models
    config = SegmentationConfig(clip3r_dim=8)
    pipeline = SegmentationPipeline(graph_source(), clip, config=config)
    features = np.zeros((8, 12, 16), np.float32)
    features[0] = 1.0
    features[1, 2:8, 2:7] = 5.0  # roughly where the red box lies
    out = pipeline.process(synthetic_keyframe(feature_map=features))
    red = segment_on(out.segments, RED_BOX)
    part = red.descriptor[pipeline.layout.slices["clip3r"]]
    assert part.shape == (8,) and part[1] > part[0] > 0
    with pytest.raises(ValueError, match="clip3r_dim"):
        pipeline.process(synthetic_keyframe(feature_map=np.zeros((5, 12, 16), np.float32)))


def test_descriptor_dot_product_is_weighted_part_cosines():
    layout = DescriptorLayout([DescriptorPart("a", 2, 3.0), DescriptorPart("b", 2, 1.0)])
    x = layout.fuse({"a": np.array([[1.0, 0.0], [1.0, 0.0]]), "b": np.array([[0.0, 2.0], [0.0, -1.0]])}, 2)
    assert x[0] @ x[1] == pytest.approx(0.75 * 1.0 + 0.25 * -1.0)
    missing = layout.fuse({"a": np.array([[3.0, 4.0]]), "b": None}, 1)
    np.testing.assert_allclose(missing[0], [0.6, 0.8, 0.0, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="unknown descriptor parts"):
        layout.fuse({"c": None}, 1)


def test_region_crops_are_square_and_masked():
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[10:20, 5:45] = 255
    mask = np.zeros((40, 60), bool)
    mask[10:20, 5:45] = True
    crops = region_crops(rgb, mask, context_scale=2.0, tight_scale=1.0)
    assert crops["tight"].shape == (40, 40, 3) and crops["context"].shape == (80, 80, 3)
    assert (crops["masked"][15:25] == 255).all()  # the region itself is kept
    assert (crops["masked"][0] == (123, 117, 104)).all()  # outside the mask: CLIP's mean colour
    assert region_crops(rgb, np.zeros((40, 60), bool)) is None
