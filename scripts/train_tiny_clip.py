#!/usr/bin/env python3
"""Train a tiny open_clip CLIP on the synthetic scenes' vocabulary, for the project's semantic end-to-end test.

No pretrained CLIP can be downloaded here, and a randomly initialised one knows no words, so an honest semantic
test needs a model that has actually learnt the synthetic objects. This script trains one, on the CPU, in a few
minutes:

- architecture: a custom open_clip ``CLIP`` config (:data:`MODEL_CONFIG`): ViT vision tower on 64x64 images,
  causal text transformer with open_clip's BPE tokenizer; saved as fp16 safetensors plus the config JSON, so that
  ``ClipModel.from_checkpoint(checkpoint, config=config_json)`` loads it unchanged;
- data: single-object renders (``render_object_views``) for variety, and crops of real scene frames
  (``SyntheticSequence`` with seeds 1..N, never seed 0, the demo / test scene) made the way the segmentation
  pipeline makes them (``region_crops``: tight, masked, context), including floor and wall regions;
- captions: colour + class, class only and colour only, in several templates (the ones ``ClipModel`` ensembles at
  query time plus bare phrasings), so that "a red chair", "chair" and "red" all embed sensibly;
- loss: the symmetric CLIP contrastive loss; where a batch holds several texts that truly describe an image (two
  "chair" captions, or "red" and "red chair"), the one-hot target is spread evenly over them, which is the
  standard loss whenever every pair is unique.

Afterwards the saved checkpoint is loaded back through ``ClipModel`` and evaluated zero-shot on the held-out
seed-0 scene; the figures go to ``training_stats.json`` beside the checkpoint.

Run from the repository root:
    PYTHONPATH=. .venv/bin/python scripts/train_tiny_clip.py --out test/assets/tiny_clip
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from ov_mapping.datasets.object_views import crop_instances, render_object_views
from ov_mapping.datasets.synthetic import SyntheticSequence
from ov_mapping.datasets.synthetic_assets import COLOURS, OBJECT_CLASSES, OBJECT_COLOURS
from ov_mapping.models.clip import DEFAULT_TEMPLATES, ClipModel, build_clip_from_config, make_tokenizer
from ov_mapping.segmentation.crops import CLIP_MEAN_RGB, region_crops
from ov_mapping.segmentation.mask_embedding import MaskClipEmbedder

# The text tower's token embedding (49408 BPE tokens x text width) dominates the file size, hence the narrow text
# width; the captions use some 30 distinct words, which 32 channels separate easily. Patch 16 (a 4x4 grid) rather
# than 8: a step costs a third as much, and in the same time budget twice the steps at patch 16 scored as well on
# the held-out room as patch 8 did (55-58 % vs 56-61 % object accuracy at 20 training scenes).
MODEL_CONFIG: dict = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "patch_size": 16, "width": 128, "layers": 4, "head_width": 32, "mlp_ratio": 4.0},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2},
}
CHECKPOINT_NAME = "tiny_clip.safetensors"
CONFIG_NAME = "tiny_clip_config.json"
STATS_NAME = "training_stats.json"

ROOM_CLASSES = ("floor", "wall")
CLASSES: tuple[str, ...] = tuple(OBJECT_CLASSES) + ROOM_CLASSES
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
# ClipModel's query-time templates plus bare phrasings, so a text without a template ("red") is learnt too.
TRAIN_TEMPLATES: tuple[str, ...] = tuple(DEFAULT_TEMPLATES) + ("{}", "a {}", "a photo of a {}", "a {} object")
# How often a caption names colour and class, the class only, or the colour only.
CAPTION_KINDS = {"colour_class": 0.5, "class": 0.3, "colour": 0.2}
TEST_SCENE_SEED = 0


@dataclass
class LabelledImages:
    """images (N, S, S, 3) uint8; classes (N,) int64 into :data:`CLASSES`; colours (N,) int64 into
    :data:`COLOUR_NAMES`; sources (N,) int64: 0 object view, 1 scene crop."""

    images: np.ndarray
    classes: np.ndarray
    colours: np.ndarray
    sources: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 4 or self.images.shape[3] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be (N, S, S, 3) uint8, got {self.images.shape} {self.images.dtype}")
        if not len(self.classes) == len(self.colours) == len(self.sources) == n:
            raise ValueError("images, classes, colours and sources must have the same length")

    @staticmethod
    def concatenate(parts: Sequence["LabelledImages"]) -> "LabelledImages":
        return LabelledImages(*(np.concatenate([getattr(p, f) for p in parts])
                                for f in ("images", "classes", "colours", "sources")))


# ---------------------------------------------------------------- data


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """A square (s, s, 3) uint8 crop resized to (size, size, 3) the way ``ClipModel.preprocess`` resizes it
    (bicubic with antialiasing), so training sees the pixels inference sees."""
    if image.ndim != 3 or image.shape[0] != image.shape[1] or image.shape[2] != 3:
        raise ValueError(f"expected a square (s, s, 3) image, got {image.shape}")
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    return (x[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def mask_out(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` (S, S, 3) with pixels outside ``mask`` (S, S) set to CLIP's mean colour, like the pipeline's
    masked crop."""
    out = image.copy()
    out[~mask] = CLIP_MEAN_RGB
    return out


def collect_object_views(num_views: int, size: int, seed: int, views_per_object: int, masked_fraction: float
                         ) -> LabelledImages:
    """``num_views`` single-object renders; ``masked_fraction`` of them with the background blanked."""
    rng = np.random.default_rng([seed, 7])
    images, classes, colours = [], [], []
    views = render_object_views(num_views, size=size, seed=seed, views_per_object=views_per_object)
    for view in tqdm(views, total=num_views, desc="object views", unit="view"):
        image = mask_out(view.image, view.mask) if rng.random() < masked_fraction else view.image
        images.append(image)
        classes.append(CLASSES.index(view.class_name))
        colours.append(COLOUR_NAMES.index(view.colour_name))
    return LabelledImages(np.stack(images), np.array(classes), np.array(colours), np.zeros(len(images), np.int64))


def random_fragment(mask: np.ndarray, rng: np.random.Generator, min_pixels: int) -> np.ndarray | None:
    """Part of a large region (H, W) bool, cut by a random window, as a segmenter might return a piece of a
    floor or wall; None when the window misses it."""
    h, w = mask.shape
    side = int(rng.uniform(0.2, 0.6) * min(h, w))
    rows, cols = np.nonzero(mask)
    k = int(rng.integers(len(rows)))
    top, left = max(0, rows[k] - side // 2), max(0, cols[k] - side // 2)
    fragment = np.zeros_like(mask)
    fragment[top:top + side, left:left + side] = mask[top:top + side, left:left + side]
    return fragment if fragment.sum() >= min_pixels else None


def region_samples(rgb: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator,
                   context_fraction: float) -> list[np.ndarray]:
    """The pipeline's crops of one region (tight and masked always, context sometimes), resized to ``size``."""
    crops = region_crops(rgb, mask)
    names = ["tight", "masked"] + (["context"] if rng.random() < context_fraction else [])
    return [resize_square(crops[name], size) for name in names]


def collect_scene_crops(seeds: Iterable[int], frames_per_scene: int, size: int, min_pixels: int,
                        context_fraction: float, room_fragments: int) -> LabelledImages:
    """Crops of every object, floor and wall region seen in ``frames_per_scene`` frames of each scene.

    Odd seeds render at 320x240, even ones at 160x120, so the model sees both sharp and coarse crops.
    """
    seeds = list(seeds)
    if TEST_SCENE_SEED in seeds:
        raise ValueError(f"seed {TEST_SCENE_SEED} is the held-out test scene; train on other seeds")
    images, classes, colours = [], [], []
    progress = tqdm(total=len(seeds) * frames_per_scene, desc="scene crops", unit="frame")
    for seed in seeds:
        width, height = (320, 240) if seed % 2 else (160, 120)
        sequence = SyntheticSequence(num_frames=frames_per_scene, width=width, height=height, seed=seed)
        metadata = sequence.metadata
        rng = np.random.default_rng([seed, 11])
        for index in range(frames_per_scene):
            frame, truth = sequence.render(index)
            for instance in np.unique(truth.instance_ids):
                if instance == 0:
                    continue
                class_name = metadata.class_of(int(instance))
                if class_name not in CLASSES:
                    continue
                mask = truth.instance_ids == instance
                if mask.sum() < min_pixels:
                    continue
                regions = [mask]
                if class_name in ROOM_CLASSES:
                    regions += [f for f in (random_fragment(mask, rng, min_pixels) for _ in range(room_fragments))
                                if f is not None]
                for region in regions:
                    for crop in region_samples(frame.rgb, region, size, rng, context_fraction):
                        images.append(crop)
                        classes.append(CLASSES.index(class_name))
                        colours.append(COLOUR_NAMES.index(metadata.instance_colours[int(instance)]))
            progress.update()
    progress.close()
    return LabelledImages(np.stack(images), np.array(classes), np.array(colours), np.ones(len(images), np.int64))


# ---------------------------------------------------------------- captions


@dataclass
class CaptionTable:
    """Every caption the trainer can draw, tokenised once.

    tokens (P * T, L) int64: phrase p in template t is row p * T + t. phrase_class / phrase_colour (P,) int64:
    what each phrase names (-1: not named). full / class_only (C,) / colour_only (K,): phrase ids.
    """

    tokens: torch.Tensor
    num_templates: int
    phrase_class: np.ndarray
    phrase_colour: np.ndarray
    full: np.ndarray
    class_only: np.ndarray
    colour_only: np.ndarray


def build_caption_table(tokenizer, context_length: int) -> CaptionTable:
    """Phrases "<colour> <class>", "<class>" and "<colour>" in every :data:`TRAIN_TEMPLATES` template."""
    phrases, phrase_class, phrase_colour = [], [], []

    def add(text: str, c: int, k: int) -> int:
        phrases.append(text)
        phrase_class.append(c)
        phrase_colour.append(k)
        return len(phrases) - 1

    full = np.array([[add(f"{k} {c}", ci, ki) for ki, k in enumerate(COLOUR_NAMES)] for ci, c in enumerate(CLASSES)])
    class_only = np.array([add(c, ci, -1) for ci, c in enumerate(CLASSES)])
    colour_only = np.array([add(k, -1, ki) for ki, k in enumerate(COLOUR_NAMES)])
    texts = [template.format(p) for p in phrases for template in TRAIN_TEMPLATES]
    tokens = tokenizer(texts)
    longest = int((tokens != 0).sum(dim=1).max())
    if longest >= context_length:  # the tokenizer would silently cut the end-of-text token's position
        raise ValueError(f"a caption needs {longest} tokens; context_length {context_length} is too short")
    return CaptionTable(tokens, len(TRAIN_TEMPLATES), np.array(phrase_class), np.array(phrase_colour), full,
                        class_only, colour_only)


def sample_captions(table: CaptionTable, classes: np.ndarray, colours: np.ndarray, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray]:
    """One random caption per image: (B,) rows of ``table.tokens`` and (B,) phrase ids."""
    kinds = rng.choice(len(CAPTION_KINDS), size=len(classes), p=list(CAPTION_KINDS.values()))
    phrases = np.select([kinds == 0, kinds == 1],
                        [table.full[classes, colours], table.class_only[classes]], table.colour_only[colours])
    templates = rng.integers(table.num_templates, size=len(classes))
    return phrases * table.num_templates + templates, phrases


def caption_matches(table: CaptionTable, phrases: np.ndarray, classes: np.ndarray, colours: np.ndarray
                    ) -> torch.Tensor:
    """(B_images, B_texts) bool: text j describes image i (every attribute it names is the image's)."""
    pc, pk = table.phrase_class[phrases][None], table.phrase_colour[phrases][None]
    ok = ((pc == -1) | (pc == classes[:, None])) & ((pk == -1) | (pk == colours[:, None]))
    return torch.from_numpy(ok)


# ---------------------------------------------------------------- training


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random zoom (80-100 %), shift and horizontal flip of a (B, S, S, 3) uint8 batch, normalised with CLIP's
    statistics: (B, 3, S, S) float32. Colours are left alone: they are labels."""
    b = images.shape[0]
    x = images.permute(0, 3, 1, 2).float() / 255.0
    scale = 0.8 + 0.2 * torch.rand(b, generator=generator)
    shift = (torch.rand(b, 2, generator=generator) * 2 - 1) * (1 - scale)[:, None]
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
              matches: torch.Tensor) -> torch.Tensor:
    """Symmetric contrastive loss of (B, D) normalised features; ``matches`` (B, B) bool, true on the diagonal,
    spreads each target over every text (image) that truly describes (shows) the image (text)."""
    if not bool(matches.diagonal().all()):
        raise ValueError("every image must match its own caption")
    logits = logit_scale.exp() * image_features @ text_features.T
    target = matches.float()
    image_to_text = -(target / target.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
    text_to_image = -(target.T / target.T.sum(1, keepdim=True) * logits.T.log_softmax(1)).sum(1).mean()
    return (image_to_text + text_to_image) / 2


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only: gains, biases, embeddings and the logit scale keep theirs (the token
    embedding's unused rows would otherwise just decay)."""
    decay, keep = [], []
    for name, p in model.named_parameters():
        exempt = p.ndim < 2 or "embedding" in name or "logit_scale" in name or name.endswith("class_embedding")
        (keep if exempt else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak``, then cosine decay to zero."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def balanced_batch(by_class: Sequence[np.ndarray], batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """(B,) sample indices: a uniform class, then a uniform sample of it (``by_class``: each class's sample
    indices, none empty), so rare classes (mugs) count as much as floor and wall regions."""
    picks = rng.integers(len(by_class), size=batch_size)
    return np.array([by_class[p][rng.integers(len(by_class[p]))] for p in picks])


def train(model: torch.nn.Module, data: LabelledImages, table: CaptionTable, steps: int, batch_size: int,
          lr: float, weight_decay: float, seed: int) -> list[dict]:
    """Train ``model`` in place; returns the loss log (mean over every 25 steps)."""
    rng = np.random.default_rng([seed, 3])
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(parameter_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98), eps=1e-6)
    images = torch.from_numpy(data.images)
    by_class = [np.flatnonzero(data.classes == c) for c in range(len(CLASSES))]
    by_class = [idx for idx in by_class if len(idx)]
    warmup = max(1, steps // 10)
    model.train()
    log, window = [], []
    progress = tqdm(range(steps), desc="training", unit="step")
    for step in progress:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, lr, warmup)
        idx = balanced_batch(by_class, batch_size, rng)
        classes, colours = data.classes[idx], data.colours[idx]
        rows, phrases = sample_captions(table, classes, colours, rng)
        image_features = F.normalize(model.encode_image(augment(images[idx], generator)), dim=-1)
        text_features = F.normalize(model.encode_text(table.tokens[rows]), dim=-1)
        loss = clip_loss(image_features, text_features, model.logit_scale,
                         caption_matches(table, phrases, classes, colours))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():  # CLIP's cap on the temperature
            model.logit_scale.clamp_(0, math.log(100))
        window.append(loss.item())
        progress.set_postfix(loss=f"{window[-1]:.3f}")
        if len(window) == 25 or step == steps - 1:
            log.append({"step": step + 1, "loss": float(np.mean(window)), "lr": learning_rate(step, steps, lr, warmup),
                        "logit_scale": float(model.logit_scale.exp())})
            window = []
    model.eval()
    return log


def save_checkpoint(model: torch.nn.Module, out_dir: Path) -> tuple[Path, Path]:
    """fp16 safetensors state dict and the model config JSON; ``ClipModel.from_checkpoint`` casts back to fp32."""
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint, config = out_dir / CHECKPOINT_NAME, out_dir / CONFIG_NAME
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(checkpoint), metadata={"format": "pt", "what": "tiny CLIP trained on synthetic renders"})
    config.write_text(json.dumps(MODEL_CONFIG, indent=2) + "\n")
    return checkpoint, config


# ---------------------------------------------------------------- evaluation


def top1(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """(N,) index of the most similar text for each (N, D) image embedding; texts (T, D)."""
    return np.argmax(image_embeddings @ text_embeddings.T, axis=1)


def accuracy_report(predicted: np.ndarray, truth: np.ndarray, names: Sequence[str]) -> dict:
    """Overall and per-class top-1 accuracy of (N,) predictions into ``names``."""
    per_class = {names[c]: float(np.mean(predicted[truth == c] == c)) for c in np.unique(truth)}
    return {"accuracy": float(np.mean(predicted == truth)), "count": int(len(truth)), "per_class": per_class,
            "chance": 1.0 / len(names)}


def collect_eval_regions(seed: int, num_frames: int, width: int, height: int, min_pixels: int
                         ) -> tuple[list, list[tuple[np.ndarray, np.ndarray, list[str]]]]:
    """Held-out scene: ``crop_instances`` object crops (64 px), and per frame (rgb, masks (M, H, W) bool, class
    names) of every object, floor and wall region with at least ``min_pixels`` pixels."""
    sequence = SyntheticSequence(num_frames=num_frames, width=width, height=height, seed=seed)
    crops, regions = [], []
    for index in range(num_frames):
        frame, truth = sequence.render(index)
        crops += crop_instances(frame.rgb, truth.instance_ids, sequence.metadata, size=64, min_pixels=min_pixels)
        kept = [i for i in np.unique(truth.instance_ids) if i != 0
                and sequence.metadata.class_of(int(i)) in CLASSES and np.sum(truth.instance_ids == i) >= min_pixels]
        if kept:
            regions.append((frame.rgb, np.stack([truth.instance_ids == i for i in kept]),
                            [sequence.metadata.class_of(int(i)) for i in kept]))
    return crops, regions


def evaluate(clip: ClipModel, seed: int, num_frames: int, width: int, height: int, min_pixels: int = 100) -> dict:
    """Zero-shot accuracy on scene ``seed``, with ``ClipModel``'s text templates.

    - objects_scene_vocab: ``crop_instances`` crops, classes of this scene (floor and wall included);
    - objects_full_vocab: the same crops, every object class plus floor and wall;
    - regions_pipeline: every object / floor / wall region embedded as the segmentation pipeline does
      (``MaskClipEmbedder``: masked, tight and context crops), scene vocabulary;
    - colour: object crops against the 12 object colour words;
    - shuffled_labels: objects_scene_vocab with the class names cyclically shifted (a control that must fail).
    """
    crops, regions = collect_eval_regions(seed, num_frames, width, height, min_pixels)
    scene_classes = sorted({c.class_name for c in crops} | {n for r in regions for n in r[2]}, key=CLASSES.index)
    object_colours = list(OBJECT_COLOURS)
    crop_embeddings = clip.encode_images([c.image for c in crops])
    truth_scene = np.array([scene_classes.index(c.class_name) for c in crops])
    truth_full = np.array([CLASSES.index(c.class_name) for c in crops])
    scene_text = clip.encode_text(scene_classes)
    shifted = np.roll(np.arange(len(scene_classes)), 1)
    embedder = MaskClipEmbedder(clip)
    region_embeddings = np.concatenate([embedder.embed(rgb, masks) for rgb, masks, _ in regions])
    region_truth = np.array([scene_classes.index(n) for r in regions for n in r[2]])
    colour_truth = np.array([object_colours.index(c.colour_name) for c in crops])
    return {
        "scene_seed": seed, "frames": num_frames, "image_size": [width, height], "scene_classes": scene_classes,
        "objects_scene_vocab": accuracy_report(top1(crop_embeddings, scene_text), truth_scene, scene_classes),
        "objects_full_vocab": accuracy_report(top1(crop_embeddings, clip.encode_text(list(CLASSES))), truth_full,
                                              CLASSES),
        "regions_pipeline": accuracy_report(top1(region_embeddings, scene_text), region_truth, scene_classes),
        "colour": accuracy_report(top1(crop_embeddings, clip.encode_text(object_colours)), colour_truth,
                                  object_colours),
        "shuffled_labels": accuracy_report(top1(crop_embeddings, scene_text[shifted]), truth_scene, scene_classes),
    }


# ---------------------------------------------------------------- outputs


def format_readme(stats: dict) -> str:
    """The asset folder's README.md: what the model is, what it is not, its figures, how to rebuild it."""
    vision, text = stats["model_config"]["vision_cfg"], stats["model_config"]["text_cfg"]
    rows = []
    for resolution, result in stats["evaluation"].items():
        for key in ("objects_scene_vocab", "objects_full_vocab", "regions_pipeline", "colour", "shuffled_labels"):
            r = result[key]
            rows.append(f"| {resolution} | {key} | {r['accuracy']:.3f} | {r['count']} | {r['chance']:.3f} |")
    data = stats["data"]
    return f"""# Tiny CLIP for the semantic end-to-end test

**What it is.** A {stats['parameters'] / 1e6:.2f} M-parameter open_clip `CLIP` (ViT vision tower: {vision['image_size']} px
input, patch {vision['patch_size']}, width {vision['width']}, {vision['layers']} layers; text transformer: context
{text['context_length']}, width {text['width']}, {text['layers']} layers, open_clip's BPE tokenizer; embedding dim
{stats['model_config']['embed_dim']}), trained from scratch by `scripts/train_tiny_clip.py` on **synthetic renders only**:
{data['object_views']} single-object renders and {data['scene_crops']} crops of synthetic rooms with seeds
{stats['arguments']['train_seeds'][0]}..{stats['arguments']['train_seeds'][-1]}. The seed-{data['held_out_scene_seed']}
room (the demo / test scene) was held out.

**What it is for.** The project's semantic end-to-end test and demo on the synthetic room: it knows the synthetic
vocabulary only (the object classes, `floor`, `wall`, and the colour words) and nothing about real images.
**Never use it as a default for users**: real deployments load a real CLIP (`ClipModel.from_pretrained` /
`from_registry`).

## Files

- `{CHECKPOINT_NAME}`: fp16 state dict ({stats['checkpoint']['bytes']} bytes, sha256 `{stats['checkpoint']['sha256']}`).
- `{CONFIG_NAME}`: the open_clip model config (`embed_dim`, `vision_cfg`, `text_cfg`).
- `{STATS_NAME}`: training data counts, loss log, timings and the evaluation below.

Load it with the project's loader, unchanged:

```python
from ov_mapping.models.clip import ClipModel
clip = ClipModel.from_checkpoint("test/assets/tiny_clip/{CHECKPOINT_NAME}",
                                 config="test/assets/tiny_clip/{CONFIG_NAME}")
```

## Zero-shot accuracy on the held-out seed-{data['held_out_scene_seed']} room

{stats['arguments']['eval_frames']} frames of the room's camera loop; texts embedded by `ClipModel.encode_text` with its
default prompt templates. `objects_*`: `crop_instances` crops of every object instance (scene vocabulary includes
`floor` and `wall`; full vocabulary: every object class plus `floor` and `wall`). `regions_pipeline`: every object,
floor and wall region embedded as the segmentation pipeline does (`MaskClipEmbedder`), scene vocabulary. `colour`:
object crops against the 12 object colour words. `shuffled_labels`: a control, the class names shifted by one.

| frames | measure | accuracy | crops | chance |
|---|---|---|---|---|
{chr(10).join(rows)}

## Regenerate

From the repository root (about {sum(stats['timings_s'].values()) / 60:.0f} minutes on 2 CPU cores; deterministic for a
given seed and thread count):

```
{stats['command']}
```
"""


# ---------------------------------------------------------------- main


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parse_seeds(text: str) -> list[int]:
    """"1-20" or "1,3,5" -> list of ints."""
    if "-" in text:
        first, last = (int(t) for t in text.split("-"))
        return list(range(first, last + 1))
    return [int(t) for t in text.split(",")]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("test/assets/tiny_clip"), help="output folder")
    p.add_argument("--train-seeds", type=parse_seeds, default=parse_seeds("1-60"),
                   help="scene seeds to train on, '1-20' or '1,2,5' (seed 0 is the held-out test scene)")
    p.add_argument("--frames-per-scene", type=int, default=6,
                   help="frames of each scene's camera loop (few per scene: frames of one scene share its objects)")
    p.add_argument("--object-views", type=int, default=6000)
    p.add_argument("--views-per-object", type=int, default=4)
    p.add_argument("--steps", type=int, default=2400)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0, help="seeds object views, captions, batches and initialisation")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval-frames", type=int, default=30)
    p.add_argument("--data-cache", type=Path, default=None,
                   help="an .npz file: read the training images from it if it exists, else write them there")
    return p.parse_args()


def data_arguments(args: argparse.Namespace) -> str:
    """The arguments the training images depend on, as JSON (a data cache is valid only for these)."""
    keys = ("train_seeds", "frames_per_scene", "object_views", "views_per_object", "seed")
    return json.dumps({k: getattr(args, k) for k in keys} | {"model_config": MODEL_CONFIG}, sort_keys=True)


def load_or_build_data(args: argparse.Namespace, size: int) -> LabelledImages:
    """Render the training images, or read them from ``--data-cache`` when it was written with the same
    arguments."""
    if args.data_cache is not None and args.data_cache.is_file():
        with np.load(args.data_cache) as cached:
            if str(cached["arguments"]) != data_arguments(args):
                raise SystemExit(f"{args.data_cache} was made with other data arguments ({cached['arguments']}); "
                                 "delete it or pass another --data-cache")
            return LabelledImages(*(cached[f] for f in ("images", "classes", "colours", "sources")))
    data = LabelledImages.concatenate([
        collect_object_views(args.object_views, size, args.seed, args.views_per_object, masked_fraction=0.3),
        collect_scene_crops(args.train_seeds, args.frames_per_scene, size, min_pixels=100, context_fraction=0.3,
                            room_fragments=1),
    ])
    if args.data_cache is not None:
        np.savez(args.data_cache, images=data.images, classes=data.classes, colours=data.colours,
                 sources=data.sources, arguments=np.array(data_arguments(args)))
    return data


def main() -> None:
    args = parse_args()
    if TEST_SCENE_SEED in args.train_seeds:
        raise SystemExit(f"--train-seeds must not include {TEST_SCENE_SEED}: it is the held-out test scene")
    if min(args.steps, args.frames_per_scene, args.views_per_object, args.eval_frames, args.threads) < 1 \
            or args.batch_size < 2 or args.object_views < 0 or not args.lr > 0:
        raise SystemExit("need --steps, --frames-per-scene, --views-per-object, --eval-frames, --threads >= 1, "
                         "--batch-size >= 2, --object-views >= 0 and --lr > 0")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    size = MODEL_CONFIG["vision_cfg"]["image_size"]
    timings = {}

    start = time.perf_counter()
    data = load_or_build_data(args, size)
    timings["data_s"] = time.perf_counter() - start

    model = build_clip_from_config(MODEL_CONFIG)
    table = build_caption_table(make_tokenizer(MODEL_CONFIG), MODEL_CONFIG["text_cfg"]["context_length"])
    start = time.perf_counter()
    log = train(model, data, table, args.steps, args.batch_size, args.lr, args.weight_decay, args.seed)
    timings["train_s"] = time.perf_counter() - start
    checkpoint, config = save_checkpoint(model, args.out)

    start = time.perf_counter()
    clip = ClipModel.from_checkpoint(checkpoint, config=config)  # the loader users and tests go through
    evaluation = {f"{w}x{h}": evaluate(clip, TEST_SCENE_SEED, args.eval_frames, w, h)
                  for w, h in ((320, 240), (160, 120))}
    timings["eval_s"] = time.perf_counter() - start

    counts = {name: int(np.sum(data.classes == c)) for c, name in enumerate(CLASSES)}
    stats = {
        "what": "tiny open_clip CLIP trained on synthetic renders only (ov_mapping semantic end-to-end test)",
        "command": "PYTHONPATH=. .venv/bin/python scripts/train_tiny_clip.py --out test/assets/tiny_clip",
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "model_config": MODEL_CONFIG,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "checkpoint": {"file": checkpoint.name, "bytes": checkpoint.stat().st_size, "sha256": file_digest(checkpoint),
                       "dtype": "float16"},
        "train_templates": list(TRAIN_TEMPLATES), "caption_kinds": CAPTION_KINDS,
        "data": {"samples": int(len(data.classes)), "object_views": int(np.sum(data.sources == 0)),
                 "scene_crops": int(np.sum(data.sources == 1)), "per_class": counts,
                 "held_out_scene_seed": TEST_SCENE_SEED},
        "loss_log": log,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "evaluation": evaluation,
        "versions": {"torch": torch.__version__, "open_clip": open_clip.__version__, "python": platform.python_version()},
    }
    (args.out / STATS_NAME).write_text(json.dumps(stats, indent=2) + "\n")
    (args.out / "README.md").write_text(format_readme(stats))
    for resolution, result in evaluation.items():
        print(f"seed-{TEST_SCENE_SEED} scene at {resolution}: "
              + ", ".join(f"{k} {result[k]['accuracy']:.3f} (n={result[k]['count']}, chance {result[k]['chance']:.3f})"
                          for k in ("objects_scene_vocab", "objects_full_vocab", "regions_pipeline", "colour",
                                    "shuffled_labels")))
    print(f"checkpoint {checkpoint} ({checkpoint.stat().st_size / 1e6:.2f} MB), timings {stats['timings_s']}")


if __name__ == "__main__":
    main()
