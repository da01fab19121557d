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
   branches at the masked positions.
5. The loss is the cross-entropy against the tokenizer's codes, summed over the two branches.

``model(x)`` and ``model.extract_feat(x)`` return what mmpretrain's ``BEiT`` returns: the raw
outputs (no final norm) after block ``early_layers`` and after the last block, each
``[B, 1 + N, D]``.
"""

from itertools import chain
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import Block
from .beit import Beit
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


def _bert_trunc_normal_(tensor: torch.Tensor, std: float = 0.02) -> None:
    """Truncated normal cut at ±1 std: what the official *pretraining* code uses (microsoft/unilm#914)."""
    nn.init.trunc_normal_(tensor, std=std, a=-std, b=std)


def _init_module(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        _bert_trunc_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _rescale_residual_(block: Block, layer_id: int) -> None:
    block.attn.proj.weight.data.div_((2.0 * layer_id) ** 0.5)
    block.mlp.fc2.weight.data.div_((2.0 * layer_id) ** 0.5)


def _masked_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (logits.detach().argmax(dim=-1) == labels).float().mean()


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
            none (then pass code ids to :meth:`loss_from_ids`).
        drop_path_rate: stochastic depth of the last backbone block (linear from 0); the
            aggregation blocks continue the same schedule.
        norm_eps: LayerNorm epsilon.
    """

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
        schedule_length = max(depth, early_layers + head_layers)
        rates = [drop_path_rate * i / max(schedule_length - 1, 1) for i in range(schedule_length)]
        self.cls_pt_layers = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, drop_path=rates[early_layers + j], init_values=init_values,
                  norm_eps=norm_eps)
            for j in range(head_layers)
        )
        self.lm_head = nn.Linear(embed_dim, vocab_size)
        for module in chain(self.cls_pt_layers.modules(), self.lm_head.modules()):
            _init_module(module)
        _bert_trunc_normal_(self.mask_token)
        for j, block in enumerate(self.cls_pt_layers):
            _rescale_residual_(block, early_layers + j + 1)

        self.tokenizer: VQKD | None = None
        if tokenizer is not None:
            self.tokenizer = VQKD(img_size=img_size, **tokenizer)
            if self.tokenizer.num_codes != vocab_size:
                raise ValueError(f"vocab_size={vocab_size} differs from the tokenizer's {self.tokenizer.num_codes} codes")
            self.tokenizer.requires_grad_(False).eval()

    def _init_weights(self, head_init_scale: float) -> None:
        """The official pretraining initialisation of the backbone (called by :class:`Beit`; skipped on ``meta``)."""
        if self.cls_token.is_meta:
            return
        for module in self.modules():
            _init_module(module)
        _bert_trunc_normal_(self.cls_token)
        for parameter in self._rel_pos_tables():
            _bert_trunc_normal_(parameter)
        for layer_id, block in enumerate(self.blocks, start=1):
            _rescale_residual_(block, layer_id)

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

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the LM head with a fresh one over ``num_classes`` codes (a new vocabulary).

        To fine-tune a classifier from these weights, build the classifier instead:
        ``get_model('beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k', pretrained=<this file>, num_classes=n)``.
        """
        if self.tokenizer is not None and num_classes != self.tokenizer.num_codes:
            raise ValueError(f"the attached tokenizer has {self.tokenizer.num_codes} codes, not {num_classes}")
        self.lm_head = nn.Linear(self.embed_dim, num_classes, device=self.lm_head.weight.device)
        _init_module(self.lm_head)

    # ------------------------------------------------------------- forward
    def _embed(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``[B, C, H, W]`` and an optional mask ``[B, h, w]`` / ``[B, N]`` → tokens ``[B, 1 + N, D]``."""
        tokens = self.patch_embed(x)
        if mask is not None:
            weight = mask.reshape(tokens.shape[0], -1, 1).to(tokens.dtype)
            tokens = tokens * (1.0 - weight) + self.mask_token.to(tokens.dtype) * weight
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return self.pos_drop(tokens)

    def _backbone(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """→ (raw output after block ``early_layers``, raw output after the last block, shared bias ``[H, L, L]``)."""
        x = self._embed(x, mask)
        shared_bias = self.rel_pos_bias()
        early = x
        for i, block in enumerate(self.blocks, start=1):
            x = self._run_block(block, x, shared_bias)
            if i == self.early_layers:
                early = x
        return early, x, shared_bias

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, target_images: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor] | dict[str, torch.Tensor]:
        """Images ``[B, C, H, W]`` (ImageNet-normalised) → raw block outputs, as mmpretrain returns them.

        Args:
            x: images.
            mask: optional ``[B, h, w]`` or ``[B, N]`` (bool or 0/1): patches replaced by ``mask_token``.
            target_images: the tokenizer's view in [0, 1]; with it (and ``mask``) the call returns
                :meth:`loss` instead, so that a training step can go through ``forward`` (as
                ``DistributedDataParallel`` needs).

        Returns:
            ``(after block early_layers, after the last block)``, each ``[B, 1 + N, D]``, no final norm;
            or the loss dict when ``target_images`` is given.
        """
        if target_images is not None:
            if mask is None:
                raise ValueError("the pretraining loss needs a mask of the patches to predict")
            return self.loss(x, target_images, mask)
        early, last, _ = self._backbone(x, mask)
        return early, last

    def extract_feat(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        """mmpretrain's ``BEiT.extract_feat``: the same tuple as :meth:`forward` without a mask."""
        early, last, _ = self._backbone(x, None)
        return early, last

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Images (and optional mask) → all tokens after the last block and ``norm``, ``[B, 1 + N, D]``."""
        return self.norm(self._backbone(x, mask)[1])

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Normalised tokens ``[B, 1 + N, D]`` → code logits of every patch ``[B, N, vocab]`` (or the patch tokens)."""
        patches = tokens[:, 1:]
        return patches if pre_logits else self.lm_head(patches)

    def forward_mim(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training forward pass.

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

    # ----------------------------------------------------------------- loss
    @torch.no_grad()
    def targets(self, target_images: torch.Tensor) -> torch.Tensor:
        """The tokenizer's code ids ``[B, h, w]`` for images in [0, 1] (eval mode, no gradient)."""
        if self.tokenizer is None:
            raise RuntimeError("this model has no tokenizer attached; compute code ids yourself and call loss_from_ids")
        self.tokenizer.eval()
        return self.tokenizer.encode(target_images)

    def loss(self, images: torch.Tensor, target_images: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The BEiT v2 pretraining loss of one batch.

        Args:
            images: the model's view ``[B, 3, H, W]``, normalised with ImageNet mean/std.
            target_images: the tokenizer's view of the same crop, ``[B, 3, H, W]`` in [0, 1].
            mask: ``[B, h, w]`` or ``[B, N]``, the patches to mask and predict.

        Returns:
            See :meth:`loss_from_ids`.
        """
        return self.loss_from_ids(images, self.targets(target_images), mask)

    def loss_from_ids(self, images: torch.Tensor, target_ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss against given code ids ``[B, h, w]`` or ``[B, N]``.

        Returns:
            ``loss`` (= ``loss_1 + loss_2``), ``loss_1`` (cross-entropy of the last-block branch),
            ``loss_2`` (of the patch-aggregation branch), both means over the masked patches,
            and the code accuracies ``mlm_acc_1`` / ``mlm_acc_2``.
        """
        selected = mask.reshape(mask.shape[0], -1).bool()
        labels = target_ids.reshape(target_ids.shape[0], -1)[selected]
        logits_1, logits_2 = self.forward_mim(images, mask)
        loss_1, loss_2 = F.cross_entropy(logits_1.float(), labels), F.cross_entropy(logits_2.float(), labels)
        return {"loss": loss_1 + loss_2, "loss_1": loss_1, "loss_2": loss_2,
                "mlm_acc_1": _masked_accuracy(logits_1, labels), "mlm_acc_2": _masked_accuracy(logits_2, labels)}
