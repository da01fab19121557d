"""BEiT + UPerNet semantic segmenter, laid out as the official microsoft/unilm segmentation checkpoints.

State-dict keys: ``backbone.cls_token``, ``backbone.patch_embed.proj.*``, ``backbone.blocks.{i}.*``
(the classifier's block names), ``backbone.fpn1.{0,1,3}.*``, ``backbone.fpn2.0.*``, ``decode_head.*``,
``auxiliary_head.*``. mmseg and transformers layouts are converted to it in :mod:`beitv2_zoo.checkpoint`.
"""

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ...errors import ModelConfigError
from ..beit import Beit
from .adapter import build_adapter
from .fcn_head import FcnHead
from .uper_head import UperHead

SEGMENTATION_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "beit_base_patch16_upernet": dict(
        patch_size=16, embed_dim=768, depth=12, num_heads=12, out_indices=(3, 5, 7, 11), channels=768, init_values=0.1),
    "beit_large_patch16_upernet": dict(
        patch_size=16, embed_dim=1024, depth=24, num_heads=16, out_indices=(7, 11, 15, 23), channels=1024,
        init_values=1e-6),
    # Tiny variant for tests and demos.
    "test_beit_tiny_upernet": dict(
        patch_size=16, embed_dim=64, depth=4, num_heads=2, out_indices=(0, 1, 2, 3), channels=32, aux_channels=16),
}
"""Width, depth, heads, tapped blocks and head width of each named segmenter; the rest are keywords of
:class:`BeitSegmenter`."""

DEFAULT_OUT_INDICES = {12: (3, 5, 7, 11), 24: (7, 11, 15, 23), 4: (0, 1, 2, 3)}
"""The tapped blocks of each registered depth (read by :mod:`beitv2_zoo.checkpoint.infer`)."""


class BeitBackbone(Beit):
    """The BEiT encoder without final norm, pooling or head, plus the multi-scale adapter ``fpn1..fpn4``.

    It always accepts any input size that is a multiple of the patch size (``dynamic_img_size``);
    at ``img_size`` the computation is the fixed-size one, bit for bit.

    Args:
        out_indices: the four blocks (from 0, ascending) whose patch tokens feed the adapter.
        **kwargs: :class:`~beitv2_zoo.models.Beit` keywords (``num_classes``, ``global_pool`` and
            ``dynamic_img_size`` are fixed here).
    """

    def __init__(self, out_indices: Sequence[int], **kwargs: Any) -> None:
        super().__init__(num_classes=0, global_pool="", dynamic_img_size=True, **kwargs)
        self.norm = nn.Identity()  # the official segmentation backbone has no final norm
        self.out_indices = tuple(int(i) for i in out_indices)
        self.build_adapter()

    def build_adapter(self) -> None:
        """(Re)create ``fpn1..fpn4`` with fresh weights (torch's default initialisation, as the official code)."""
        self.fpn1, self.fpn2, self.fpn3, self.fpn4 = build_adapter(self.embed_dim, self.patch_embed.patch_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        """Images ``[B, C, H, W]`` (``H, W`` multiples of ``p``) → four maps ``[B, D, h_i, w_i]`` at
        ``1/4, 1/8, 1/16, 1/32`` of the input (for ``p = 16`` and ``p = 8`` alike)."""
        maps = self.forward_intermediates(x, indices=list(self.out_indices), intermediates_only=True)
        return tuple(op(level) for op, level in zip((self.fpn1, self.fpn2, self.fpn3, self.fpn4), maps))


class BeitSegmenter(nn.Module):
    """BEiT backbone → multi-scale adapter → UPerNet decode head (+ an FCN auxiliary head for training).

    Args:
        img_size: the training crop side; inputs of any size that is a multiple of ``patch_size`` are accepted.
        patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio, init_values, use_abs_pos_emb,
        use_rel_pos_bias, use_shared_rel_pos_bias, drop_rate, attn_drop_rate, drop_path_rate, norm_eps:
            the encoder's settings (see :class:`~beitv2_zoo.models.Beit`).
        num_classes: classes ``K`` of the decode and auxiliary heads.
        out_indices: the four blocks (from 0, ascending) the adapter reads.
        channels: width of the UPerNet head.
        pool_scales: pooling-pyramid sides.
        auxiliary: build the auxiliary FCN head (its loss helps training; inference ignores it).
        aux_channels: width of the auxiliary head.
        aux_in_index: the pyramid level the auxiliary head reads (2: the ``1/16`` level).
        dropout_ratio: ``Dropout2d`` before each classifier.
    """

    task = "semantic-segmentation"
    rel_pos_resize = "cubic"
    """How :mod:`beitv2_zoo.checkpoint.adapt` resizes a checkpoint's relative position tables (the official
    segmentation fine-tuning interpolates them with 2-D cubic splines)."""

    def __init__(
        self,
        img_size: int = 512,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 150,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        init_values: float | None = 0.1,
        out_indices: Sequence[int] = (3, 5, 7, 11),
        use_abs_pos_emb: bool = False,
        use_rel_pos_bias: bool = True,
        use_shared_rel_pos_bias: bool = False,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
        channels: int = 768,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        auxiliary: bool = True,
        aux_channels: int = 256,
        aux_in_index: int = 2,
        dropout_ratio: float = 0.1,
    ) -> None:
        super().__init__()
        _check_settings(num_classes, out_indices, depth, patch_size, aux_in_index)
        self.num_classes = num_classes
        self.channels, self.pool_scales = channels, tuple(pool_scales)
        self.auxiliary, self.aux_channels, self.aux_in_index = auxiliary, aux_channels, aux_in_index
        self.dropout_ratio = dropout_ratio
        self.backbone = BeitBackbone(
            out_indices, img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
            depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, use_abs_pos_emb=use_abs_pos_emb,
            use_rel_pos_bias=use_rel_pos_bias, use_shared_rel_pos_bias=use_shared_rel_pos_bias,
            init_values=init_values, drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate, norm_eps=norm_eps)
        self.embed_dim = embed_dim
        self.output_stride = 4
        """Logits are this many times smaller than the input on each side (the adapter's finest level is 1/4)."""
        self.decode_head: UperHead
        self.auxiliary_head: FcnHead | None
        self._build_heads()
        self.weights_info: Any = None  # the WeightRecord the weights came from, set by get_model
        self.class_names: tuple[str, ...] | None = None  # set by get_model

    @property
    def img_size(self) -> int:
        """The training crop side (the relative position tables' native grid times the patch size)."""
        return self.backbone.patch_embed.img_size

    @property
    def patch_size(self) -> int:
        return self.backbone.patch_embed.patch_size

    def _build_heads(self) -> None:
        self.decode_head = UperHead([self.embed_dim] * 4, self.channels, self.num_classes, self.pool_scales,
                                    self.dropout_ratio)
        self.auxiliary_head = (FcnHead(self.embed_dim, self.aux_channels, self.num_classes, self.dropout_ratio)
                               if self.auxiliary else None)

    # ------------------------------------------------------------- helpers
    def reset_classifier(self, num_classes: int) -> None:
        """Fresh adapter, decode head and auxiliary head for ``num_classes`` classes (everything outside
        the transformer), on the device and in the dtype of the transformer's weights (the CPU when those
        are on the ``meta`` device)."""
        _check_settings(num_classes, self.backbone.out_indices, len(self.backbone.blocks), self.patch_size,
                        self.aux_in_index)
        reference = self.backbone.cls_token
        device = torch.device("cpu") if reference.is_meta else reference.device
        self.num_classes = num_classes
        with torch.device(device):
            self.backbone.build_adapter()
            self._build_heads()
        self.backbone.to(dtype=reference.dtype)  # the new adapter layers; the blocks are already in it
        for head in (self.decode_head, self.auxiliary_head):
            if head is not None:
                head.to(dtype=reference.dtype)

    def no_weight_decay(self) -> set[str]:
        """Parameter names kept out of weight decay besides 1-D tensors and biases: none. The official
        segmentation recipe checks the bare names ``cls_token`` / ``pos_embed``, which never match under
        the ``backbone.`` prefix, so ``backbone.cls_token`` is decayed there too."""
        return set()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute block activations in the backward pass to save memory."""
        self.backbone.set_grad_checkpointing(enable)

    def forward_intermediates(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        """The backbone's block outputs (see :meth:`Beit.forward_intermediates <beitv2_zoo.models.Beit.forward_intermediates>`)."""
        return self.backbone.forward_intermediates(x, *args, **kwargs)

    # ------------------------------------------------------------- forward
    def extract_feat(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Images ``[B, C, H, W]`` (normalised) → the adapter's four levels ``[B, D, H/4, W/4]`` … ``[B, D, H/32, W/32]``."""
        return self.backbone(x)

    def forward_with_auxiliary(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images ``[B, C, H, W]`` → ``(logits [B, K, H/4, W/4], auxiliary logits [B, K, H/16, W/16] or None)``."""
        levels = self.extract_feat(x)
        aux = self.auxiliary_head(levels[self.aux_in_index]) if self.auxiliary_head is not None else None
        return self.decode_head(levels), aux

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` (normalised; ``H, W`` multiples of the patch size) → decode logits
        ``[B, num_classes, H/4, W/4]`` (upsample them to the image size before the argmax)."""
        return self.decode_head(self.extract_feat(x))


def _check_settings(num_classes: int, out_indices: Sequence[int], depth: int, patch_size: int,
                    aux_in_index: int) -> None:
    if num_classes <= 0:
        raise ModelConfigError(f"a segmenter needs num_classes >= 1, got {num_classes}")
    indices = list(out_indices)
    if len(indices) != 4 or sorted(set(indices)) != indices or not all(0 <= i < depth for i in indices):
        raise ModelConfigError(
            f"out_indices must be 4 ascending block indices in 0..{depth - 1} (one per pyramid level), got {out_indices}")
    if patch_size not in (4, 8, 16):
        raise ModelConfigError(f"the segmentation adapter supports patch sizes 16, 8 and 4, got {patch_size}")
    if not 0 <= aux_in_index < 4:
        raise ModelConfigError(f"aux_in_index must name one of the 4 pyramid levels (0-3), got {aux_in_index}")
