"""Registry of the pretrained weights ov_mapping can load.

Each :class:`WeightsEntry` names one checkpoint file: where to fetch it, how big it is, its
SHA-256 where one could be established, its licence, and the image preprocessing the
weights were trained with, so a model is always fed the way its weights expect.

The registry holds facts only; :mod:`ov_mapping.models.download` fetches and verifies files.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

KINDS = ("clip3r_i2p", "clip3r_l2w", "sam", "clip", "dino")

# How an image of any size becomes ``input_size``:
#   short_side_crop: scale the short side to round(size / crop_pct), centre-crop to size.
#   long_side_pad:   scale the long side to size, pad right/bottom with zeros (after normalising).
RESIZE_MODES = ("short_side_crop", "long_side_pad")
INTERPOLATIONS = ("bilinear", "bicubic", "lanczos")

CACHE_ENV_VAR = "OV_MAPPING_WEIGHTS"
HF_ENDPOINT_ENV_VAR = "HF_ENDPOINT"
DEFAULT_HF_ENDPOINT = "https://huggingface.co"

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Preprocessing:
    """Image preprocessing the weights expect.

    ``input_size`` is (height, width) in pixels. ``mean`` and ``std`` are per RGB channel
    in units of [0, 1] pixel values: ``x = (rgb / 255 - mean) / std``.
    """

    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_mode: str
    interpolation: str
    crop_pct: float = 1.0

    def __post_init__(self) -> None:
        if len(self.input_size) != 2 or not all(isinstance(v, int) and v > 0 for v in self.input_size):
            raise ValueError(f"input_size must be two positive ints (height, width), got {self.input_size!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got {self.mean!r} and {self.std!r}")
        if not all(s > 0 for s in self.std):
            raise ValueError(f"std values must be positive, got {self.std!r}")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")
        if not 0.0 < self.crop_pct <= 1.0:
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct!r}")


@dataclass(frozen=True)
class WeightsEntry:
    """One downloadable checkpoint file.

    The source is either a Hugging Face repository (``hf_repo`` + ``filename`` at
    ``hf_revision``) or a plain ``url``; exactly one must be set. ``sha256`` is ``None``
    where no trustworthy published digest exists; ``note`` says where the size and digest
    come from and what is unknown.
    """

    name: str
    kind: str
    architecture: str
    filename: str
    size_bytes: int
    sha256: Optional[str]
    licence: str
    preprocessing: Preprocessing
    hf_repo: Optional[str] = None
    hf_revision: str = "main"
    url: Optional[str] = None
    note: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", self.name):
            raise ValueError(f"weights name must be lowercase [a-z0-9_.-], got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind must be one of {KINDS}, got {self.kind!r}")
        if (self.hf_repo is None) == (self.url is None):
            raise ValueError(f"{self.name}: set exactly one of hf_repo and url")
        if not self.filename or "/" in self.filename or self.filename in (".", ".."):
            raise ValueError(f"{self.name}: filename must be a plain file name, got {self.filename!r}")
        if not isinstance(self.size_bytes, int) or self.size_bytes <= 0:
            raise ValueError(f"{self.name}: size_bytes must be a positive int, got {self.size_bytes!r}")
        if self.sha256 is not None and not _SHA256_RE.match(self.sha256):
            raise ValueError(f"{self.name}: sha256 must be 64 lowercase hex digits or None, got {self.sha256!r}")
        if not self.licence.strip():
            raise ValueError(f"{self.name}: a licence note is required")


_OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

# DUSt3R/SLAM3R: short side to 224, centre crop, [-1, 1]; PIL LANCZOS when shrinking
# (their loader switches to bicubic only when enlarging).
_CLIP3R_PRE = Preprocessing((224, 224), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "short_side_crop", "lanczos")
# segment_anything: long side to 1024 (bilinear), normalise with ImageNet stats given in
# 0..255 units (123.675/255 = 0.485 ...), zero-pad right/bottom to 1024 x 1024.
_SAM_PRE = Preprocessing((1024, 1024), _IMAGENET_MEAN, _IMAGENET_STD, "long_side_pad", "bilinear")
# open_clip "shortest" resize mode with the OpenAI statistics, bicubic.
_CLIP_PRE = Preprocessing((224, 224), _OPENAI_CLIP_MEAN, _OPENAI_CLIP_STD, "short_side_crop", "bicubic")
# timm default ViT config: crop_pct 0.9 (short side to 248, crop 224), bicubic, ImageNet stats.
_DINO_PRE = Preprocessing((224, 224), _IMAGENET_MEAN, _IMAGENET_STD, "short_side_crop", "bicubic", 0.9)

_SLAM3R_LICENCE = (
    "Non-commercial use only: the SLAM3R weights derive from DUSt3R/CroCo, whose weights are "
    "CC BY-NC-SA 4.0. ov_mapping's code is separate from these weights."
)
_SAM_LICENCE = "Apache-2.0 (Meta segment-anything model checkpoints)."
_CLIP_LICENCE = (
    "MIT (LAION OpenCLIP weights); the model card rules deployed and commercial use out of "
    "scope without task-specific testing."
)
_SAM_NOTE = "Size and sha256 as published for the official checkpoint (consistent across independent sources)."
_DERIVED_SIZE_NOTE = (
    "Size derived by re-serialising the architecture's state dict with safetensors (the same method "
    "reproduces the published size of the ViT-B-32 file exactly)."
)

_BUILTIN = (
    WeightsEntry(
        name="slam3r_i2p",
        kind="clip3r_i2p",
        architecture="slam3r_i2p",
        filename="model.safetensors",
        size_bytes=2_131_831_108,
        sha256=None,
        licence=_SLAM3R_LICENCE,
        preprocessing=_CLIP3R_PRE,
        hf_repo="siyan824/slam3r_i2p",
        note="Public SLAM3R I2P weights (fp32, 882 tensors). sha256 unknown: no published digest was found; "
        "the size is checked and download-weights prints the computed digest.",
    ),
    WeightsEntry(
        name="slam3r_l2w",
        kind="clip3r_l2w",
        architecture="slam3r_l2w",
        filename="model.safetensors",
        size_bytes=922_557_296,
        sha256=None,
        licence=_SLAM3R_LICENCE,
        preprocessing=_CLIP3R_PRE,
        hf_repo="siyan824/slam3r_l2w",
        note="Public SLAM3R L2W weights (fp32, 591 tensors, no encoder blocks). sha256 unknown: no published "
        "digest was found; the size is checked and download-weights prints the computed digest.",
    ),
    WeightsEntry(
        name="sam_vit_b",
        kind="sam",
        architecture="vit_b",
        filename="sam_vit_b_01ec64.pth",
        size_bytes=375_042_383,
        sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        licence=_SAM_LICENCE,
        preprocessing=_SAM_PRE,
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
        note=_SAM_NOTE,
    ),
    WeightsEntry(
        name="sam_vit_l",
        kind="sam",
        architecture="vit_l",
        filename="sam_vit_l_0b3195.pth",
        size_bytes=1_249_524_607,
        sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        licence=_SAM_LICENCE,
        preprocessing=_SAM_PRE,
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
        note=_SAM_NOTE,
    ),
    WeightsEntry(
        name="sam_vit_h",
        kind="sam",
        architecture="vit_h",
        filename="sam_vit_h_4b8939.pth",
        size_bytes=2_564_550_879,
        sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        licence=_SAM_LICENCE,
        preprocessing=_SAM_PRE,
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
        note=_SAM_NOTE,
    ),
    WeightsEntry(
        name="dino_vits16",
        kind="dino",
        architecture="vit_small_patch16_224",
        filename="model.safetensors",
        size_bytes=86_676_368,
        sha256=None,
        licence="Apache-2.0 (DINO weights as republished by timm).",
        preprocessing=_DINO_PRE,
        hf_repo="timm/vit_small_patch16_224.dino",
        note=_DERIVED_SIZE_NOTE + " sha256 unknown: no published digest was found; "
        "download-weights prints the computed digest.",
    ),
    WeightsEntry(
        name="clip_vit_b32_laion2b_s34b_b79k",
        kind="clip",
        architecture="ViT-B-32",
        filename="open_clip_model.safetensors",
        size_bytes=605_143_316,
        sha256="ac4f8c4b88af6d963118cbf40ad93176d092abbedfcb752601ae1866352656e6",
        licence=_CLIP_LICENCE,
        preprocessing=_CLIP_PRE,
        hf_repo="laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        note="Size and sha256 as published for this file; open_clip pretrained tag laion2b_s34b_b79k.",
    ),
    WeightsEntry(
        name="clip_vit_b16_laion2b_s34b_b88k",
        kind="clip",
        architecture="ViT-B-16",
        filename="open_clip_model.safetensors",
        size_bytes=598_517_012,
        sha256="3f25d29d3cc74e1d25d47e0593b4dd0864ced1e9b4d8e486a247ca4502f227f1",
        licence=_CLIP_LICENCE,
        preprocessing=_CLIP_PRE,
        hf_repo="laion/CLIP-ViT-B-16-laion2B-s34B-b88K",
        note="sha256 as shown by the Hugging Face file page; open_clip pretrained tag laion2b_s34b_b88k. "
        + _DERIVED_SIZE_NOTE,
    ),
)

_REGISTRY: dict[str, WeightsEntry] = {entry.name: entry for entry in _BUILTIN}


def register_weights(entry: WeightsEntry) -> None:
    """Add ``entry`` to the registry (for weights trained later, e.g. CLIP3R checkpoints).

    Raises ValueError if the name is taken: silently replacing a checksum would defeat it.
    """
    if not isinstance(entry, WeightsEntry):
        raise TypeError(f"expected a WeightsEntry, got {type(entry).__name__}")
    if entry.name in _REGISTRY:
        raise ValueError(f"weights name {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry


def list_weights(kind: Optional[str] = None) -> list[WeightsEntry]:
    """All registered entries, sorted by name; only those of ``kind`` when given."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; kinds are: {', '.join(KINDS)}")
    return sorted((e for e in _REGISTRY.values() if kind is None or e.kind == kind), key=lambda e: e.name)


def get_weights(name: str) -> WeightsEntry:
    """The entry called ``name``; KeyError listing the known names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown weights {name!r}; known weights: {known}") from None


def resolve_url(entry: WeightsEntry) -> str:
    """The URL to fetch ``entry`` from.

    Hugging Face entries honour ``HF_ENDPOINT`` (as huggingface_hub does) so a mirror works.
    """
    if entry.url is not None:
        return entry.url
    endpoint = os.environ.get(HF_ENDPOINT_ENV_VAR, DEFAULT_HF_ENDPOINT).rstrip("/")
    revision = urllib.parse.quote(entry.hf_revision, safe="")
    filename = urllib.parse.quote(entry.filename)
    return f"{endpoint}/{entry.hf_repo}/resolve/{revision}/{filename}"


def default_cache_dir() -> Path:
    """``$OV_MAPPING_WEIGHTS`` if set, else ``~/.cache/ov_mapping/weights``."""
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "ov_mapping" / "weights"


def local_path(entry: WeightsEntry, cache_dir: Optional[os.PathLike] = None) -> Path:
    """Where ``entry`` lives on disk: ``<cache_dir>/<name>/<filename>``.

    One folder per entry because several checkpoints share a file name (model.safetensors).
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / entry.name / entry.filename


def downloaded_path(name: str, kind: str, cache_dir: Optional[os.PathLike] = None) -> tuple[WeightsEntry, Path]:
    """(entry, file) of registry weights ``name`` of ``kind``, refusing another kind or a file not downloaded.

    Raises:
        KeyError: unknown name (the message lists the known ones).
        ValueError: the entry is of another kind.
        FileNotFoundError: not downloaded; the message gives the download command.
    """
    entry = get_weights(name)
    if entry.kind != kind:
        raise ValueError(f"weights {entry.name!r} are of kind {entry.kind!r}, not {kind!r}")
    path = local_path(entry, cache_dir)
    if not path.is_file():
        raise FileNotFoundError(f"weights {entry.name!r} are not downloaded (expected {path}); run "
                                f"ov-mapping download-weights {entry.name}")
    return entry, path


def missing_clip_weights(model: str, weights: str = "", config: str = "",
                         cache_dir: Optional[os.PathLike] = None) -> Optional[str]:
    """Why the CLIP model these node parameters name cannot load from disk, or None when it may.

    Checked without importing torch, so a node without weights stays light. An open_clip pretrained tag is not
    checked here (open_clip resolves it).
    """
    if config or (weights and Path(weights).suffix):
        path = Path(weights).expanduser()
        return None if path.is_file() else f"CLIP checkpoint {path} does not exist"
    if model in {entry.name for entry in list_weights("clip")}:
        try:
            downloaded_path(model, "clip", cache_dir)
        except FileNotFoundError as exc:
            return str(exc)
    return None
