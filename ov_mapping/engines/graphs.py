"""The four CLIP3R inference graphs, each a small module with plain, named tensor inputs and outputs.

Every backend (PyTorch, ONNX Runtime, TensorRT) runs exactly these graphs, so they agree by construction:
``encoder`` (images -> raw tokens), ``i2p`` (a window of views -> points, confidence, retrieval logits),
``retrieval`` (a window -> per-patch retrieval scores) and ``l2w`` (scene frames + keyframes -> world points).
Multi-view inputs are stacked on a leading view axis; in ``i2p`` and ``retrieval`` view 0 is the reference
(callers reorder). Shapes: V views, B batch, S patches (196), C enc_dim, H = W = img_size, N CLIP tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ov_mapping.models.clip3r import I2P, L2W
from ov_mapping.models.clip3r.retrieval import corr_logits, score_from_logit

GRAPH_NAMES = ("encoder", "i2p", "retrieval", "l2w")


@dataclass(frozen=True)
class GraphSpec:
    """Names of a graph's inputs and outputs and the symbolic axes of each (axis index -> label)."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]]


class EncoderGraph(nn.Module):
    """images (B, 3, H, W) float32 in [-1, 1] -> tokens (B, S, C), raw (before ``enc_norm``)."""

    def __init__(self, i2p: I2P) -> None:
        super().__init__()
        self.model = i2p

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode(images.to(self.model.decoder_embed.weight.dtype)).float()


class I2PGraph(nn.Module):
    """tokens (V, B, S, C) [+ clip (V, B, N, clip_dim)], view 0 = reference ->
    pts3d (V, B, H, W, 3) in the reference camera frame, conf (V, B, H, W), pseudo_conf (V - 1, B, S)."""

    def __init__(self, i2p: I2P) -> None:
        super().__init__()
        self.model = i2p

    def forward(self, tokens: torch.Tensor, clip: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        dtype = self.model.decoder_embed.weight.dtype
        ref_clip = None if clip is None else clip[0].to(dtype)
        src_clip = None if clip is None else clip[1:].to(dtype)
        out = self.model.predict(tokens[0].to(dtype), tokens[1:].to(dtype), ref_clip, src_clip)
        pts = torch.cat((out["ref_pts3d"].unsqueeze(0), out["src_pts3d"]))
        conf = torch.cat((out["ref_conf"].unsqueeze(0), out["src_conf"]))
        return pts.float(), conf.float(), out["src_pseudo_conf"].float()


class RetrievalGraph(nn.Module):
    """tokens (V, B, S, C) [+ clip (V, B, N, clip_dim)], view 0 = reference -> scores (V - 1, B, S) >= 1."""

    def __init__(self, i2p: I2P) -> None:
        super().__init__()
        self.model = i2p

    def forward(self, tokens: torch.Tensor, clip: torch.Tensor | None = None) -> torch.Tensor:
        # The tensor form of I2P.retrieval_logits (which takes a Python list, so its view count would be
        # frozen by tracing): enc_norm, optional CLIP fusion, the first corr_depth decoder layers, the head.
        model = self.model
        x = model.enc_norm(tokens.to(model.decoder_embed.weight.dtype))
        if clip is not None:
            x = model.clip_injection(x, clip.to(x.dtype))
        _, src_layers = model.run_decoder(x[:1], x[1:], model.config.corr_depth, last_ref_needed=False)
        logits = corr_logits(model.corr_score_norm, model.corr_score_proj, src_layers[-1])
        # Scores from float32 logits: 1 + exp overflows float16 for logits above ~11.
        return score_from_logit(logits.float())


class L2WGraph(nn.Module):
    """scene_tokens (R, B, S, C), scene_points (R, B, H, W, 3) world, key_tokens (K, B, S, C), key_points
    (K, B, H, W, 3) local, scene_masks (R, B, S) / key_masks (K, B, S) bool, True = masked ->
    scene_pts3d (R, B, H, W, 3), scene_conf (R, B, H, W), key_pts3d (K, B, H, W, 3) world, key_conf (K, B, H, W)
    and, with a CLIP3R head, scene_clip (R, B, g, g, clip_dim), key_clip (K, B, g, g, clip_dim).

    Masks are always inputs (all False = unmasked, bit-identical to no mask) so one graph serves both uses.
    """

    def __init__(self, l2w: L2W) -> None:
        super().__init__()
        self.model = l2w

    def forward(
        self,
        scene_tokens: torch.Tensor,
        scene_points: torch.Tensor,
        key_tokens: torch.Tensor,
        key_points: torch.Tensor,
        scene_masks: torch.Tensor,
        key_masks: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        dtype = self.model.decoder_embed.weight.dtype
        out = self.model.predict(
            scene_tokens.to(dtype), scene_points.to(dtype), key_tokens.to(dtype), key_points.to(dtype),
            scene_masks, key_masks,
        )
        names = ("scene_pts3d", "scene_conf", "key_pts3d", "key_conf", "scene_clip", "key_clip")
        return tuple(out[n].float() for n in names if n in out)


def graph_spec(name: str, with_clip: bool = False) -> GraphSpec:
    """The spec of graph ``name``; ``with_clip``: the I2P graphs take CLIP tokens, the L2W graph has CLIP outputs."""
    if name == "encoder":
        return GraphSpec(name, ("images",), ("tokens",), {"images": {0: "batch"}, "tokens": {0: "batch"}})
    window_axes = {"tokens": {0: "views", 1: "batch"}}
    if with_clip:
        window_axes["clip"] = {0: "views", 1: "batch", 2: "clip_tokens"}
    window_inputs = ("tokens", "clip") if with_clip else ("tokens",)
    if name == "i2p":
        axes = dict(window_axes, pts3d={0: "views", 1: "batch"}, conf={0: "views", 1: "batch"},
                    pseudo_conf={0: "src_views", 1: "batch"})
        return GraphSpec(name, window_inputs, ("pts3d", "conf", "pseudo_conf"), axes)
    if name == "retrieval":
        return GraphSpec(name, window_inputs, ("scores",), dict(window_axes, scores={0: "src_views", 1: "batch"}))
    if name == "l2w":
        inputs = ("scene_tokens", "scene_points", "key_tokens", "key_points", "scene_masks", "key_masks")
        outputs = ("scene_pts3d", "scene_conf", "key_pts3d", "key_conf")
        if with_clip:
            outputs += ("scene_clip", "key_clip")
        axes = {n: {0: "scene_views" if n.startswith("scene") else "key_views", 1: "batch"} for n in inputs + outputs}
        return GraphSpec(name, inputs, outputs, axes)
    raise ValueError(f"unknown graph {name!r}; known: {GRAPH_NAMES}")


def build_graph(name: str, i2p: I2P | None, l2w: L2W | None) -> tuple[nn.Module, GraphSpec]:
    """The wrapper module and spec of graph ``name`` around the given networks (``l2w`` only for "l2w")."""
    if name == "l2w":
        if l2w is None:
            raise ValueError("the l2w graph needs an L2W network")
        return L2WGraph(l2w).eval(), graph_spec(name, l2w.clip_head is not None)
    if name not in GRAPH_NAMES:
        raise ValueError(f"unknown graph {name!r}; known: {GRAPH_NAMES}")
    if i2p is None:
        raise ValueError(f"the {name} graph needs an I2P network")
    module = {"encoder": EncoderGraph, "i2p": I2PGraph, "retrieval": RetrievalGraph}[name](i2p)
    return module.eval(), graph_spec(name, name != "encoder" and i2p.clip_injection is not None)


def example_inputs(
    spec: GraphSpec, model: I2P | L2W, views: int = 3, batch: int = 1, clip_tokens: int = 8,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """Random inputs of the right shapes for ``spec`` (export tracing and tests).

    ``views``: window size for i2p / retrieval (>= 2); for l2w, scene frames = views - 1 (>= 1) and 2 keyframes,
    so that the two view axes differ in the traced example.
    """
    if views < 2:
        raise ValueError(f"views must be >= 2 (one reference and at least one source), got {views}")
    cfg = model.config
    s, c, hw = cfg.num_patches, cfg.enc_dim, cfg.img_size
    g = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device)

    if spec.name == "encoder":
        return {"images": rand(batch, 3, hw, hw).clamp(-1, 1)}
    if spec.name in ("i2p", "retrieval"):
        out = {"tokens": rand(views, batch, s, c)}
        if "clip" in spec.inputs:
            out["clip"] = rand(views, batch, clip_tokens, model.clip_injection.clip_dim)
        return out
    counts = {"scene": views - 1, "key": 2}
    out = {}
    for side, n in counts.items():
        out[f"{side}_tokens"] = rand(n, batch, s, c)
        out[f"{side}_points"] = rand(n, batch, hw, hw, 3)
    for side, n in counts.items():
        out[f"{side}_masks"] = torch.zeros(n, batch, s, dtype=torch.bool, device=device)
    return out
