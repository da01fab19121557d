"""Read an architecture off a canonical state dict: which model class and which constructor settings fit it.

Used when a file is loaded without a registry name (``get_model('my.safetensors')``) and to
record ``model_settings`` in canonical files. Everything is read from tensor names and shapes:

* width from ``cls_token`` ``[1, 1, D]``, depth from the highest ``blocks.{i}`` index,
* heads from a relative position table ``[(2h - 1)(2w - 1) + 3, heads]`` (else 64-wide heads),
  and the grid side from its length (or from ``pos_embed``),
* patch size from ``patch_embed.proj.weight`` ``[D, C, p, p]``, pooling from ``fc_norm``,
  layer scale from ``gamma_1``, the head size from ``head.weight`` ``[classes, D]``;
* a segmenter (``decode_head.conv_seg.weight`` ``[classes, channels, 1, 1]``) the same way under ``backbone.``.
"""

import logging
from typing import Any

from ..errors import ModelConfigError
from ..models import (
    ARCHITECTURES,
    MIM_ARCHITECTURES,
    SEGMENTATION_ARCHITECTURES,
    Architecture,
)
from ..models.segmentation import DEFAULT_OUT_INDICES
from .keymaps import StateDict

logger = logging.getLogger(__name__)

_SHARED_TABLE = "rel_pos_bias.relative_position_bias_table"
_SEGMENTER_HEAD = "decode_head.conv_seg.weight"


def block_count(state_dict: StateDict, prefix: str = "blocks.") -> int:
    """``1 +`` the highest ``<prefix>{i}.`` index (0 when there is none)."""
    depth = len(prefix.split(".")) - 1
    indices = {int(k.split(".")[depth]) for k in state_dict if k.startswith(prefix)}
    return 1 + max(indices) if indices else 0


def grid_side_of_table(rows: int) -> int:
    """The grid side ``s`` of a relative position table with ``(2s - 1)² + 3`` rows."""
    return int(((rows - 3) ** 0.5 + 1) / 2)


def infer_architecture(state_dict: StateDict) -> dict[str, Any]:
    """Constructor settings of :class:`~beitv2_zoo.models.Beit` that fit a canonical classifier state dict.

    Raises:
        ModelConfigError: the tensors are not a BEiT's (no ``cls_token`` / ``patch_embed``).
    """
    if "cls_token" not in state_dict or "patch_embed.proj.weight" not in state_dict:
        raise ModelConfigError("cannot infer an architecture: the checkpoint has no cls_token / patch_embed (not a BEiT?)")
    embed_dim = state_dict["cls_token"].shape[-1]
    patch = state_dict["patch_embed.proj.weight"].shape[-1]
    tables = [v for k, v in state_dict.items() if k.endswith("relative_position_bias_table")]
    num_heads = tables[0].shape[1] if tables else max(1, embed_dim // 64)
    grid_side = grid_side_of_table(tables[0].shape[0]) if tables else None
    if "pos_embed" in state_dict:
        grid_side = int((state_dict["pos_embed"].shape[1] - 1) ** 0.5)
    return dict(
        patch_size=patch,
        embed_dim=embed_dim,
        depth=block_count(state_dict),
        num_heads=num_heads,
        mlp_ratio=state_dict["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
        img_size=(grid_side or 14) * patch,
        use_abs_pos_emb="pos_embed" in state_dict,
        use_rel_pos_bias="blocks.0.attn.relative_position_bias_table" in state_dict,
        use_shared_rel_pos_bias=_SHARED_TABLE in state_dict,
        init_values=0.1 if "blocks.0.gamma_1" in state_dict else None,
        global_pool="avg" if "fc_norm.weight" in state_dict else "token",
        num_classes=state_dict["head.weight"].shape[0] if "head.weight" in state_dict else 0,
    )


def infer_pretrain_architecture(state_dict: StateDict) -> tuple[str, dict[str, Any]] | None:
    """Recognise a canonical pretraining-model or ViT-B/16 tokenizer state dict.

    Returns:
        ``(architecture name, settings)``: a pretraining state (``lm_head.weight``) matches the
        registered pretraining architecture of the same width and depth, at the grid of its
        table; a tokenizer (``quantize.embedding.weight``) gets its decoder depth and target
        width from its tensors. ``None`` for anything else (a classifier, or an unknown size).
    """
    if "lm_head.weight" in state_dict:
        width, depth = state_dict["cls_token"].shape[-1], block_count(state_dict)
        for name, settings in MIM_ARCHITECTURES.items():
            if (settings["embed_dim"], settings["depth"]) == (width, depth):
                table = state_dict.get(_SHARED_TABLE)
                grid = 14 if table is None else grid_side_of_table(table.shape[0])
                return name, {"img_size": grid * settings["patch_size"]}
        return None
    if "quantize.embedding.weight" in state_dict and state_dict["encoder.cls_token"].shape[-1] == 768:
        decoder_depth = block_count(state_dict, "decoder.blocks.")
        settings: dict[str, Any] = {"decoder_depth": decoder_depth}
        if decoder_depth:
            settings["target_dim"] = state_dict["decode_task_layer.2.weight"].shape[0]
        return "vqkd_base_encoder", settings
    return None


def infer_segmentation_architecture(state_dict: StateDict) -> tuple[str | None, dict[str, Any]]:
    """Recognise a canonical segmenter state dict (``decode_head.conv_seg.weight``).

    Returns:
        ``(registered name or None, constructor settings of`` :class:`~beitv2_zoo.models.BeitSegmenter` ``)``:
        the encoder settings as :func:`infer_architecture` reads them under ``backbone.``, the tapped
        blocks of the registered size of that depth, the class count, the head widths, the pooling
        scales and whether an auxiliary head is present; ``img_size`` from the tables' grid.

    Raises:
        ModelConfigError: no ``decode_head.conv_seg.weight``, or no BEiT backbone.
    """
    if _SEGMENTER_HEAD not in state_dict:
        raise ModelConfigError("not a segmenter state dict: it has no decode_head.conv_seg.weight")
    encoder = {k[len("backbone."):]: v for k, v in state_dict.items() if k.startswith("backbone.")}
    settings = infer_architecture(encoder)
    for key in ("global_pool", "num_classes"):
        del settings[key]
    depth = settings["depth"]
    if depth in DEFAULT_OUT_INDICES:
        out_indices = DEFAULT_OUT_INDICES[depth]
    else:
        out_indices = tuple(depth * (i + 1) // 4 - 1 for i in range(4))
        logger.warning("no registered segmenter has %d blocks; tapping blocks %s for the four pyramid levels",
                       depth, out_indices)
    head = state_dict[_SEGMENTER_HEAD]
    aux_conv = state_dict.get("auxiliary_head.convs.0.conv.weight")
    settings.update(
        out_indices=out_indices,
        num_classes=head.shape[0],
        channels=head.shape[1],
        pool_scales=_pool_scales(state_dict),
        auxiliary=aux_conv is not None,
    )
    if aux_conv is not None:
        settings["aux_channels"] = aux_conv.shape[0]
    name = next((n for n, s in SEGMENTATION_ARCHITECTURES.items()
                 if (s["embed_dim"], s["depth"], s["patch_size"]) == (settings["embed_dim"], depth, settings["patch_size"])),
                None)
    if name is not None and settings["init_values"]:  # layer scale only starts at this value: keep the registered one
        settings["init_values"] = SEGMENTATION_ARCHITECTURES[name].get("init_values", settings["init_values"])
    return name, settings


_REGISTERED_POOL_SCALES = (1, 2, 3, 6)


def _pool_scales(state_dict: StateDict) -> tuple[int, ...]:
    """The pooling-pyramid sides: the registered ``(1, 2, 3, 6)`` when the file has four branches (the sides
    leave no trace in the weights), else ``1..n``."""
    count = block_count(state_dict, "decode_head.psp_modules.")
    return _REGISTERED_POOL_SCALES if count == len(_REGISTERED_POOL_SCALES) else tuple(range(1, count + 1))


def architecture_of(state_dict: StateDict) -> tuple[Architecture, dict[str, Any]]:
    """The architecture and settings of a file loaded without a name: a segmenter, a pretraining model or
    tokenizer when recognised, else a :class:`~beitv2_zoo.models.Beit` classifier."""
    if _SEGMENTER_HEAD in state_dict:
        name, settings = infer_segmentation_architecture(state_dict)
        if name is not None:
            return ARCHITECTURES[name], settings
        segmenter = ARCHITECTURES["beit_base_patch16_upernet"].model_class
        return Architecture(segmenter, task="semantic-segmentation"), settings
    pretrain = infer_pretrain_architecture(state_dict)
    if pretrain is not None:
        return ARCHITECTURES[pretrain[0]], pretrain[1]
    return Architecture(ARCHITECTURES["beit_base_patch16"].model_class), infer_architecture(state_dict)
