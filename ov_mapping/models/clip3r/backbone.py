"""Parts shared by I2P and L2W: patch embedding, ``enc_norm``, the multi-view decoder and the two heads.

Submodules are assigned in the SLAM3R checkpoints' order, so ``state_dict()`` lists keys in the same order.
Naming: the *reference* side (``mv_dec_blocks1``, ``downstream_head1``) defines the coordinate frame; the
*source* side (``mv_dec_blocks2``, ``downstream_head2``) is expressed in it. Each side attends only to the other.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import LAYER_NORM_EPS, MultiviewDecoderBlock
from .config import Clip3RConfig
from .encoder import PatchEmbed, build_encoder_blocks
from .heads import LinearPts3dHead
from .rope import patch_grid_positions, rope_tables


class MultiviewBackbone(nn.Module):
    """Base of :class:`~.i2p.I2P` and :class:`~.l2w.L2W`; not used on its own."""

    def __init__(self, config: Clip3RConfig, with_encoder_blocks: bool) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config.enc_dim, config.patch_size)
        if with_encoder_blocks:
            self.enc_blocks = build_encoder_blocks(config)
        self.enc_norm = nn.LayerNorm(config.enc_dim, eps=LAYER_NORM_EPS)
        self.decoder_embed = nn.Linear(config.enc_dim, config.dec_dim)
        self.mv_dec_blocks1 = self._decoder_blocks()
        self.mv_dec_blocks2 = self._decoder_blocks()
        self.dec_norm = nn.LayerNorm(config.dec_dim, eps=LAYER_NORM_EPS)
        self.downstream_head1 = LinearPts3dHead(config.dec_dim, config.patch_size)
        self.downstream_head2 = LinearPts3dHead(config.dec_dim, config.patch_size)

    def _decoder_blocks(self) -> nn.ModuleList:
        cfg = self.config
        return nn.ModuleList(
            MultiviewDecoderBlock(cfg.dec_dim, cfg.dec_heads, cfg.mlp_ratio) for _ in range(cfg.dec_depth)
        )

    def grid_rope_tables(self, head_dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos / sin (S, head_dim) of this model's patch grid, positions starting at (0, 0)."""
        grid = self.config.grid_size
        return rope_tables(patch_grid_positions(grid, grid, device), head_dim, self.config.rope_base)

    def run_decoder(
        self,
        ref: torch.Tensor,
        src: torch.Tensor,
        num_layers: int,
        ref_pe: torch.Tensor | None = None,
        src_pe: torch.Tensor | None = None,
        last_ref_needed: bool = True,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run ``num_layers`` decoder layers (no ``dec_norm``).

        ref (R, B, S, enc_dim) and src (Ns, B, S, enc_dim): ``enc_norm``-ed encoder tokens.
        ref_pe (R, B, S, dec_dim) / src_pe (Ns, B, S, dec_dim): optional embeddings added to the input of EVERY
        layer (L2W's point embedding). ``last_ref_needed=False`` skips the reference side of the last layer,
        which nothing reads when only the source side is wanted (retrieval).
        Returns the reference output (R, B, S, dec_dim) of the last computed reference layer and the source
        outputs of every layer, a list of ``num_layers`` tensors (Ns, B, S, dec_dim).
        """
        cos, sin = self.grid_rope_tables(self.config.dec_dim // self.config.dec_heads, ref.device)
        ref = self.decoder_embed(ref)
        src = self.decoder_embed(src)
        src_outputs = []
        for i in range(num_layers):
            ref_in = ref if ref_pe is None else ref + ref_pe
            src_in = src if src_pe is None else src + src_pe
            src = self.mv_dec_blocks2[i](src_in, ref_in, cos, sin)
            if last_ref_needed or i < num_layers - 1:
                ref = self.mv_dec_blocks1[i](ref_in, src_in, cos, sin)
            src_outputs.append(src)
        return ref, src_outputs
