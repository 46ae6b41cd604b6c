"""Local-to-World (L2W): register keyframes' local pointmaps into the world frame of scene frames."""

from __future__ import annotations

import torch
from torch import nn

from .backbone import MultiviewBackbone
from .config import Clip3RConfig
from .heads import ClipFeatureHead
from .validation import check_pointmap_list, check_token_list, patch_masks_or_none


class L2W(MultiviewBackbone):
    """SLAM3R's Local2WorldModel (no encoder blocks) with an optional CLIP3R feature head (``clip_head.*``).

    Shapes: B batch, S = 196 patches, C = enc_dim (1024), D = dec_dim (768), H = W = 224, R scene frames
    (reference side, world pointmaps), K keyframes (source side, local pointmaps).
    """

    def __init__(self, config: Clip3RConfig, clip_dim: int | None = None) -> None:
        super().__init__(config, with_encoder_blocks=False)
        # Random like SLAM3R's; overwritten by every checkpoint.
        self.void_pe_token = nn.Parameter(torch.randn(1, 1, config.dec_dim))
        # "ponit" (sic): the spelling of the published checkpoint keys.
        self.ponit_embedder = nn.Conv2d(3, config.dec_dim, kernel_size=config.patch_size, stride=config.patch_size)
        self.clip_head: ClipFeatureHead | None = None if clip_dim is None else ClipFeatureHead(config.dec_dim, clip_dim)

    def forward(
        self,
        scene_tokens: list[torch.Tensor],
        scene_pts3d: list[torch.Tensor],
        key_tokens: list[torch.Tensor],
        key_pts3d: list[torch.Tensor],
        scene_masks: list[torch.Tensor] | None = None,
        key_masks: list[torch.Tensor] | None = None,
    ) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, torch.Tensor]]]:
        """Refine R >= 1 scene frames and register K >= 1 keyframes into their world frame.

        scene_tokens / key_tokens: raw I2P encoder tokens (B, 196, C), one per frame.
        scene_pts3d: world pointmaps (B, 224, 224, 3); key_pts3d: the keyframes' I2P local pointmaps (B, 224, 224, 3).
        scene_masks / key_masks: optional bool patch masks (B, 196) or (B, 14, 14), True = patch masked
        (its point embedding is replaced by ``void_pe_token``).
        Returns (scene results, key results): scene dicts have "pts3d" (B, 224, 224, 3) and "conf" (B, 224, 224);
        key dicts have "pts3d_in_other_view" (B, 224, 224, 3), world frame, and "conf". With a CLIP3R head every
        dict also has "clip_features" (B, 14, 14, clip_dim).
        """
        cfg = self.config
        batch = check_token_list(scene_tokens, "scene_tokens", cfg.num_patches, cfg.enc_dim, min_views=1)
        if check_token_list(key_tokens, "key_tokens", cfg.num_patches, cfg.enc_dim, min_views=1) != batch:
            raise ValueError("scene_tokens and key_tokens must share one batch size")
        check_pointmap_list(scene_pts3d, "scene_pts3d", len(scene_tokens), batch, cfg.img_size)
        check_pointmap_list(key_pts3d, "key_pts3d", len(key_tokens), batch, cfg.img_size)
        scene_masks = patch_masks_or_none(scene_masks, "scene_masks", len(scene_tokens), batch, cfg.grid_size)
        key_masks = patch_masks_or_none(key_masks, "key_masks", len(key_tokens), batch, cfg.grid_size)
        out = self.predict(
            torch.stack(scene_tokens),
            torch.stack(scene_pts3d),
            torch.stack(key_tokens),
            torch.stack(key_pts3d),
            None if scene_masks is None else torch.stack(scene_masks),
            None if key_masks is None else torch.stack(key_masks),
        )
        scene = [self._view_result(out, "scene", i, "pts3d") for i in range(len(scene_tokens))]
        keys = [self._view_result(out, "key", i, "pts3d_in_other_view") for i in range(len(key_tokens))]
        return scene, keys

    def predict(
        self,
        scene_tokens: torch.Tensor,
        scene_pts3d: torch.Tensor,
        key_tokens: torch.Tensor,
        key_pts3d: torch.Tensor,
        scene_masks: torch.Tensor | None = None,
        key_masks: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Tensor-in / tensor-out core of :meth:`forward` (the form to trace or export).

        scene_tokens (R, B, S, C), scene_pts3d (R, B, H, W, 3), key_tokens (K, B, S, C), key_pts3d (K, B, H, W, 3),
        masks (R, B, S) / (K, B, S) bool or None. Returns "scene_pts3d" (R, B, H, W, 3), "scene_conf" (R, B, H, W),
        "key_pts3d" (K, B, H, W, 3), "key_conf" (K, B, H, W), and with a CLIP3R head "scene_clip"
        (R, B, 14, 14, clip_dim) and "key_clip" (K, B, 14, 14, clip_dim).
        """
        cfg = self.config
        scene_pe = self.embed_points(scene_pts3d, scene_masks)
        key_pe = self.embed_points(key_pts3d, key_masks)
        scene, key_layers = self.run_decoder(
            self.enc_norm(scene_tokens), self.enc_norm(key_tokens), cfg.dec_depth, scene_pe, key_pe
        )
        scene = self.dec_norm(scene)
        key = self.dec_norm(key_layers[-1])
        scene_pts, scene_conf = self.downstream_head1(scene, cfg.grid_size)
        key_pts, key_conf = self.downstream_head2(key, cfg.grid_size)
        out = {"scene_pts3d": scene_pts, "scene_conf": scene_conf, "key_pts3d": key_pts, "key_conf": key_conf}
        if self.clip_head is not None:
            out["scene_clip"] = self.clip_head(scene, cfg.grid_size)
            out["key_clip"] = self.clip_head(key, cfg.grid_size)
        return out

    def embed_points(self, pts3d: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """Pointmaps (V, B, H, W, 3) -> point embeddings (V, B, S, D); masked patches (V, B, S) take ``void_pe_token``."""
        emb = self.ponit_embedder(pts3d.flatten(0, 1).permute(0, 3, 1, 2))  # (V * B, D, h, w)
        emb = emb.flatten(2).transpose(1, 2).unflatten(0, (pts3d.shape[0], -1))
        if masks is None:
            return emb
        return torch.where(masks.unsqueeze(-1), self.void_pe_token.to(emb.dtype), emb)

    @staticmethod
    def _view_result(out: dict[str, torch.Tensor], side: str, i: int, pts_key: str) -> dict[str, torch.Tensor]:
        res = {pts_key: out[f"{side}_pts3d"][i], "conf": out[f"{side}_conf"][i]}
        if f"{side}_clip" in out:
            res["clip_features"] = out[f"{side}_clip"][i]
        return res
