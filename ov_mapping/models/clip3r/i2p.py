"""Image-to-Points (I2P): a window of views -> pointmaps of all views in the reference view's camera frame."""

from __future__ import annotations

import torch

from .backbone import MultiviewBackbone
from .config import Clip3RConfig
from .encoder import run_encoder
from .injection import ClipInjection
from .retrieval import build_corr_score_layers, corr_logits, score_from_logit
from .validation import check_clip_list, check_images, check_token_list, check_view_index


class I2P(MultiviewBackbone):
    """SLAM3R's Image2PointsModel with an optional Ov3R CLIP injection (``clip_injection.*``, new keys only).

    Shapes: B batch, S = 196 patches, C = enc_dim (1024 full size), D = dec_dim (768), H = W = 224,
    Ns = number of source (non-reference) views, N = CLIP tokens per view.
    """

    def __init__(self, config: Clip3RConfig, clip_dim: int | None = None) -> None:
        super().__init__(config, with_encoder_blocks=True)
        self.corr_score_norm, self.corr_score_proj = build_corr_score_layers(config.dec_dim)
        self.clip_injection: ClipInjection | None = (
            None if clip_dim is None else ClipInjection(config.enc_dim, clip_dim)
        )

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, 224, 224) in [-1, 1] -> raw encoder tokens (B, 196, C), before ``enc_norm``.

        Callers cache these per frame; I2P and L2W each apply their own ``enc_norm``.
        """
        check_images(images, self.config.img_size)
        cos, sin = self.grid_rope_tables(self.config.enc_dim // self.config.enc_heads, images.device)
        return run_encoder(self.patch_embed, self.enc_blocks, images, cos, sin)

    def forward(
        self,
        tokens: list[torch.Tensor],
        ref_index: int,
        clip_features: list[torch.Tensor] | None = None,
        return_pseudo_conf: bool = False,
    ) -> list[dict[str, torch.Tensor]]:
        """Reconstruct a window of V >= 2 views in the reference camera frame.

        tokens: V raw encoder tokens (B, 196, C) from :meth:`encode`. ref_index: the reference view.
        clip_features: optional, V tensors (B, N, clip_dim) (e.g. F_oCLIP pooled by
        :func:`~.injection.pool_feature_map_to_patches`); needs a model built with ``clip_dim``.
        Returns one dict per view, in input order: the reference has "pts3d" (B, 224, 224, 3), the others
        "pts3d_in_other_view" (B, 224, 224, 3); every view has "conf" (B, 224, 224) >= 1. With
        ``return_pseudo_conf`` the source views also get "pseudo_conf" (B, 196): SLAM3R's raw retrieval logit
        read from decoder layer ``corr_depth`` of this full pass (after ``dec_norm`` if that is the last layer).
        """
        ref, src, ref_clip, src_clip = self._split_views(tokens, ref_index, clip_features)
        out = self.predict(ref, src, ref_clip, src_clip)
        results: list[dict[str, torch.Tensor]] = []
        src_i = 0
        for view in range(len(tokens)):
            if view == ref_index:
                results.append({"pts3d": out["ref_pts3d"], "conf": out["ref_conf"]})
                continue
            res = {"pts3d_in_other_view": out["src_pts3d"][src_i], "conf": out["src_conf"][src_i]}
            if return_pseudo_conf:
                res["pseudo_conf"] = out["src_pseudo_conf"][src_i]
            results.append(res)
            src_i += 1
        return results

    def predict(
        self,
        ref_tokens: torch.Tensor,
        src_tokens: torch.Tensor,
        ref_clip: torch.Tensor | None = None,
        src_clip: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Tensor-in / tensor-out core of :meth:`forward` (the form to trace or export).

        ref_tokens (B, S, C) and src_tokens (Ns, B, S, C): raw encoder tokens. ref_clip (B, N, clip_dim) and
        src_clip (Ns, B, N, clip_dim): optional CLIP tokens, both or neither.
        Returns "ref_pts3d" (B, H, W, 3), "ref_conf" (B, H, W), "src_pts3d" (Ns, B, H, W, 3),
        "src_conf" (Ns, B, H, W) and "src_pseudo_conf" (Ns, B, S).
        """
        if (ref_clip is None) != (src_clip is None):
            raise ValueError("give CLIP tokens for both the reference and the source views, or for neither")
        ref = self._fuse(self.enc_norm(ref_tokens), ref_clip).unsqueeze(0)
        src = self._fuse(self.enc_norm(src_tokens), src_clip)
        ref, src_layers = self.run_decoder(ref, src, self.config.dec_depth)
        ref = self.dec_norm(ref)
        src_layers[-1] = self.dec_norm(src_layers[-1])
        ref_pts, ref_conf = self.downstream_head1(ref, self.config.grid_size)
        src_pts, src_conf = self.downstream_head2(src_layers[-1], self.config.grid_size)
        pseudo = corr_logits(self.corr_score_norm, self.corr_score_proj, src_layers[self.config.corr_depth - 1])
        return {
            "ref_pts3d": ref_pts[0],
            "ref_conf": ref_conf[0],
            "src_pts3d": src_pts,
            "src_conf": src_conf,
            "src_pseudo_conf": pseudo,
        }

    def retrieval_logits(
        self,
        tokens: list[torch.Tensor],
        ref_index: int,
        depth: int | None = None,
        clip_features: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Raw per-patch retrieval logits (Ns, B, 196) of every source view against the reference view.

        tokens: V >= 2 raw encoder tokens (B, 196, C). Only the first ``depth`` decoder layers run
        (default ``corr_depth`` = 2), without ``dec_norm``; the source side of layer ``depth`` feeds
        ``corr_score_norm`` + ``corr_score_proj``. Source views keep input order with the reference removed.
        """
        depth = self.config.corr_depth if depth is None else depth
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= self.config.dec_depth:
            raise ValueError(f"depth must be an int in [1, {self.config.dec_depth}], got {depth!r}")
        ref, src, ref_clip, src_clip = self._split_views(tokens, ref_index, clip_features)
        ref = self._fuse(self.enc_norm(ref), ref_clip).unsqueeze(0)
        src = self._fuse(self.enc_norm(src), src_clip)
        _, src_layers = self.run_decoder(ref, src, depth, last_ref_needed=False)
        return corr_logits(self.corr_score_norm, self.corr_score_proj, src_layers[-1])

    def retrieval_scores(
        self,
        tokens: list[torch.Tensor],
        ref_index: int,
        depth: int | None = None,
        clip_features: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Per-patch retrieval scores 1 + exp(logit) >= 1, shape (Ns, B, 196); see :meth:`retrieval_logits`."""
        return score_from_logit(self.retrieval_logits(tokens, ref_index, depth, clip_features))

    def _fuse(self, tokens: torch.Tensor, clip: torch.Tensor | None) -> torch.Tensor:
        """Apply the CLIP injection to normalised tokens (..., S, C) when CLIP tokens (..., N, clip_dim) are given."""
        if clip is None:
            return tokens
        if self.clip_injection is None:
            raise ValueError("CLIP features were given but this I2P was built without clip_dim (no CLIP injection)")
        return self.clip_injection(tokens, clip)

    def _split_views(
        self, tokens: list[torch.Tensor], ref_index: int, clip_features: list[torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Check inputs; return ref (B, S, C), src (Ns, B, S, C) and the matching CLIP tokens or Nones."""
        cfg = self.config
        batch = check_token_list(tokens, "tokens", cfg.num_patches, cfg.enc_dim, min_views=2)
        check_view_index(ref_index, len(tokens), "ref_index")
        src_ids = [i for i in range(len(tokens)) if i != ref_index]
        ref = tokens[ref_index]
        src = torch.stack([tokens[i] for i in src_ids])
        if clip_features is None:
            return ref, src, None, None
        if self.clip_injection is None:
            raise ValueError("clip_features were given but this I2P was built without clip_dim (no CLIP injection)")
        check_clip_list(clip_features, len(tokens), batch, self.clip_injection.clip_dim)
        return ref, src, clip_features[ref_index], torch.stack([clip_features[i] for i in src_ids])
