"""CLIP image and text encoders (open_clip), with prompt ensembling and a text-embedding cache.

A :class:`ClipModel` is built one of four ways:

- :meth:`ClipModel.from_pretrained`: an open_clip model name and pretrained tag (open_clip downloads and
  verifies the file itself);
- :meth:`ClipModel.from_registry`: a ``kind="clip"`` entry of :mod:`ov_mapping.models.registry`, loaded from
  its local path (fetch it first with ``download-weights``);
- :meth:`ClipModel.from_checkpoint`: a local checkpoint file plus an open_clip model name, or plus a model
  config (a dict or a small JSON file with ``embed_dim``, ``vision_cfg``, ``text_cfg``) for custom
  architectures.

Checkpoints are loaded strictly: a missing or unexpected parameter raises :class:`CheckpointError` naming it.
Every embedding this module returns is float32 and L2-normalised, so cosine similarity is a dot product.
"""

from __future__ import annotations

import copy
import difflib
import json
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from ov_mapping.models.registry import downloaded_path, list_weights

logger = logging.getLogger(__name__)

# Prompt ensembling (Radford et al. 2021): a few phrasings, averaged. Indoor-scene phrasings because the
# images are room views; the plain photo templates keep the ensemble close to CLIP's training captions.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a {} in a room.",
    "a photo of a {} in a scene.",
    "there is a {} in the scene.",
)

_INTERPOLATIONS = {"bicubic": "bicubic", "bilinear": "bilinear", "lanczos": "bicubic", "nearest": "nearest"}

ImageBatch = Union[Sequence[np.ndarray], np.ndarray, torch.Tensor]


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit the architecture (keys listed by name)."""


class UnknownModelError(ValueError):
    """An open_clip model name or pretrained tag that does not exist."""


def check_model_name(model_name: str) -> None:
    """Raise :class:`UnknownModelError`, with close matches, unless open_clip knows ``model_name``."""
    known = open_clip.list_models()
    if model_name in known:
        return
    close = difflib.get_close_matches(model_name, known, n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownModelError(
        f"unknown open_clip model {model_name!r}.{hint} (open_clip.list_models() lists all {len(known)})"
    )


def check_pretrained_tag(model_name: str, tag: str) -> None:
    """Raise :class:`UnknownModelError` unless ``tag`` is a pretrained tag of ``model_name``."""
    check_model_name(model_name)
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if tag not in tags:
        close = difflib.get_close_matches(tag, tags, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown pretrained tag {tag!r} for {model_name}.{hint} Tags: {', '.join(tags) or '(none)'}"
        )


def read_model_config(config: Union[dict, str, os.PathLike]) -> dict:
    """An open_clip model config from a dict or a JSON file; ``{"model_cfg": {...}}`` wrappers are unwrapped.

    Raises ValueError if the required keys are missing or the file is not JSON.
    """
    if isinstance(config, dict):
        cfg = copy.deepcopy(config)
    else:
        path = Path(config)
        try:
            cfg = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read CLIP model config {path}: {exc}") from exc
    cfg = cfg.get("model_cfg", cfg)
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in cfg]
    if missing:
        raise ValueError(f"CLIP model config lacks {', '.join(missing)}; it needs embed_dim, vision_cfg, text_cfg")
    if "multimodal_cfg" in cfg:
        raise ValueError("CoCa configs (multimodal_cfg) are not supported; use a CLIP architecture")
    return cfg


def build_clip_from_config(cfg: dict) -> torch.nn.Module:
    """An untrained open_clip CLIP model of the architecture ``cfg`` describes (see :func:`read_model_config`)."""
    cfg = copy.deepcopy(cfg)
    # The same tower choice open_clip's factory makes: HF text towers and custom_text configs use CustomTextCLIP.
    custom_text = cfg.pop("custom_text", False) or "hf_model_name" in cfg["text_cfg"]
    model_class = open_clip.CustomTextCLIP if custom_text else open_clip.CLIP
    try:
        model = model_class(**cfg)
    except TypeError as exc:
        raise ValueError(f"invalid CLIP model config: {exc}") from exc
    open_clip.model.set_model_preprocess_cfg(model, _default_preprocess_cfg(model))
    return model


def _default_preprocess_cfg(model: torch.nn.Module) -> dict:
    size = getattr(model.visual, "image_size", 224)
    return {
        "size": size,
        "mode": "RGB",
        "mean": open_clip.OPENAI_DATASET_MEAN,
        "std": open_clip.OPENAI_DATASET_STD,
        "interpolation": "bicubic",
        "resize_mode": "shortest",
        "fill_color": 0,
    }


def load_clip_state_dict(model: torch.nn.Module, checkpoint_path: Union[str, os.PathLike]) -> None:
    """Load a checkpoint file into ``model`` strictly, with errors that name the offending keys.

    open_clip's own loader is used for reading, so OpenAI / big_vision / ``module.``-prefixed formats convert
    the same way they do in open_clip.
    """
    path = Path(checkpoint_path)
    if not path.is_file():
        raise FileNotFoundError(f"CLIP checkpoint not found: {path}")
    try:
        result = open_clip.load_checkpoint(model, str(path), strict=False)
    except RuntimeError as exc:  # torch reports shape mismatches even when not strict
        raise CheckpointError(f"CLIP checkpoint {path} does not fit the architecture: {exc}") from exc
    except Exception as exc:  # unreadable archive, pickle or safetensors header
        raise CheckpointError(f"cannot read CLIP checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    missing = list(getattr(result, "missing_keys", []))
    unexpected = list(getattr(result, "unexpected_keys", []))
    if missing or unexpected:
        raise CheckpointError(describe_key_mismatch(f"CLIP checkpoint {path}", missing, unexpected))


def describe_key_mismatch(what: str, missing: Sequence[str], unexpected: Sequence[str], limit: int = 20) -> str:
    """One readable message listing missing and unexpected state-dict keys (the first ``limit`` of each)."""

    def listing(keys: Sequence[str]) -> str:
        shown = ", ".join(keys[:limit])
        return shown + (f" ... (+{len(keys) - limit} more)" if len(keys) > limit else "")

    parts = [f"{what} does not match the model:"]
    if missing:
        parts.append(f"missing keys ({len(missing)}): {listing(list(missing))}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {listing(list(unexpected))}")
    return " ".join(parts)


def to_image_list(images: ImageBatch) -> list[np.ndarray]:
    """Check and split a batch of RGB images into a list of (H, W, 3) uint8 arrays.

    Accepts a sequence of (H, W, 3) uint8 arrays (sizes may differ) or one (N, H, W, 3) uint8 array / tensor.
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray):
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"an image batch must have shape (N, H, W, 3), got {images.shape}")
        images = list(images)
    out = []
    for i, image in enumerate(images):
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"image {i} must have shape (H, W, 3) with H, W > 0, got {image.shape}")
        if image.dtype != np.uint8:
            raise ValueError(f"image {i} must be uint8 RGB, got {image.dtype}")
        out.append(image)
    return out


class ClipModel:
    """An open_clip model in eval mode on one device, with numpy in and out.

    Args:
        model: an open_clip ``CLIP`` / ``CustomTextCLIP`` module.
        tokenizer: the matching open_clip tokenizer.
        name: a label for logs (model name and weights).
        device: where inference runs.
        templates: prompt templates, each with one ``{}``.
        text_cache_size: how many texts' embeddings the LRU cache keeps.
        batch_size: images per forward pass.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        name: str = "clip",
        device: Union[str, torch.device] = "cpu",
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        text_cache_size: int = 1024,
        batch_size: int = 64,
    ) -> None:
        if not templates or any(t.count("{}") != 1 for t in templates):
            raise ValueError(f"every prompt template needs exactly one '{{}}', got {list(templates)}")
        if text_cache_size < 0 or batch_size <= 0:
            raise ValueError("text_cache_size must be >= 0 and batch_size > 0")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.name = name
        self.templates = tuple(templates)
        self.batch_size = batch_size
        self._cache_size = text_cache_size
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._text_lock = threading.Lock()  # a map server embeds queries from service threads
        cfg = getattr(self.model.visual, "preprocess_cfg", None) or _default_preprocess_cfg(self.model)
        size = cfg["size"]
        self.input_size: tuple[int, int] = (size, size) if isinstance(size, int) else tuple(size)
        self._mean = torch.tensor(cfg["mean"], dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(cfg["std"], dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._interpolation = _INTERPOLATIONS.get(cfg.get("interpolation", "bicubic"), "bicubic")
        self.embed_dim = int(self._embed_dim())
        logger.info("CLIP %s on %s: embedding dim %d, input %dx%d, %d prompt templates", name, self.device,
                    self.embed_dim, *self.input_size, len(self.templates))

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_pretrained(
        cls, model_name: str, pretrained: str, device: Union[str, torch.device] = "cpu",
        cache_dir: Optional[str] = None, **kwargs: Any,
    ) -> "ClipModel":
        """An open_clip model with its published weights (``pretrained`` tag, or a file path)."""
        if Path(pretrained).is_file():
            return cls.from_checkpoint(pretrained, model_name=model_name, device=device, **kwargs)
        check_pretrained_tag(model_name, pretrained)
        model = open_clip.create_model(model_name, pretrained=pretrained, device="cpu", cache_dir=cache_dir)
        return cls(model, open_clip.get_tokenizer(model_name), f"{model_name}/{pretrained}", device, **kwargs)

    @classmethod
    def from_checkpoint(
        cls, checkpoint_path: Union[str, os.PathLike], model_name: Optional[str] = None,
        config: Union[dict, str, os.PathLike, None] = None, device: Union[str, torch.device] = "cpu",
        **kwargs: Any,
    ) -> "ClipModel":
        """A model of architecture ``model_name`` (open_clip built-in) or ``config`` loaded from a local file."""
        if (model_name is None) == (config is None):
            raise ValueError("give exactly one of model_name (an open_clip architecture) and config")
        if model_name is not None:
            check_model_name(model_name)
            model = open_clip.create_model(model_name, pretrained=None, device="cpu")
            tokenizer = open_clip.get_tokenizer(model_name)
            label = f"{model_name}:{Path(checkpoint_path).name}"
        else:
            cfg = read_model_config(config)
            model = build_clip_from_config(cfg)
            tokenizer = make_tokenizer(cfg)
            label = f"custom:{Path(checkpoint_path).name}"
        load_clip_state_dict(model, checkpoint_path)
        return cls(model, tokenizer, label, device, **kwargs)

    @classmethod
    def from_registry(
        cls, weights_name: str, cache_dir: Optional[os.PathLike] = None, device: Union[str, torch.device] = "cpu",
        **kwargs: Any,
    ) -> "ClipModel":
        """The registry entry ``weights_name`` (kind "clip"), loaded from its downloaded file."""
        entry, path = downloaded_path(weights_name, "clip", cache_dir)
        model = cls.from_checkpoint(path, model_name=entry.architecture, device=device, **kwargs)
        model.name = entry.name
        return model

    # ---------------------------------------------------------------- inference

    def preprocess(self, images: ImageBatch) -> torch.Tensor:
        """(N, 3, h, w) float32 model input: short side to the input size, centre crop, normalise."""
        tensors = [self._resize_crop(image) for image in to_image_list(images)]
        if not tensors:
            return torch.empty((0, 3, *self.input_size), device=self.device)
        batch = torch.stack(tensors)
        return (batch - self._mean) / self._std

    def _resize_crop(self, image: np.ndarray) -> torch.Tensor:
        th, tw = self.input_size
        x = torch.from_numpy(np.array(image, copy=True)).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        h, w = image.shape[:2]
        scale = max(th / h, tw / w)
        nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
        x = F.interpolate(x, size=(nh, nw), mode=self._interpolation, antialias=self._interpolation != "nearest",
                          align_corners=False if self._interpolation != "nearest" else None)
        top, left = (nh - th) // 2, (nw - tw) // 2
        return x[0, :, top:top + th, left:left + tw].clamp_(0.0, 1.0)

    @torch.inference_mode()
    def encode_images(self, images: ImageBatch) -> np.ndarray:
        """Embed RGB images: (N, D) float32, L2-normalised. ``images``: see :func:`to_image_list`."""
        image_list = to_image_list(images)
        out = [np.zeros((0, self.embed_dim), np.float32)]
        for start in range(0, len(image_list), self.batch_size):
            batch = self.preprocess(image_list[start:start + self.batch_size])
            features = self.model.encode_image(batch)
            out.append(F.normalize(features.float(), dim=-1).cpu().numpy())
        return np.concatenate(out)

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts with prompt ensembling: (N, D) float32, L2-normalised.

        Each text fills every template; the template embeddings are normalised, averaged and normalised again.
        Results are cached per text (LRU), so a fixed vocabulary costs one forward pass per word, once.
        """
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError("encode_text takes a list of strings")
        with self._text_lock:
            return self._encode_text_locked(list(texts))

    def _encode_text_locked(self, texts: list[str]) -> np.ndarray:
        embeddings = {text: self._text_cache[text] for text in texts if text in self._text_cache}
        todo = list(dict.fromkeys(t for t in texts if t not in embeddings))
        for start in range(0, len(todo), self.batch_size):  # a large vocabulary must not be one huge batch
            chunk = todo[start:start + self.batch_size]
            prompts = [template.format(text) for text in chunk for template in self.templates]
            tokens = self.tokenizer(prompts).to(self.device)
            features = F.normalize(self.model.encode_text(tokens).float(), dim=-1)
            features = features.view(len(chunk), len(self.templates), -1).mean(dim=1)
            embeddings.update(zip(chunk, F.normalize(features, dim=-1).cpu().numpy()))
        out = np.zeros((len(texts), self.embed_dim), np.float32)
        for i, text in enumerate(texts):
            out[i] = embeddings[text]
            self._remember(text, out[i])
        return out

    def _remember(self, text: str, embedding: np.ndarray) -> None:
        if self._cache_size == 0:
            return
        self._text_cache[text] = embedding.copy()
        self._text_cache.move_to_end(text)
        while len(self._text_cache) > self._cache_size:
            self._text_cache.popitem(last=False)

    @property
    def cached_texts(self) -> list[str]:
        """Texts whose embeddings are cached, least recently used first."""
        return list(self._text_cache)

    def _embed_dim(self) -> int:
        probe = getattr(self.model, "text_projection", None)
        if isinstance(probe, torch.Tensor):
            return probe.shape[1]
        with torch.inference_mode():
            dummy = torch.zeros((1, 3, *self.input_size), device=self.device)
            return self.model.encode_image(dummy).shape[-1]


def make_tokenizer(cfg: dict) -> Any:
    """The tokenizer a custom config's text tower expects (open_clip's BPE unless an HF tokenizer is named)."""
    text_cfg = cfg["text_cfg"]
    context_length = text_cfg.get("context_length", 77)
    if "hf_tokenizer_name" in text_cfg:
        return open_clip.HFTokenizer(text_cfg["hf_tokenizer_name"], context_length=context_length)
    return open_clip.SimpleTokenizer(context_length=context_length)


def load_clip(model: str, weights: str = "", config: str = "", device: Union[str, torch.device] = "cpu",
              cache_dir: Optional[os.PathLike] = None) -> ClipModel:
    """The CLIP model a node's parameters name, in one place for every node that needs the same embedding space.

    - ``config`` set: a custom architecture (JSON file) with its ``weights`` file;
    - ``model`` a registry name (e.g. "clip_vit_b32_laion2b_s34b_b79k"): its downloaded, checksummed file;
    - otherwise ``model`` is an open_clip architecture and ``weights`` a pretrained tag or a local file.
    """
    if config:
        if not weights:
            raise ValueError("clip_config needs clip_weights: the checkpoint file of that architecture")
        return ClipModel.from_checkpoint(weights, config=config, device=device)
    known = {entry.name for entry in list_weights("clip")}
    if model in known:
        return ClipModel.from_registry(model, cache_dir=cache_dir, device=device)
    if not weights:
        raise ValueError(f"clip_model {model!r} is not a registry name ({', '.join(sorted(known))}); give "
                         "clip_weights (an open_clip pretrained tag or a checkpoint file)")
    return ClipModel.from_pretrained(model, weights, device=device)
