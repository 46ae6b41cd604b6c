"""The CLIP3R runner interface (:class:`~.protocol.Clip3rRunner`) on any graph backend.

Token handles are what :meth:`EngineRunner.encode` returns per image (a (1, S, C) float32 tensor on the
backend's device) and are passed back unchanged; everything else crosses the interface as float32 numpy on the
host. The reordering to the graphs' "view 0 is the reference" convention happens here, once, for every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from ov_mapping.models.clip3r import Clip3RConfig
from ov_mapping.models.clip3r.validation import check_clip_list, check_token_list, check_view_index

from .graphs import GraphSpec
from .protocol import Registration, ViewPointmap, check_model_images, check_pointmaps


class GraphBackend(Protocol):
    """What a backend provides: its device, the specs of its graphs and a named-tensor call."""

    backend: str
    device: torch.device

    @property
    def specs(self) -> dict[str, GraphSpec]: ...

    def run(self, name: str, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...


def _host(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


class EngineRunner:
    """CLIP3R inference through ``graphs``; ``config`` is the architecture the graphs were made from;
    ``clip_dim`` the channels of the I2P's CLIP injection input (None: no injection).

    ``retrieval_batch``: candidate scene frames per retrieval pass (they share one pass along the batch axis;
    bounds peak memory and, for TensorRT, must not exceed the profile's batch maximum).
    Shapes: S = config.num_patches, C = config.enc_dim, H = W = config.img_size.
    """

    def __init__(
        self, graphs: GraphBackend, config: Clip3RConfig, clip_dim: int | None = None, retrieval_batch: int = 16
    ) -> None:
        if ("clip" in graphs.specs["i2p"].inputs) != (clip_dim is not None):
            raise ValueError(f"clip_dim {clip_dim} does not fit the I2P graph inputs {graphs.specs['i2p'].inputs}")
        if isinstance(retrieval_batch, bool) or not isinstance(retrieval_batch, int) or retrieval_batch < 1:
            raise ValueError(f"retrieval_batch must be an int >= 1, got {retrieval_batch!r}")
        self.graphs = graphs
        self.config = config
        self.clip_dim = clip_dim
        self.retrieval_batch = retrieval_batch
        self.backend = graphs.backend

    def encode(self, images: np.ndarray) -> list[torch.Tensor]:
        """images (B, 3, H, W) float32 in [-1, 1] -> B token handles (1, S, C)."""
        images = check_model_images(images, self.config.img_size)
        batch = torch.from_numpy(np.ascontiguousarray(images)).to(self.graphs.device)
        tokens = self.graphs.run("encoder", {"images": batch})["tokens"]
        # clone: a slice would keep the whole batch's storage alive while any one frame is cached
        return [tokens[b : b + 1].clone() for b in range(len(tokens))]

    def i2p(
        self, tokens: Sequence[torch.Tensor], ref_index: int, clip_features: Sequence[torch.Tensor] | None = None
    ) -> list[ViewPointmap]:
        """I2P on a window of V >= 2 views (batch 1) -> V pointmaps in input order, in the reference camera frame.

        clip_features: V tensors (1, N, clip_dim), required exactly when the graphs have a CLIP injection.
        """
        inputs, order = self._window_inputs(tokens, ref_index, clip_features)
        if inputs["tokens"].shape[1] != 1:
            raise ValueError(f"i2p takes token handles of single images (1, S, C), got batch {inputs['tokens'].shape[1]}")
        out = self.graphs.run("i2p", inputs)
        pts, conf = _host(out["pts3d"][:, 0]), _host(out["conf"][:, 0])
        results: list[ViewPointmap | None] = [None] * len(order)
        for pos, view in enumerate(order):
            results[view] = ViewPointmap(pts[pos], conf[pos])
        return results

    def retrieval(
        self,
        candidates: Sequence[torch.Tensor],
        sources: Sequence[torch.Tensor],
        clip_features: tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]] | None = None,
    ) -> np.ndarray:
        """Retrieval scores (R, K, S) float32 >= 1: for each of R candidate scene frames, I2P's retrieval head on
        the window [candidate (reference), K sources]. clip_features: (candidates' (1, N, clip_dim) tensors,
        sources' tensors) when the graphs have a CLIP injection."""
        if len(candidates) == 0 or len(sources) == 0:
            raise ValueError(f"retrieval needs candidates and sources, got {len(candidates)} and {len(sources)}")
        chunks = []
        for start in range(0, len(candidates), self.retrieval_batch):
            stop = start + self.retrieval_batch
            ref = torch.cat(list(candidates[start:stop]))
            window = [ref, *(s.expand(len(ref), -1, -1) for s in sources)]
            clips = None
            if clip_features is not None:
                ref_clip = torch.cat(list(clip_features[0][start:stop]))
                clips = [ref_clip, *(c.expand(len(ref_clip), -1, -1) for c in clip_features[1])]
            inputs, _ = self._window_inputs(window, 0, clips)
            chunks.append(_host(self.graphs.run("retrieval", inputs)["scores"].transpose(0, 1)))
        return np.concatenate(chunks)

    def l2w(
        self,
        scene_tokens: Sequence[torch.Tensor],
        scene_pts3d: np.ndarray,
        key_tokens: Sequence[torch.Tensor],
        key_pts3d: np.ndarray,
        scene_masks: np.ndarray | None = None,
        key_masks: np.ndarray | None = None,
    ) -> list[Registration]:
        """Register K keyframes (local pointmaps (K, H, W, 3)) into the world of R scene frames (world pointmaps
        (R, H, W, 3)); returns K registrations in order. Optional bool patch masks (R, S) / (K, S), True = masked."""
        if "l2w" not in self.graphs.specs:
            raise ValueError("this runner was made without the L2W network / graph")
        cfg = self.config
        check_token_list(list(scene_tokens), "scene_tokens", cfg.num_patches, cfg.enc_dim, min_views=1)
        check_token_list(list(key_tokens), "key_tokens", cfg.num_patches, cfg.enc_dim, min_views=1)
        inputs = {"scene_tokens": torch.stack(list(scene_tokens)).float(),
                  "key_tokens": torch.stack(list(key_tokens)).float()}
        for side, pts, masks, count in (("scene", scene_pts3d, scene_masks, len(scene_tokens)),
                                        ("key", key_pts3d, key_masks, len(key_tokens))):
            inputs[f"{side}_points"] = self._pointmaps(f"{side}_pts3d", pts, count)
            inputs[f"{side}_masks"] = self._masks(f"{side}_masks", masks, count)
        if any(t.shape[1] != 1 for t in (inputs["scene_tokens"], inputs["key_tokens"])):
            raise ValueError("l2w takes token handles of single images (1, S, C)")
        out = self.graphs.run("l2w", inputs)
        pts, conf = _host(out["key_pts3d"][:, 0]), _host(out["key_conf"][:, 0])
        feats = _host(out["key_clip"][:, 0]) if "key_clip" in out else None
        return [Registration(pts[k], conf[k], None if feats is None else feats[k]) for k in range(len(key_tokens))]

    def _pointmaps(self, name: str, pts: object, count: int) -> torch.Tensor:
        pts = check_pointmaps(name, pts, count, self.config.img_size)
        return torch.from_numpy(np.ascontiguousarray(pts, dtype=np.float32))[:, None].to(self.graphs.device)

    def _masks(self, name: str, masks: object, count: int) -> torch.Tensor:
        shape = (count, self.config.num_patches)
        if masks is None:
            return torch.zeros(count, 1, shape[1], dtype=torch.bool, device=self.graphs.device)
        if not isinstance(masks, np.ndarray) or masks.dtype != np.bool_ or masks.shape != shape:
            got = f"{masks.dtype} {masks.shape}" if isinstance(masks, np.ndarray) else type(masks).__name__
            raise ValueError(f"{name} must be a bool numpy array {shape} (True = masked patch), got {got}")
        return torch.from_numpy(masks)[:, None].to(self.graphs.device)

    def _window_inputs(
        self, tokens: Sequence[torch.Tensor], ref_index: int, clip_features: Sequence[torch.Tensor] | None
    ) -> tuple[dict[str, torch.Tensor], list[int]]:
        """Checked, stacked graph inputs (V, B, ...) with the reference first, and the view order used."""
        cfg = self.config
        tokens = list(tokens)
        batch = check_token_list(tokens, "tokens", cfg.num_patches, cfg.enc_dim, min_views=2)
        check_view_index(ref_index, len(tokens), "ref_index")
        order = [ref_index] + [i for i in range(len(tokens)) if i != ref_index]
        inputs = {"tokens": torch.stack([tokens[i] for i in order]).float()}
        if clip_features is not None:
            if self.clip_dim is None:
                raise ValueError("clip_features were given but these graphs have no CLIP injection input")
            check_clip_list(list(clip_features), len(tokens), batch, self.clip_dim)
            # the stream keeps CLIP tokens on the host; they are small next to the encoder tokens
            inputs["clip"] = torch.stack([clip_features[i] for i in order]).float().to(self.graphs.device)
        elif self.clip_dim is not None:
            raise ValueError("these graphs were exported with a CLIP injection: clip_features are required")
        return inputs, order
