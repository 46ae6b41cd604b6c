"""Ov3R's object-level CLIP map F_oCLIP and the patch tokens CLIP3R's injection attends to.

F_oCLIP gives every pixel the CLIP embedding of the mask it belongs to (zero where no mask covers it). The
embeddings are the segmentation pipeline's own (:class:`~.mask_embedding.MaskClipEmbedder`), so a node that
needs the map before I2P runs computes them once and can forward them with the keyframe.

Memory: the map is H x W x D float32 (640 x 480 at D = 1152 is 1.4 GB); :func:`clip_map_patch_tokens` only
samples the 224 x 224 grid of it, but the dense map itself is the caller's to drop promptly.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from ov_mapping.models.clip3r import pool_feature_map_to_patches
from ov_mapping.reconstruction.preprocess import MODEL_SIZE, CropBox, centre_crop_box
from ov_mapping.segmentation.mask_embedding import CropWeights, ImageEncoder, MaskClipEmbedder
from ov_mapping.segmentation.mask_sources import Mask, as_mask_array

PATCH_SIZE = 16  # CLIP3R's ViT patch: 224 / 16 = 14 x 14 = 196 tokens


def paint_clip_map(masks: Sequence[Mask], embeddings: np.ndarray) -> np.ndarray:
    """Write each mask's embedding into its pixels.

    Args:
        masks: M masks of one (H, W) image (M >= 1).
        embeddings: (M, D) float, row i for masks[i].
    Returns:
        (H, W, D) float32; where masks overlap the higher score wins, the later mask on equal scores; zero
        where no mask covers the pixel.
    """
    embeddings = np.asarray(embeddings)
    if len(masks) == 0:
        raise ValueError("paint_clip_map needs at least one mask (it cannot tell the image size otherwise)")
    if embeddings.ndim != 2 or len(embeddings) != len(masks) or not np.issubdtype(embeddings.dtype, np.floating):
        raise ValueError(f"embeddings must be a float array ({len(masks)}, D), one row per mask, got "
                         f"{embeddings.shape} {embeddings.dtype}")
    stack = as_mask_array(list(masks), masks[0].mask.shape)
    # painting in ascending score order (stable) lets the higher score, then the later mask, win overlaps
    order = np.argsort([m.score for m in masks], kind="stable")
    owner = np.full(stack.shape[1:], len(masks), np.intp)  # len(masks) = the zero row: no mask
    for i in order:
        owner[stack[i]] = i
    table = np.concatenate([embeddings.astype(np.float32), np.zeros((1, embeddings.shape[1]), np.float32)])
    return table[owner]


def object_clip_map(
    rgb: np.ndarray, masks: Sequence[Mask], clip: ImageEncoder, weights: CropWeights = CropWeights()
) -> np.ndarray:
    """F_oCLIP of ``rgb`` (H, W, 3) uint8: masks' CLIP embeddings (crop-combined, as the segmentation pipeline
    computes them with ``weights``) painted by :func:`paint_clip_map` -> (H, W, clip.embed_dim) float32.
    No masks give an all-zero map."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        got = f"{rgb.shape} {rgb.dtype}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"rgb must be an (H, W, 3) uint8 array, got {got}")
    if len(masks) == 0:
        return np.zeros((*rgb.shape[:2], int(clip.embed_dim)), np.float32)
    embeddings = MaskClipEmbedder(clip, weights).embed(rgb, as_mask_array(list(masks), rgb.shape[:2]))
    return paint_clip_map(masks, embeddings)


def clip_map_patch_tokens(clip_map: np.ndarray, box: Optional[CropBox] = None) -> np.ndarray:
    """The CLIP3R injection's tokens of a full-image CLIP map: the map over the model input's crop (``box``,
    default the centred square that ``reconstruction.preprocess.prepare_image`` cuts), sampled at the 224 x 224
    model pixels (nearest: the map is piecewise constant, so nothing is lost that pooling would keep) and
    averaged per 16 x 16 patch.

    Args:
        clip_map: (H, W, D) float, e.g. from :func:`object_clip_map`.
        box: where the model input lies in the image; its width and height must be the map's.
    Returns:
        (196, D) float32, row-major over the 14 x 14 patch grid (the encoder's token order).
    """
    if not isinstance(clip_map, np.ndarray) or clip_map.ndim != 3 or not np.issubdtype(clip_map.dtype, np.floating):
        got = f"{clip_map.shape} {clip_map.dtype}" if isinstance(clip_map, np.ndarray) else type(clip_map).__name__
        raise ValueError(f"clip_map must be a float array (H, W, D), got {got}")
    height, width = clip_map.shape[:2]
    box = centre_crop_box(width, height) if box is None else box
    if (box.width, box.height) != (width, height):
        raise ValueError(f"clip_map is {width}x{height} but the crop box is of a {box.width}x{box.height} image")
    # the source pixel whose area holds each model pixel's centre
    src = np.minimum(((np.arange(MODEL_SIZE) + 0.5) * (box.side / MODEL_SIZE)).astype(np.intp), box.side - 1)
    sampled = clip_map[np.ix_(box.y0 + src, box.x0 + src)].astype(np.float32, copy=False)
    tokens = pool_feature_map_to_patches(torch.from_numpy(np.ascontiguousarray(sampled))[None], PATCH_SIZE)
    return tokens[0].numpy()
