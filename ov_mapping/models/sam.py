"""Segment Anything (SAM ViT-B/L/H): architecture, strict checkpoint loading, automatic mask generator.

The official checkpoints (``sam_vit_b_01ec64.pth`` etc., see :mod:`ov_mapping.models.registry`) are plain
state dicts of segment_anything's ``Sam`` module. :func:`build_sam` builds the same modules segment_anything's
``sam_model_registry`` does, from a :class:`SamArchitecture`, so a small architecture (for tests) goes through
the very same code; :func:`load_sam` then loads a checkpoint with strict key checking.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from segment_anything import SamAutomaticMaskGenerator
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from ov_mapping.models.clip import CheckpointError, describe_key_mismatch
from ov_mapping.models.registry import downloaded_path

logger = logging.getLogger(__name__)

# segment_anything's pixel statistics, in 0..255 units.
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class SamArchitecture:
    """Sizes of a SAM model; the defaults are those every official checkpoint shares."""

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    image_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    prompt_embed_dim: int = 256
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    iou_head_hidden_dim: int = 256

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}")
        if any(not 0 <= i < self.encoder_depth for i in self.encoder_global_attn_indexes):
            raise ValueError(
                f"global attention indexes {self.encoder_global_attn_indexes} must lie in [0, {self.encoder_depth})"
            )
        if self.encoder_embed_dim % self.encoder_num_heads or self.prompt_embed_dim % 8:
            raise ValueError("encoder width must divide by its heads and prompt_embed_dim by 8")


SAM_ARCHITECTURES: dict[str, SamArchitecture] = {
    "vit_b": SamArchitecture(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SamArchitecture(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SamArchitecture(1280, 32, 16, (7, 15, 23, 31)),
}


def resolve_architecture(architecture: Union[str, SamArchitecture]) -> SamArchitecture:
    """A :class:`SamArchitecture` from itself or from a name ("vit_b", "vit_l", "vit_h")."""
    if isinstance(architecture, SamArchitecture):
        return architecture
    try:
        return SAM_ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(
            f"unknown SAM architecture {architecture!r}; known: {', '.join(SAM_ARCHITECTURES)}"
        ) from None


def build_sam(architecture: Union[str, SamArchitecture]) -> Sam:
    """An untrained segment_anything ``Sam`` of the given architecture, in eval mode."""
    arch = resolve_architecture(architecture)
    embedding_size = arch.image_size // arch.patch_size
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=arch.encoder_depth,
            embed_dim=arch.encoder_embed_dim,
            img_size=arch.image_size,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=arch.encoder_num_heads,
            patch_size=arch.patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=arch.encoder_global_attn_indexes,
            window_size=arch.window_size,
            out_chans=arch.prompt_embed_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=arch.prompt_embed_dim,
            image_embedding_size=(embedding_size, embedding_size),
            input_image_size=(arch.image_size, arch.image_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2,
                embedding_dim=arch.prompt_embed_dim,
                mlp_dim=arch.decoder_mlp_dim,
                num_heads=arch.decoder_num_heads,
            ),
            transformer_dim=arch.prompt_embed_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=arch.iou_head_hidden_dim,
        ),
        pixel_mean=list(SAM_PIXEL_MEAN),
        pixel_std=list(SAM_PIXEL_STD),
    )
    return sam.eval()


def load_sam_state_dict(sam: Sam, checkpoint_path: Union[str, os.PathLike]) -> None:
    """Load an official-format SAM checkpoint into ``sam``: strict keys and shapes, named in errors."""
    path = Path(checkpoint_path)
    if not path.is_file():
        raise FileNotFoundError(f"SAM checkpoint not found: {path}")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated download or a foreign pickle
        raise CheckpointError(f"cannot read SAM checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    if isinstance(state_dict, dict) and "model" in state_dict and isinstance(state_dict["model"], dict):
        state_dict = state_dict["model"]  # training checkpoints wrap the weights
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"SAM checkpoint {path} holds a {type(state_dict).__name__}, not a state dict")
    expected = sam.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        raise CheckpointError(describe_key_mismatch(f"SAM checkpoint {path}", missing, unexpected))
    wrong = [
        f"{k} {tuple(v.shape)} (model {tuple(expected[k].shape)})"
        for k, v in state_dict.items()
        if tuple(v.shape) != tuple(expected[k].shape)
    ]
    if wrong:
        raise CheckpointError(
            f"SAM checkpoint {path} has {len(wrong)} tensors of the wrong shape for this architecture: "
            + ", ".join(wrong[:10])
        )
    sam.load_state_dict(state_dict, strict=True)


def load_sam(
    architecture: Union[str, SamArchitecture],
    checkpoint_path: Union[str, os.PathLike],
    device: Union[str, torch.device] = "cpu",
) -> Sam:
    """A SAM model with weights from ``checkpoint_path``, on ``device``, in eval mode."""
    sam = build_sam(architecture)
    load_sam_state_dict(sam, checkpoint_path)
    logger.info("SAM %s loaded from %s on %s", architecture if isinstance(architecture, str) else "custom",
                checkpoint_path, device)
    return sam.to(device).eval()


def load_sam_from_registry(
    weights_name: str, cache_dir: Optional[os.PathLike] = None, device: Union[str, torch.device] = "cpu"
) -> Sam:
    """The registry entry ``weights_name`` (kind "sam", e.g. "sam_vit_b"), from its downloaded file."""
    entry, path = downloaded_path(weights_name, "sam", cache_dir)
    return load_sam(entry.architecture, path, device)


@dataclass(frozen=True)
class SamGeneratorParams:
    """The automatic mask generator's knobs (segment_anything's defaults, tuned there for ViT-H).

    ``min_mask_region_area`` is not passed to segment_anything (its implementation needs OpenCV, which
    ov_mapping does not depend on); :mod:`ov_mapping.segmentation.mask_sources` applies it in numpy.
    """

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_n_points_downscale_factor: int = 1
    min_mask_region_area: int = 0

    def __post_init__(self) -> None:
        if self.points_per_side <= 0 or self.points_per_batch <= 0:
            raise ValueError("points_per_side and points_per_batch must be positive")
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.crop_n_layers < 0 or self.min_mask_region_area < 0 or self.crop_n_points_downscale_factor < 1:
            raise ValueError("crop_n_layers and min_mask_region_area must be >= 0, the downscale factor >= 1")

    @classmethod
    def from_dict(cls, params: dict) -> "SamGeneratorParams":
        """Params from a dict, rejecting unknown names (a typo must not silently use a default)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown SAM generator parameters {unknown}; known: {sorted(known)}")
        return cls(**params)


def make_mask_generator(sam: Sam, params: SamGeneratorParams = SamGeneratorParams()) -> SamAutomaticMaskGenerator:
    """segment_anything's automatic mask generator over ``sam`` with ``params``."""
    return SamAutomaticMaskGenerator(
        sam,
        points_per_side=params.points_per_side,
        points_per_batch=params.points_per_batch,
        pred_iou_thresh=params.pred_iou_thresh,
        stability_score_thresh=params.stability_score_thresh,
        box_nms_thresh=params.box_nms_thresh,
        crop_n_layers=params.crop_n_layers,
        crop_n_points_downscale_factor=params.crop_n_points_downscale_factor,
        min_mask_region_area=0,
        output_mode="binary_mask",
    )


def generate_sam_masks(generator: SamAutomaticMaskGenerator, rgb: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """(mask (H, W) bool, predicted IoU) for every mask the generator finds in ``rgb`` (H, W, 3) uint8."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    with torch.inference_mode():
        records = generator.generate(np.ascontiguousarray(rgb))
    return [(np.asarray(r["segmentation"], dtype=bool), float(r["predicted_iou"])) for r in records]
