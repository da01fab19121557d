"""The BEiT / BEiT v2 vision transformer and image classifier.

Parameter names follow the official microsoft/unilm code (``blocks.{i}.attn.q_bias``,
``gamma_1``, ``fc_norm``, ``head``), which is this package's canonical layout; the
mmpretrain and timm layouts are converted to it in :mod:`beitv2_zoo.checkpoint`.
"""

from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..layers import Block, PatchEmbed, RelativePositionBias, drop_path_schedule, resample_abs_pos_embed
from .init import init_weights_, rescale_residuals_

BEIT_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "beit_base_patch16": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "beit_large_patch16": dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16),
    # Tiny variant for tests and demos: same code paths, a thousandth of the compute.
    "test_beit_tiny": dict(patch_size=16, embed_dim=64, depth=4, num_heads=2),
}
"""Width, depth and heads of each named BEiT classifier; every other setting is a keyword of :class:`Beit`."""


class BlockOutputs(NamedTuple):
    """What :meth:`Beit._run_blocks` returns.

    Attributes:
        last: the output of the last block run, ``[B, 1 + N, D]`` (no final norm).
        kept: the outputs of the blocks asked for, in block order, each ``[B, 1 + N, D]``.
        shared_bias: the relative position bias every block got, ``[H, 1 + N, 1 + N]``, or ``None``.
    """

    last: torch.Tensor
    kept: list[torch.Tensor]
    shared_bias: torch.Tensor | None


class Beit(nn.Module):
    """BEiT vision transformer with a linear classification head.

    ``global_pool='avg'`` is the BEiT v2 / v1 fine-tuned classifier: the patch tokens
    (CLS excluded) are averaged and normalised by ``fc_norm`` (mmpretrain's ``ln2``).
    ``global_pool='token'`` takes the CLS token after the final ``norm``.

    Args:
        img_size: input side in pixels; a multiple of ``patch_size``.
        patch_size: patch side in pixels.
        in_chans: input channels.
        num_classes: classes of the linear head; ``0`` gives features only.
        embed_dim: token width ``D``.
        depth: number of transformer blocks.
        num_heads: attention heads.
        mlp_ratio: MLP width over ``D``.
        use_abs_pos_emb: learn an absolute position embedding ``pos_embed``.
        use_rel_pos_bias: each block has its own relative position bias table.
        use_shared_rel_pos_bias: one table ``rel_pos_bias`` shared by all blocks.
        init_values: layer-scale initial value; ``None``/``0`` for no layer scale.
        global_pool: ``'avg'``, ``'token'``, or ``''`` (no pooling: the head reads every token, as in timm).
        drop_rate: dropout after the position embedding, after each attention projection and after each
            MLP, where the official code applies it (there is none before the head).
        attn_drop_rate: attention-weight dropout.
        drop_path_rate: stochastic depth of the last block (linear from 0).
        norm_eps: LayerNorm epsilon.
        head_init_scale: the freshly initialised head is multiplied by this.
        dynamic_img_size: accept inputs of any height and width that are multiples of ``patch_size``:
            the patch grid is read from the input, and the relative position tables (and ``pos_embed``)
            are resized on the fly as the checkpoint loader resizes them for another ``img_size``.
            ``False`` (the default) accepts only ``img_size`` inputs; at that size both agree bit for bit.
    """

    init_bound: float = 2.0
    """Absolute truncation bound of the initial normals (see :func:`~beitv2_zoo.models.init.init_weights_`)."""

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        use_abs_pos_emb: bool = False,
        use_rel_pos_bias: bool = True,
        use_shared_rel_pos_bias: bool = False,
        init_values: float | None = 0.1,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
        head_init_scale: float = 0.001,
        dynamic_img_size: bool = False,
    ) -> None:
        super().__init__()
        if global_pool not in ("avg", "token", ""):
            raise ValueError(f"global_pool must be 'avg', 'token' or '', got {global_pool!r}")
        self.num_classes = num_classes
        self.num_features = self.embed_dim = embed_dim
        self.global_pool = global_pool
        self.num_prefix_tokens = 1
        self.grad_checkpointing = False
        self.dynamic_img_size = dynamic_img_size

        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim, strict_img_size=not dynamic_img_size)
        grid = self.patch_embed.grid_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.mask_token: nn.Parameter | None = None  # masked image modeling adds one (BeitV2Pretrain)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim)) if use_abs_pos_emb else None
        self.pos_drop = nn.Dropout(drop_rate)
        self.rel_pos_bias = RelativePositionBias(grid, num_heads) if use_shared_rel_pos_bias else None

        self.blocks = nn.ModuleList(
            Block(
                embed_dim,
                num_heads,
                mlp_ratio,
                drop_path=rate,
                init_values=init_values,
                window_size=grid if use_rel_pos_bias else None,
                norm_eps=norm_eps,
                attn_drop=attn_drop_rate,
                proj_drop=drop_rate,
            )
            for rate in drop_path_schedule(drop_path_rate, depth)
        )
        # timm's per-block feature metadata (read by beitv2_zoo.models.features and by timm's own wrappers)
        self.feature_info = [dict(module=f"blocks.{i}", num_chs=embed_dim, reduction=patch_size) for i in range(depth)]
        use_fc_norm = global_pool == "avg"
        self.norm = nn.Identity() if use_fc_norm else nn.LayerNorm(embed_dim, eps=norm_eps)
        self.fc_norm = nn.LayerNorm(embed_dim, eps=norm_eps) if use_fc_norm else None
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

        tables = [p for n, p in self.named_parameters() if n.endswith("relative_position_bias_table")]
        init_weights_(self.modules(), [self.cls_token, self.pos_embed, *tables], bound=self.init_bound)
        rescale_residuals_(self.blocks)
        if isinstance(self.head, nn.Linear) and not self.head.weight.is_meta:
            self.head.weight.data.mul_(head_init_scale)
            self.head.bias.data.mul_(head_init_scale)
        self.weights_info: Any = None  # the WeightRecord the weights came from, set by get_model

    # ------------------------------------------------------------- helpers
    def no_weight_decay(self) -> set[str]:
        """Parameter names the official recipe excludes from weight decay (besides 1-D tensors)."""
        return {"pos_embed", "cls_token"}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute block activations in the backward pass to save memory."""
        self.grad_checkpointing = enable

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm's parameter-group regexes (``timm.optim`` layer decay reads them).

        Group 0 (``stem``) is the embedding (``cls_token``, ``mask_token``, ``pos_embed``, ``patch_embed``,
        the shared ``rel_pos_bias``); then one group per block; unmatched parameters (``fc_norm``,
        ``head``) form the last group. ``coarse`` is accepted for timm's signature and changes nothing.
        """
        return dict(
            stem=r"^cls_token|^mask_token|^pos_embed|^patch_embed|^rel_pos_bias",
            blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))],
        )

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the head with a fresh ``Linear(D, num_classes)`` (``0``: no head).

        ``global_pool`` (``'avg'``, ``'token'`` or ``''``), when given, changes the pooling as in timm;
        the norms stay where they are (``fc_norm`` after pooling, if the model has one).
        """
        if global_pool is not None:
            if global_pool not in ("avg", "token", ""):
                raise ValueError(f"global_pool must be 'avg', 'token' or '', got {global_pool!r}")
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        init_weights_([self.head], bound=self.init_bound)

    # ------------------------------------------------------------- forward
    def _embed(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``[B, C, H, W]`` → tokens with CLS first, ``[B, 1 + N, D]``.

        With ``mask`` (``[B, h, w]`` or ``[B, N]``, bool or 0/1) the masked patches are replaced
        by ``mask_token`` first; only a model with a mask token takes one.
        """
        tokens = self.patch_embed(x)
        if mask is not None:
            if self.mask_token is None:
                raise ValueError("this model has no mask token; masked inputs need a BeitV2Pretrain model")
            weight = mask.reshape(tokens.shape[0], -1, 1).to(tokens.dtype)
            tokens = tokens * (1.0 - weight) + self.mask_token.to(tokens.dtype) * weight
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        if self.pos_embed is not None:
            pos_embed: torch.Tensor = self.pos_embed
            if self.dynamic_img_size:
                grid = self.patch_embed.feat_size(x.shape[-2:])
                pos_embed = resample_abs_pos_embed(pos_embed, grid, self.patch_embed.grid_size, self.num_prefix_tokens)
            tokens = tokens + pos_embed
        return self.pos_drop(tokens)

    def _grid(self, x: torch.Tensor) -> tuple[int, int] | None:
        """The patch grid of images ``x`` for the blocks, or ``None`` (the build grid) without ``dynamic_img_size``."""
        return self.patch_embed.feat_size(x.shape[-2:]) if self.dynamic_img_size else None

    def _run_block(
        self, block: Block, x: torch.Tensor, shared_bias: torch.Tensor | None, grid: tuple[int, int] | None = None
    ) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, x, shared_bias, grid, use_reentrant=False)
        return block(x, shared_bias, grid)

    def _run_blocks(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, keep: Collection[int] = (), depth: int | None = None
    ) -> BlockOutputs:
        """The one block loop: embed the images, then run the first ``depth`` blocks (all by default)
        with the one shared relative position bias.

        Args:
            x: images ``[B, C, H, W]``.
            mask: optional patch mask (see :meth:`_embed`).
            keep: indices (from 0) of the blocks whose outputs to keep.
            depth: how many blocks to run.
        """
        grid = self._grid(x)
        tokens = self._embed(x, mask)
        shared_bias = self.rel_pos_bias(grid) if self.rel_pos_bias is not None else None
        kept = []
        for i, block in enumerate(self.blocks[:depth]):
            tokens = self._run_block(block, tokens, shared_bias, grid)
            if i in keep:
                kept.append(tokens)
        return BlockOutputs(tokens, kept, shared_bias)

    def _block_index(self, index: int) -> int:
        """``index`` (negative counts from the end) as an index from 0."""
        depth = len(self.blocks)
        if not -depth <= index < depth:
            raise IndexError(f"block index {index} is out of range for a model with {depth} blocks")
        return index % depth

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` → all tokens after the last block and ``norm``, ``[B, 1 + N, D]``."""
        return self.norm(self._run_blocks(x).last)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``[B, 1 + N, D]`` → the global feature ``[B, D]`` the head reads (``fc_norm`` applied if present;
        ``global_pool=''``: the tokens themselves)."""
        if self.global_pool == "avg":
            feature = tokens[:, self.num_prefix_tokens :].mean(dim=1)
        elif self.global_pool == "token":
            feature = tokens[:, 0]
        else:  # '': no pooling, every token [B, 1 + N, D]
            feature = tokens
        return feature if self.fc_norm is None else self.fc_norm(feature)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Tokens ``[B, 1 + N, D]`` → logits ``[B, num_classes]``, or the pooled feature ``[B, D]``."""
        feature = self.pool(tokens)
        return feature if pre_logits else self.head(feature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` (normalised) → logits ``[B, num_classes]``."""
        return self.forward_head(self.forward_features(x))

    def extract_feat(self, x: torch.Tensor, stage: str = "neck") -> tuple[torch.Tensor, ...] | torch.Tensor:
        """mmpretrain's ``ImageClassifier.extract_feat``.

        Args:
            x: images ``[B, C, H, W]``, normalised.
            stage: ``'backbone'`` or ``'neck'`` → a one-element tuple ``(feature [B, D],)``;
                ``'pre_logits'`` → the feature tensor ``[B, D]`` itself.

        The feature is the pooled, normalised representation the head reads
        (mmpretrain's ``ln2(mean of patch tokens)``, the official ``fc_norm``).
        """
        if stage not in ("backbone", "neck", "pre_logits"):
            raise ValueError(f"stage must be 'backbone', 'neck' or 'pre_logits', got {stage!r}")
        feature = self.pool(self.forward_features(x))
        return feature if stage == "pre_logits" else (feature,)

    def _take_indices(self, indices: int | Sequence[int] | None) -> list[int]:
        """timm's ``feature_take_indices``: ``None`` → every block, an int ``n`` → the last ``n`` blocks,
        a sequence → those blocks (negative counts from the end); as indices from 0, in the order given."""
        depth = len(self.blocks)
        if indices is None:
            indices = depth
        if isinstance(indices, int):
            if not 0 < indices <= depth:
                raise IndexError(f"last-n indices={indices} is out of range (1 to {depth})")
            return list(range(depth - indices, depth))
        taken = [self._block_index(i) for i in indices]
        if not taken:
            raise ValueError(f"no blocks requested (indices={indices!r})")
        return taken

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        return_prefix_tokens: bool = False,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Any] | tuple[torch.Tensor, list[Any]]:
        """timm's ``forward_intermediates``: the outputs of chosen blocks, as feature maps or patch tokens.

        Args:
            x: images ``[B, C, H, W]``.
            indices: block indices (negative counts from the end), an int ``n`` for the last ``n``
                blocks, or ``None`` for all blocks.
            return_prefix_tokens: each intermediate becomes a pair ``(patches, cls [B, 1, D])``.
            norm: apply the final ``norm`` (identity for ``'avg'`` pooling) to each intermediate.
            stop_early: run no block after the last one asked for (the final features are then
                the ``norm`` of that block's output).
            output_fmt: ``'NCHW'``: maps ``[B, D, H/p, W/p]``; ``'NLC'``: patch tokens ``[B, N, D]``.
                Either way the CLS token is split off (see ``return_prefix_tokens``).
            intermediates_only: return only the list.

        Returns:
            ``(final, intermediates)``, ``final`` = ``forward_features`` ``[B, 1 + N, D]``, or only the list
            of intermediates (one per requested block, in block order).
        """
        output_fmt = str(getattr(output_fmt, "value", output_fmt))  # timm passes its Format enum
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        take = self._take_indices(indices)
        depth = max(take) + 1 if stop_early else None
        last, kept, _ = self._run_blocks(x, keep=set(take), depth=depth)
        if norm:
            kept = [self.norm(t) for t in kept]
        prefix = [t[:, : self.num_prefix_tokens] for t in kept]
        patches = [t[:, self.num_prefix_tokens :] for t in kept]
        if output_fmt == "NCHW":
            height, width = self.patch_embed.feat_size(x.shape[-2:])
            patches = [t.reshape(t.shape[0], height, width, -1).permute(0, 3, 1, 2).contiguous() for t in patches]
        intermediates: list[Any] = list(zip(patches, prefix)) if return_prefix_tokens else patches
        if intermediates_only:
            return intermediates
        return self.norm(last), intermediates

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """timm's ``prune_intermediate_layers``: drop the blocks after the last of ``indices`` and, if asked,
        the final ``norm`` and the head (``fc_norm`` and ``head``, pooling ``''``). Changes the model in place.

        Returns:
            The kept indices as indices from 0 (negative ones would point elsewhere after pruning).
        """
        take = self._take_indices(indices)
        self.blocks = self.blocks[: max(take) + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:  # what timm's reset_classifier(0, '') leaves: no fc_norm, no pooling, no head
            self.fc_norm = None
            self.global_pool, self.num_classes, self.head = "", 0, nn.Identity()
        return take

    def attention_maps(self, x: torch.Tensor, layer: int = -1) -> torch.Tensor:
        """Attention weights of block ``layer`` (negative counts from the end), ``[B, H, 1 + N, 1 + N]``."""
        layer = self._block_index(layer)
        tokens, _, shared_bias = self._run_blocks(x, depth=layer)
        block = self.blocks[layer]
        return block.attn.attention_probs(block.norm1(tokens), shared_bias, self._grid(x))


def build_beit(arch: str, **kwargs: Any) -> Beit:
    """Build a :class:`Beit` from an entry of :data:`BEIT_ARCHITECTURES` plus keyword overrides."""
    if arch not in BEIT_ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(sorted(BEIT_ARCHITECTURES))}")
    return Beit(**{**BEIT_ARCHITECTURES[arch], **kwargs})
