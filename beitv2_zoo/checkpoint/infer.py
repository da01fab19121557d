"""Read an architecture off a canonical state dict: which model class and which constructor settings fit it.

Used when a file is loaded without a registry name (``get_model('my.safetensors')``) and to
record ``model_settings`` in canonical files. Everything is read from tensor names and shapes:

* width from ``cls_token`` ``[1, 1, D]``, depth from the highest ``blocks.{i}`` index,
* heads from a relative position table ``[(2h - 1)(2w - 1) + 3, heads]`` (else 64-wide heads),
  and the grid side from its length (or from ``pos_embed``),
* patch size from ``patch_embed.proj.weight`` ``[D, C, p, p]``, pooling from ``fc_norm``,
  layer scale from ``gamma_1``, the head size from ``head.weight`` ``[classes, D]``.
"""

from typing import Any

from ..errors import ModelConfigError
from ..models import ARCHITECTURES, MIM_ARCHITECTURES, Architecture
from .keymaps import StateDict

_SHARED_TABLE = "rel_pos_bias.relative_position_bias_table"


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


def architecture_of(state_dict: StateDict) -> tuple[Architecture, dict[str, Any]]:
    """The architecture and settings of a file loaded without a name: a pretraining model or
    tokenizer when recognised, else a :class:`~beitv2_zoo.models.Beit` classifier."""
    pretrain = infer_pretrain_architecture(state_dict)
    if pretrain is not None:
        return ARCHITECTURES[pretrain[0]], pretrain[1]
    return Architecture(ARCHITECTURES["beit_base_patch16"].model_class), infer_architecture(state_dict)
