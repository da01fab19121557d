"""The BEiT v2 pretraining model: masked image modeling of VQ-KD codes with patch aggregation.

Official ``VisionTransformerForMaskedImageModelingCLS`` (microsoft/unilm
``beit2/modeling_pretrain.py``) with the recipe's flags (shared relative position bias,
no absolute position embedding, shared LM head). The keys are the official ones, and the
tokenizer is added as ``tokenizer.*``:

``cls_token``, ``mask_token``, ``patch_embed.proj.*``, ``rel_pos_bias.relative_position_bias_table``,
``blocks.{i}.*`` (with ``gamma_1/2``), ``cls_pt_layers.{j}.*``, ``norm.*``, ``lm_head.*``,
``tokenizer.*`` (:class:`~beitv2_zoo.models.vqkd.VQKD`).

The forward pass for training (:meth:`BeitV2Pretrain.forward_mim`) works as follows:

1. Patch tokens at masked positions are replaced by ``mask_token``, then the CLS token is
   prepended.
2. All blocks run with the one shared relative position bias. The patch tokens after block
   ``early_layers`` (9 for base, 21 for large) are kept.
3. Patch aggregation: the **last** block's CLS token is joined to those early patch
   tokens, and the result passes through ``cls_pt_layers`` (2 blocks, same shared bias).
4. The shared ``norm`` and the shared ``lm_head`` (D → 8192 codes) are applied to both
   branches at the masked positions: :meth:`~BeitV2Pretrain.forward_mim` returns these logits.
5. The loss (:func:`beitv2_zoo.train.objectives.mim_loss`) is the cross-entropy against the
   tokenizer's codes (:meth:`~BeitV2Pretrain.targets`), summed over the two branches.

``model(x)`` and ``model.extract_feat(x)`` return what mmpretrain's ``BEiT`` returns: the raw
outputs (no final norm) after block ``early_layers`` and after the last block, each
``[B, 1 + N, D]``.
"""

from itertools import chain
from typing import Any

import torch
from torch import nn

from ..layers import Block, drop_path_schedule
from .beit import Beit
from .init import init_weights_, rescale_residuals_
from .vqkd import VQKD, VQKD_ARCHITECTURES

# A frozen tokenizer never trains, so a random one starts from random unit codes instead of awaiting k-means.
_BASE_TOKENIZER = {**VQKD_ARCHITECTURES["vqkd_base_encoder"], "kmeans_init": False}
MIM_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "beitv2_mim_base_patch16": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, early_layers=9,
                                    init_values=0.1, tokenizer=_BASE_TOKENIZER),
    "beitv2_mim_large_patch16": dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16, early_layers=21,
                                     init_values=1e-5, tokenizer=_BASE_TOKENIZER),
    "test_beitv2_mim_tiny": dict(patch_size=16, embed_dim=64, depth=4, num_heads=2, early_layers=3, vocab_size=64,
                                 tokenizer={**VQKD_ARCHITECTURES["test_vqkd_tiny"], "decoder_depth": 0, "kmeans_init": False}),
}
"""Settings of each named pretraining model (the tokenizer is VQ-KD's encoder and codebook, a ViT-B/16 for both sizes)."""


class BeitV2Pretrain(Beit):
    """BEiT v2 masked-image-modeling model with patch aggregation and a frozen VQ-KD tokenizer.

    Args:
        img_size: input side in pixels (the tokenizer sees the same size).
        patch_size: patch side in pixels.
        in_chans: input channels.
        embed_dim: token width ``D``.
        depth: backbone blocks.
        num_heads: attention heads.
        mlp_ratio: MLP width over ``D``.
        init_values: layer-scale initial value (0.1 base, 1e-5 large in the official recipes).
        early_layers: the aggregation branch reads the patch tokens after this many blocks.
        head_layers: blocks of the aggregation branch (``cls_pt_layers``).
        vocab_size: codes the LM head predicts; must equal the tokenizer's codebook size.
        tokenizer: :class:`VQKD` keywords of the attached target tokenizer, or ``None`` for
            none (then compute the code ids yourself: :func:`beitv2_zoo.train.objectives.mim_loss_from_ids`).
        drop_path_rate: stochastic depth of the last backbone block (linear from 0); the
            aggregation blocks continue the same schedule.
        norm_eps: LayerNorm epsilon.
    """

    init_bound: float = 0.02
    """The official pretraining code cuts its initial normals at ±1 std (microsoft/unilm#914)."""

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        init_values: float | None = 0.1,
        early_layers: int = 9,
        head_layers: int = 2,
        vocab_size: int = 8192,
        tokenizer: dict[str, Any] | None = None,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        if not 1 <= early_layers <= depth:
            raise ValueError(f"early_layers must be in 1..{depth}, got {early_layers}")
        super().__init__(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, num_classes=0, embed_dim=embed_dim,
            depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, use_abs_pos_emb=False, use_rel_pos_bias=False,
            use_shared_rel_pos_bias=True, init_values=init_values, global_pool="token", drop_path_rate=drop_path_rate,
            norm_eps=norm_eps,
        )
        self.early_layers = early_layers
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        rates = drop_path_schedule(drop_path_rate, max(depth, early_layers + head_layers))
        self.cls_pt_layers = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, drop_path=rates[early_layers + j], init_values=init_values,
                  norm_eps=norm_eps)
            for j in range(head_layers)
        )
        self.lm_head = nn.Linear(embed_dim, vocab_size)
        head_modules = chain(self.cls_pt_layers.modules(), self.lm_head.modules())
        init_weights_(head_modules, [self.mask_token], bound=self.init_bound)
        rescale_residuals_(self.cls_pt_layers, first_layer_id=early_layers + 1)

        self.tokenizer: VQKD | None = None
        if tokenizer is not None:
            self.tokenizer = VQKD(img_size=img_size, **tokenizer)
            if self.tokenizer.num_codes != vocab_size:
                raise ValueError(f"vocab_size={vocab_size} differs from the tokenizer's {self.tokenizer.num_codes} codes")
            self.tokenizer.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "BeitV2Pretrain":
        """Set training mode on everything except the tokenizer, which always stays in eval mode."""
        super().train(mode)
        if self.tokenizer is not None:
            self.tokenizer.eval()
        return self

    # ------------------------------------------------------------- helpers
    def get_classifier(self) -> nn.Module:
        """The LM head over the code vocabulary."""
        return self.lm_head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the LM head with a fresh one over ``num_classes`` codes (a new vocabulary).

        ``global_pool`` is there for :meth:`Beit.reset_classifier`'s signature; the LM head reads every
        patch token, so only ``None`` is accepted.

        To fine-tune a classifier from these weights, build the classifier instead:
        ``get_model('beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k', pretrained=<this file>, num_classes=n)``.
        """
        if global_pool is not None:
            raise ValueError("a pretraining model's LM head reads every patch token; it takes no global_pool")
        if self.tokenizer is not None and num_classes != self.tokenizer.num_codes:
            raise ValueError(f"the attached tokenizer has {self.tokenizer.num_codes} codes, not {num_classes}")
        self.lm_head = nn.Linear(self.embed_dim, num_classes, device=self.lm_head.weight.device)
        init_weights_([self.lm_head], bound=self.init_bound)

    # ------------------------------------------------------------- forward
    def _backbone(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """→ (raw output after block ``early_layers``, raw output after the last block, shared bias ``[H, L, L]``)."""
        last, (early,), shared_bias = self._run_blocks(x, mask, keep={self.early_layers - 1})
        return early, last, shared_bias

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``[B, C, H, W]`` (ImageNet-normalised) → raw block outputs, as mmpretrain returns them.

        Args:
            x: images.
            mask: optional ``[B, h, w]`` or ``[B, N]`` (bool or 0/1): patches replaced by ``mask_token``.

        Returns:
            ``(after block early_layers, after the last block)``, each ``[B, 1 + N, D]``, no final norm.
            The training pass is :meth:`forward_mim`.
        """
        early, last, _ = self._backbone(x, mask)
        return early, last

    def extract_feat(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        """mmpretrain's ``BEiT.extract_feat``: the same tuple as :meth:`forward` without a mask."""
        early, last, _ = self._backbone(x, None)
        return early, last

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        """Images (and optional mask) → all tokens after the last block and ``norm``, ``[B, 1 + N, D]``."""
        return self.norm(self._run_blocks(x, mask).last)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Normalised tokens ``[B, 1 + N, D]`` → code logits of every patch ``[B, N, vocab]`` (or the patch tokens)."""
        patches = tokens[:, 1:]
        return patches if pre_logits else self.lm_head(patches)

    def forward_mim(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training forward pass (steps 1-4 of the module docstring).

        Args:
            x: images ``[B, C, H, W]``, ImageNet-normalised.
            mask: ``[B, h, w]`` or ``[B, N]``, bool or 0/1; which patches to mask and predict.

        Returns:
            Code logits at the masked positions, ``[M, vocab]`` each (``M`` = masked patches in
            the batch, in row-major order): from the last block, and from the aggregation branch.
        """
        early, last, shared_bias = self._backbone(x, mask)
        aggregated = torch.cat([last[:, :1], early[:, 1:]], dim=1)
        for block in self.cls_pt_layers:
            aggregated = self._run_block(block, aggregated, shared_bias)
        selected = mask.reshape(mask.shape[0], -1).bool()
        main = self.norm(last)[:, 1:][selected]
        branch = self.norm(aggregated)[:, 1:][selected]
        return self.lm_head(main), self.lm_head(branch)

    @torch.no_grad()
    def targets(self, target_images: torch.Tensor) -> torch.Tensor:
        """What :meth:`forward_mim` learns to predict: the tokenizer's code ids ``[B, h, w]`` for
        images ``[B, 3, H, W]`` in [0, 1] (eval mode, no gradient)."""
        if self.tokenizer is None:
            raise RuntimeError("this model has no tokenizer attached; compute the code ids with a VQKD tokenizer")
        self.tokenizer.eval()
        return self.tokenizer.encode(target_images)
