"""Pure key maps between the canonical layout and Hugging Face transformers' BEiT classes.

The transformers files (the ``microsoft/beit-*`` Hub repos, and whatever
``BeitForImageClassification.save_pretrained`` writes) name a classifier's tensors::

    beit.embeddings.cls_token                                   cls_token
    beit.embeddings.position_embeddings                         pos_embed
    beit.embeddings.patch_embeddings.projection.*               patch_embed.proj.*
    beit.encoder.relative_position_bias.relative_position_bias_table
                                                                rel_pos_bias.relative_position_bias_table
    beit.encoder.layer.{i}.layernorm_before / layernorm_after   blocks.{i}.norm1 / norm2
    beit.encoder.layer.{i}.lambda_1 / lambda_2                  blocks.{i}.gamma_1 / gamma_2
    beit.encoder.layer.{i}.attention.attention.query.weight  ┐
                                              key.weight     ├  blocks.{i}.attn.qkv.weight (rows q | k | v)
                                              value.weight   ┘
    beit.encoder.layer.{i}.attention.attention.query.bias       blocks.{i}.attn.q_bias (key has no bias)
    beit.encoder.layer.{i}.attention.attention.value.bias       blocks.{i}.attn.v_bias
    beit.encoder.layer.{i}.attention.attention.relative_position_bias.relative_position_bias_table
                                                                blocks.{i}.attn.relative_position_bias_table
    beit.encoder.layer.{i}.attention.output.dense.*             blocks.{i}.attn.proj.*
    beit.encoder.layer.{i}.intermediate.dense.*                 blocks.{i}.mlp.fc1.*
    beit.encoder.layer.{i}.output.dense.*                       blocks.{i}.mlp.fc2.*
    beit.layernorm.*    (use_mean_pooling=False)                norm.*
    beit.pooler.layernorm.*  (use_mean_pooling=True)            fc_norm.*
    classifier.*                                                head.*

The relative position tables use the same row order as the official code, so they move
unchanged; the ``relative_position_index`` buffers some older files carry are dropped (both
sides derive them from the grid). A ``BeitModel`` file (no head, no ``beit.`` prefix) reads
the same way. Since transformers 5 the *modules* are named differently in memory
(``beit.layers.{i}.attention.q_proj``, ``mlp.fc1``, ``shared_position_bias``); its
``save_pretrained`` still writes the names above, and :func:`transformers_to_canonical`
accepts both spellings.
"""

import re

import torch

from .keymaps import StateDict, _rename

PREFIX = "beit."
_LAYER = r"^beit\.encoder\.layer\.(\d+)\."

# transformers >= 5 in-memory names → the file names above (applied first, in order).
_MODERN_TO_FILE = [
    (r"^beit\.layers\.(\d+)\.attention\.q_proj\.", r"beit.encoder.layer.\1.attention.attention.query."),
    (r"^beit\.layers\.(\d+)\.attention\.k_proj\.", r"beit.encoder.layer.\1.attention.attention.key."),
    (r"^beit\.layers\.(\d+)\.attention\.v_proj\.", r"beit.encoder.layer.\1.attention.attention.value."),
    (r"^beit\.layers\.(\d+)\.attention\.o_proj\.", r"beit.encoder.layer.\1.attention.output.dense."),
    (r"^beit\.layers\.(\d+)\.mlp\.fc1\.", r"beit.encoder.layer.\1.intermediate.dense."),
    (r"^beit\.layers\.(\d+)\.mlp\.fc2\.", r"beit.encoder.layer.\1.output.dense."),
    (r"^beit\.layers\.(\d+)\.relative_position_bias\.",
     r"beit.encoder.layer.\1.attention.attention.relative_position_bias."),
    (r"^beit\.layers\.(\d+)\.", r"beit.encoder.layer.\1."),
    (r"^beit\.shared_position_bias\.", "beit.encoder.relative_position_bias."),
]

# file names → canonical, for every key but the split q/k/v projections.
_FILE_TO_CANONICAL = [
    (r"^beit\.embeddings\.cls_token$", "cls_token"),
    (r"^beit\.embeddings\.mask_token$", "mask_token"),
    (r"^beit\.embeddings\.position_embeddings$", "pos_embed"),
    (r"^beit\.embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (r"^beit\.encoder\.relative_position_bias\.", "rel_pos_bias."),
    (_LAYER + r"layernorm_before\.", r"blocks.\1.norm1."),
    (_LAYER + r"layernorm_after\.", r"blocks.\1.norm2."),
    (_LAYER + r"lambda_(\d)$", r"blocks.\1.gamma_\2"),
    (_LAYER + r"attention\.attention\.query\.bias$", r"blocks.\1.attn.q_bias"),
    (_LAYER + r"attention\.attention\.value\.bias$", r"blocks.\1.attn.v_bias"),
    (_LAYER + r"attention\.attention\.relative_position_bias\.", r"blocks.\1.attn."),
    (_LAYER + r"attention\.output\.dense\.", r"blocks.\1.attn.proj."),
    (_LAYER + r"intermediate\.dense\.", r"blocks.\1.mlp.fc1."),
    (_LAYER + r"output\.dense\.", r"blocks.\1.mlp.fc2."),
    (r"^beit\.pooler\.layernorm\.", "fc_norm."),
    (r"^beit\.layernorm\.", "norm."),
    (r"^classifier\.", "head."),
]

_CANONICAL_TO_FILE = [
    (r"^cls_token$", "beit.embeddings.cls_token"),
    (r"^mask_token$", "beit.embeddings.mask_token"),
    (r"^pos_embed$", "beit.embeddings.position_embeddings"),
    (r"^patch_embed\.proj\.", "beit.embeddings.patch_embeddings.projection."),
    (r"^rel_pos_bias\.", "beit.encoder.relative_position_bias."),
    (r"^blocks\.(\d+)\.norm1\.", r"beit.encoder.layer.\1.layernorm_before."),
    (r"^blocks\.(\d+)\.norm2\.", r"beit.encoder.layer.\1.layernorm_after."),
    (r"^blocks\.(\d+)\.gamma_(\d)$", r"beit.encoder.layer.\1.lambda_\2"),
    (r"^blocks\.(\d+)\.attn\.q_bias$", r"beit.encoder.layer.\1.attention.attention.query.bias"),
    (r"^blocks\.(\d+)\.attn\.v_bias$", r"beit.encoder.layer.\1.attention.attention.value.bias"),
    (r"^blocks\.(\d+)\.attn\.relative_position_bias_table$",
     r"beit.encoder.layer.\1.attention.attention.relative_position_bias.relative_position_bias_table"),
    (r"^blocks\.(\d+)\.attn\.proj\.", r"beit.encoder.layer.\1.attention.output.dense."),
    (r"^blocks\.(\d+)\.mlp\.fc1\.", r"beit.encoder.layer.\1.intermediate.dense."),
    (r"^blocks\.(\d+)\.mlp\.fc2\.", r"beit.encoder.layer.\1.output.dense."),
    (r"^fc_norm\.", "beit.pooler.layernorm."),
    (r"^norm\.", "beit.layernorm."),
    (r"^head\.", "classifier."),
]

_PROJECTION = re.compile(_LAYER + r"attention\.attention\.(query|key|value)\.weight$")
_QKV = re.compile(r"^blocks\.(\d+)\.attn\.qkv\.weight$")
_BEIT_MODEL_TOPS = ("embeddings.", "encoder.", "pooler.", "layernorm.", "layers.", "shared_position_bias.")


def is_transformers_state(state_dict: StateDict) -> bool:
    """Whether the keys are transformers' BEiT names: a ``beit.`` prefix (``BeitFor…`` classes), or a
    bare ``BeitModel`` file (``embeddings.patch_embeddings.projection.weight``)."""
    return (any(k.startswith(PREFIX) for k in state_dict)
            or "embeddings.patch_embeddings.projection.weight" in state_dict)


def transformers_to_canonical(state_dict: StateDict) -> StateDict:
    """transformers BEiT keys (file or in-memory spelling, with or without the ``beit.`` prefix) → canonical.

    Keys it does not know (a masked-image-modeling ``lm_head``, a segmentation head) pass through
    unchanged, so that the strict load names them.
    """
    bare = not any(k.startswith(PREFIX) for k in state_dict)
    projections: dict[int, dict[str, torch.Tensor]] = {}
    converted: StateDict = {}
    for key, value in state_dict.items():
        if key.endswith("relative_position_index"):
            continue
        if bare and key.startswith(_BEIT_MODEL_TOPS):
            key = PREFIX + key
        key = _rename(key, _MODERN_TO_FILE)
        match = _PROJECTION.match(key)
        if match:
            projections.setdefault(int(match.group(1)), {})[match.group(2)] = value
            continue
        converted[_rename(key, _FILE_TO_CANONICAL)] = value
    for index, parts in sorted(projections.items()):
        if parts.keys() == {"query", "key", "value"}:
            converted[f"blocks.{index}.attn.qkv.weight"] = torch.cat([parts["query"], parts["key"], parts["value"]])
        else:  # incomplete: keep the transformers names so the mismatch report shows them
            for name, value in parts.items():
                converted[f"beit.encoder.layer.{index}.attention.attention.{name}.weight"] = value
    return converted


def canonical_to_transformers(state_dict: StateDict) -> StateDict:
    """Canonical classifier keys → the names ``BeitForImageClassification.from_pretrained`` reads
    (the inverse of :func:`transformers_to_canonical`): ``qkv.weight`` is split into three equal row blocks."""
    converted: StateDict = {}
    for key, value in state_dict.items():
        if key.endswith("relative_position_index"):
            continue
        match = _QKV.match(key)
        if match:
            query, key_weight, value_weight = value.chunk(3, dim=0)
            layer = f"beit.encoder.layer.{match.group(1)}.attention.attention."
            converted[layer + "query.weight"] = query
            converted[layer + "key.weight"] = key_weight
            converted[layer + "value.weight"] = value_weight
            continue
        converted[_rename(key, _CANONICAL_TO_FILE)] = value
    return converted
