"""Pure functions between checkpoint key layouts.

The canonical layout is the official microsoft/unilm one (``blocks.{i}.mlp.fc1``,
``fc_norm``, ``head``), which timm also uses. Each function maps a flat state dict to
another flat state dict and touches nothing else; ``relative_position_index`` buffers are
dropped because the model derives them from its grid.
"""

import re

import torch

StateDict = dict[str, torch.Tensor]

# (mmpretrain pattern, canonical pattern) applied to keys with the "backbone." prefix removed.
MM_BLOCKS_TO_CANONICAL = [
    (r"^patch_embed\.projection\.", "patch_embed.proj."),
    (r"^layers\.(\d+)\.ln1\.", r"blocks.\1.norm1."),
    (r"^layers\.(\d+)\.ln2\.", r"blocks.\1.norm2."),
    (r"^layers\.(\d+)\.ffn\.layers\.0\.0\.", r"blocks.\1.mlp.fc1."),
    (r"^layers\.(\d+)\.ffn\.layers\.1\.", r"blocks.\1.mlp.fc2."),
    (r"^layers\.(\d+)\.", r"blocks.\1."),
]
"""The OpenMMLab BEiT backbone's patch embedding and blocks (mmpretrain and mmsegmentation name them alike)."""
CANONICAL_TO_MM_BLOCKS = [
    (r"^patch_embed\.proj\.", "patch_embed.projection."),
    (r"^blocks\.(\d+)\.norm1\.", r"layers.\1.ln1."),
    (r"^blocks\.(\d+)\.norm2\.", r"layers.\1.ln2."),
    (r"^blocks\.(\d+)\.mlp\.fc1\.", r"layers.\1.ffn.layers.0.0."),
    (r"^blocks\.(\d+)\.mlp\.fc2\.", r"layers.\1.ffn.layers.1."),
    (r"^blocks\.(\d+)\.", r"layers.\1."),
]
_MMPRETRAIN_TO_CANONICAL = [
    *MM_BLOCKS_TO_CANONICAL,
    (r"^ln2\.", "fc_norm."),  # the avg-pool norm (out_type='avg_featmap')
    (r"^ln1\.", "norm."),  # the final norm (final_norm=True)
]
_CANONICAL_TO_MMPRETRAIN = [
    *CANONICAL_TO_MM_BLOCKS,
    (r"^fc_norm\.", "ln2."),
    (r"^norm\.", "ln1."),
]


def _rename(key: str, rules: list[tuple[str, str]]) -> str:
    for pattern, replacement in rules:
        new_key, count = re.subn(pattern, replacement, key)
        if count:
            return new_key
    return key


def drop_index_buffers(state_dict: StateDict) -> StateDict:
    """Official and timm files → canonical: remove the derivable ``relative_position_index`` buffers."""
    return {k: v for k, v in state_dict.items() if not k.endswith("relative_position_index")}


def mmpretrain_to_canonical(state_dict: StateDict) -> StateDict:
    """mmpretrain ``ImageClassifier`` keys (``backbone.layers.0.ffn.layers.0.0.weight``, ``head.fc.*``) → canonical."""
    converted: StateDict = {}
    for key, value in drop_index_buffers(state_dict).items():
        if key.startswith("data_preprocessor."):
            continue
        if key.startswith("backbone."):
            new_key = _rename(key[len("backbone.") :], _MMPRETRAIN_TO_CANONICAL)
        elif key.startswith("head.fc."):
            new_key = "head." + key[len("head.fc.") :]
        else:
            new_key = key
        converted[new_key] = value
    return converted


def canonical_to_mmpretrain(state_dict: StateDict) -> StateDict:
    """Canonical keys → mmpretrain ``ImageClassifier`` keys (the inverse of :func:`mmpretrain_to_canonical`)."""
    converted: StateDict = {}
    for key, value in state_dict.items():
        if key.startswith("head."):
            converted["head.fc." + key[len("head.") :]] = value
        else:
            converted["backbone." + _rename(key, _CANONICAL_TO_MMPRETRAIN)] = value
    return converted
