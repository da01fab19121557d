"""Pure key maps between the segmenter's canonical layout and the mmseg and transformers layouts.

The canonical layout is the official microsoft/unilm segmentation one (:class:`~beitv2_zoo.models.BeitSegmenter`)::

    canonical / official                    mmseg 0.x / 1.x                       transformers file (legacy)
    backbone.cls_token                      backbone.cls_token                    beit.embeddings.cls_token
    backbone.patch_embed.proj.*             backbone.patch_embed.projection.*     beit.embeddings.patch_embeddings.projection.*
    backbone.blocks.{i}.norm1 / norm2       backbone.layers.{i}.ln1 / ln2         beit.encoder.layer.{i}.layernorm_before / _after
    backbone.blocks.{i}.mlp.fc1 / fc2       backbone.layers.{i}.ffn.layers.0.0 / ffn.layers.1
    backbone.blocks.{i}.<other>             backbone.layers.{i}.<other>           (see keymaps_transformers)
    backbone.fpn1.{0,1,3}.*                 neck.upsample_4x.{0,1,3}.*            fpn1.{0,1,3}.*
    backbone.fpn2.0.*                       neck.upsample_2x.0.*                  fpn2.0.*
    decode_head.* / auxiliary_head.*        unchanged                             ``conv_seg`` → ``classifier``

With patch size 8 the adapter has one transposed convolution, ``backbone.fpn1.0`` (mmseg's ``neck.upsample_2x.0``).
transformers 5 names its modules differently in memory (``fpn.fpn1.conv_transpose1``,
``decode_head.psp_modules.blocks.{i}.conv.convolution``, ``psp_bottleneck``, ``.normalization``);
:func:`transformers_segmentation_to_canonical` reads both spellings. ``relative_position_index``
buffers are dropped everywhere (the model derives them from its grid), and so are mmseg's
``data_preprocessor.*`` buffers.
"""

import re

from .keymaps import CANONICAL_TO_MM_BLOCKS, MM_BLOCKS_TO_CANONICAL, StateDict, _rename
from .keymaps_transformers import canonical_to_transformers, transformers_to_canonical

SEGMENTATION_TOPS = ("decode_head.", "auxiliary_head.")
"""Key prefixes only a segmentation checkpoint has (its heads)."""

_ADAPTER_MARKS = ("backbone.fpn1.", "neck.upsample_4x.", "neck.upsample_2x.", "fpn1.", "fpn.fpn1.")

_MMSEG_BACKBONE_TO_CANONICAL = [
    *MM_BLOCKS_TO_CANONICAL,
    (r"^ln1\.", "norm."),  # final_norm=True (the official layout has none: the strict load names it)
]
_CANONICAL_BACKBONE_TO_MMSEG = [*CANONICAL_TO_MM_BLOCKS, (r"^norm\.", "ln1.")]

# transformers >= 5 in-memory head names → the file names (applied to the whole key, first match wins).
_MODERN_HEADS_TO_FILE = [
    (r"^fpn\.fpn1\.conv_transpose1\.", "fpn1.0."),
    (r"^fpn\.fpn1\.normalization\.", "fpn1.1."),
    (r"^fpn\.fpn1\.conv_transpose2\.", "fpn1.3."),
    (r"^fpn\.fpn2\.", "fpn2.0."),
    (r"^decode_head\.psp_modules\.blocks\.(\d+)\.conv\.", r"decode_head.psp_modules.\1.1."),
    (r"^decode_head\.psp_bottleneck\.", "decode_head.bottleneck."),
]
_CONV_LAYER_PARTS = [(r"\.convolution\.", ".conv."), (r"\.normalization\.", ".bn.")]


def is_segmentation_state(state_dict: StateDict) -> bool:
    """Whether the keys are a segmenter's (a decode or auxiliary head, or the multi-scale adapter), in any layout."""
    return any(k.startswith(SEGMENTATION_TOPS + _ADAPTER_MARKS) for k in state_dict)


def segmentation_layout(state_dict: StateDict) -> str:
    """``'mmseg'`` (``backbone.layers.*`` / ``neck.*``), ``'transformers'`` (``beit.*``) or ``'official'``."""
    if any(k.startswith(("backbone.layers.", "neck.")) for k in state_dict):
        return "mmseg"
    if any(k.startswith(("beit.", "fpn1.", "fpn.")) for k in state_dict):
        return "transformers"
    return "official"


def _adapter_is_4x(keys: set[str], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in keys)


def mmseg_to_canonical(state_dict: StateDict) -> StateDict:
    """mmseg ``EncoderDecoder`` keys (BEiT backbone + ``Feature2Pyramid`` neck + heads) → canonical."""
    four_x = _adapter_is_4x(set(state_dict), "neck.upsample_4x.")
    converted: StateDict = {}
    for key, value in state_dict.items():
        if key.endswith("relative_position_index") or key.startswith("data_preprocessor."):
            continue
        if key.startswith("backbone."):
            key = "backbone." + _rename(key[len("backbone."):], _MMSEG_BACKBONE_TO_CANONICAL)
        elif key.startswith("neck.upsample_4x."):
            key = "backbone.fpn1." + key[len("neck.upsample_4x."):]
        elif key.startswith("neck.upsample_2x."):
            key = ("backbone.fpn2." if four_x else "backbone.fpn1.") + key[len("neck.upsample_2x."):]
        converted[key] = value
    return converted


def canonical_to_mmseg(state_dict: StateDict) -> StateDict:
    """Canonical segmenter keys → mmseg (the inverse of :func:`mmseg_to_canonical`)."""
    four_x = _adapter_is_4x(set(state_dict), "backbone.fpn1.3.")
    converted: StateDict = {}
    for key, value in state_dict.items():
        if key.endswith("relative_position_index"):
            continue
        if key.startswith("backbone.fpn1."):
            key = ("neck.upsample_4x." if four_x else "neck.upsample_2x.") + key[len("backbone.fpn1."):]
        elif key.startswith("backbone.fpn2."):
            key = "neck.upsample_2x." + key[len("backbone.fpn2."):]
        elif key.startswith("backbone."):
            key = "backbone." + _rename(key[len("backbone."):], _CANONICAL_BACKBONE_TO_MMSEG)
        converted[key] = value
    return converted


def _head_to_canonical(key: str) -> str:
    key = _rename(key, _MODERN_HEADS_TO_FILE)
    if key.startswith(SEGMENTATION_TOPS):
        for pattern, replacement in _CONV_LAYER_PARTS:
            key = re.sub(pattern, replacement, key)
        key = re.sub(r"^(decode_head|auxiliary_head)\.classifier\.", r"\1.conv_seg.", key)
    if key.startswith(("fpn1.", "fpn2.")):
        key = "backbone." + key
    return key


def transformers_segmentation_to_canonical(state_dict: StateDict) -> StateDict:
    """transformers ``BeitForSemanticSegmentation`` keys (file or in-memory spelling) → canonical.

    The encoder goes through :func:`~beitv2_zoo.checkpoint.keymaps_transformers.transformers_to_canonical`
    and gains the ``backbone.`` prefix; the adapter and heads are renamed as in the module table.
    """
    encoder = {k: v for k, v in state_dict.items() if k.startswith("beit.")}
    converted = {"backbone." + k: v for k, v in transformers_to_canonical(encoder).items()}
    for key, value in state_dict.items():
        if not key.startswith("beit.") and not key.endswith("relative_position_index"):
            converted[_head_to_canonical(key)] = value
    return converted


def canonical_to_transformers_segmentation(state_dict: StateDict) -> StateDict:
    """Canonical segmenter keys → the file names ``BeitForSemanticSegmentation.from_pretrained`` reads.

    Only the patch-16 adapter has transformers names; ``backbone.fpn1.{0,1,3}`` → ``fpn1.{0,1,3}``.
    """
    encoder = {k[len("backbone."):]: v for k, v in state_dict.items()
               if k.startswith("backbone.") and not k.startswith(("backbone.fpn1.", "backbone.fpn2."))}
    converted = canonical_to_transformers(encoder)
    for key, value in state_dict.items():
        if key.startswith(("backbone.fpn1.", "backbone.fpn2.")):
            converted[key[len("backbone."):]] = value
        elif key.startswith(SEGMENTATION_TOPS):
            converted[re.sub(r"^(decode_head|auxiliary_head)\.conv_seg\.", r"\1.classifier.", key)] = value
    return converted
