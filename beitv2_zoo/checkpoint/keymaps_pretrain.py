"""Pure key-layout converters for the BEiT v2 pretraining model and the VQ-KD tokenizer.

Canonical layouts (what :class:`~beitv2_zoo.models.BeitV2Pretrain` and
:class:`~beitv2_zoo.models.VQKD` hold) use the official microsoft/unilm names:

* pretraining model: ``cls_token``, ``mask_token``, ``patch_embed.proj.*``,
  ``rel_pos_bias.relative_position_bias_table``, ``blocks.{i}.*``, ``cls_pt_layers.{j}.*``,
  ``norm.*``, ``lm_head.*``, and the tokenizer under ``tokenizer.*``;
* tokenizer: ``encoder.{cls_token, pos_embed, patch_embed.proj.*, blocks.{i}.*, fc_norm.*}``,
  ``quantize.embedding.{weight, initted}``, ``quantize.cluster_size``,
  ``encode_task_layer.{0,2}.*`` and, with a decoder, ``decoder.*`` and ``decode_task_layer.{0,2}.*``.

mmpretrain's ``BEiT`` names them ``backbone.layers.{i}`` (``ln1``/``ln2``/``ffn.layers.0.0``/
``ffn.layers.1``), ``backbone.mask_token``, ``backbone.rel_pos_bias.*``,
``neck.patch_aggregation.{j}``, ``neck.norm``, ``head.cls_head`` and ``target_generator.*``,
and its ``VQKD`` encoder ends in ``ln1`` (``final_norm=True``, the same per-token LayerNorm as
the official ``fc_norm``).

Official tokenizer files carry tensors that nothing reads. The official loader deletes
the keys that start with ``loss``, ``teacher`` or ``scaling`` (the frozen CLIP/DINO teacher and
its input scaling), and so do we. The official ``EmbeddingEMA`` also stores
``quantize.embedding.cluster_size`` and ``quantize.embedding.embed_avg``, which its forward pass
never uses (see ``reference/official_beitv2_timm.md`` §4.2). We drop them as well, so that
mmpretrain's copy, which lacks them, fits the same model. :func:`canonical_to_official_vqkd`
writes them back with the values the official code gives them at construction.
"""

import logging
import re

import torch

from .keymaps import StateDict, canonical_to_mmpretrain, drop_index_buffers, mmpretrain_to_canonical

logger = logging.getLogger(__name__)

OFFICIAL_TOKENIZER_DROPPED_PREFIXES = ("loss", "teacher", "scaling")
"""Top-level prefixes the official VQ-KD loader deletes before its strict load (teacher model and scaling layers)."""
OFFICIAL_UNUSED_QUANTIZER_KEYS = ("quantize.embedding.cluster_size", "quantize.embedding.embed_avg")
"""Official ``EmbeddingEMA`` tensors that the forward pass never reads."""


# --------------------------------------------------------------------- helpers
def _sub(state_dict: StateDict, prefix: str) -> StateDict:
    """The entries under ``prefix``, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


def _prefixed(state_dict: StateDict, prefix: str) -> StateDict:
    return {prefix + k: v for k, v in state_dict.items()}


def _vit_mmpretrain_to_canonical(state_dict: StateDict) -> StateDict:
    """One mmpretrain ``BEiTViT``'s keys (no prefix) → canonical ViT keys."""
    return mmpretrain_to_canonical(_prefixed(state_dict, "backbone."))


def _vit_canonical_to_mmpretrain(state_dict: StateDict) -> StateDict:
    """Canonical ViT keys → one mmpretrain ``BEiTViT``'s keys (no prefix)."""
    return _sub(canonical_to_mmpretrain(state_dict), "backbone.")


def _blocks_mmpretrain_to_canonical(state_dict: StateDict) -> StateDict:
    """``{j}.ln1.weight`` … (a list of mmpretrain layers) → ``{j}.norm1.weight`` …"""
    return _sub(_vit_mmpretrain_to_canonical(_prefixed(state_dict, "layers.")), "blocks.")


def _blocks_canonical_to_mmpretrain(state_dict: StateDict) -> StateDict:
    return _sub(_vit_canonical_to_mmpretrain(_prefixed(state_dict, "blocks.")), "layers.")


# ------------------------------------------------------------------- tokenizer
def is_tokenizer_state(state_dict: StateDict) -> bool:
    """Whether the keys are a VQ-KD tokenizer's (any layout): an ``encoder`` and a ``quantize`` part."""
    return any(k.startswith("encoder.") for k in state_dict) and any(k.startswith("quantize.") for k in state_dict)


def tokenizer_layout(state_dict: StateDict) -> str:
    """``'mmpretrain'`` (``encoder.layers.*``) or ``'official'`` (``encoder.blocks.*``) for a tokenizer state dict."""
    return "mmpretrain" if any(k.startswith("encoder.layers.") for k in state_dict) else "official"


def mmpretrain_vqkd_to_canonical(state_dict: StateDict) -> StateDict:
    """mmpretrain ``VQKD`` keys → canonical tokenizer keys.

    The encoder's final norm may be ``encoder.ln1`` (mmpretrain's ``final_norm``), ``encoder.ln2``
    or already ``encoder.fc_norm``: all three become ``encoder.fc_norm``. The layout of
    mmpretrain's ``vqkd_encoder.pth`` is unpublished, so every variant is accepted.
    """
    converted: StateDict = {}
    for part in ("encoder.", "decoder."):
        vit = _vit_mmpretrain_to_canonical(_sub(state_dict, part))
        converted.update({part + re.sub(r"^norm\.", "fc_norm.", k): v for k, v in vit.items()})
    converted.update(
        {k: v for k, v in drop_index_buffers(state_dict).items() if not k.startswith(("encoder.", "decoder."))}
    )
    return converted


def canonical_to_mmpretrain_vqkd(state_dict: StateDict) -> StateDict:
    """Canonical tokenizer keys → mmpretrain ``VQKD`` keys (``encoder.fc_norm`` → ``encoder.ln1``)."""
    converted: StateDict = {}
    for part in ("encoder.", "decoder."):
        vit = {re.sub(r"^fc_norm\.", "norm.", k): v for k, v in _sub(state_dict, part).items()}
        converted.update(_prefixed(_vit_canonical_to_mmpretrain(vit), part))
    converted.update({k: v for k, v in state_dict.items() if not k.startswith(("encoder.", "decoder."))})
    return converted


def official_vqkd_to_canonical(state_dict: StateDict) -> StateDict:
    """Official VQ-KD keys → canonical: drop the teacher, the scaling layers, the loss modules,
    the two unused ``EmbeddingEMA`` tensors and any ``relative_position_index``; rename nothing."""
    dropped = [k for k in state_dict if k.startswith(OFFICIAL_TOKENIZER_DROPPED_PREFIXES) or k in OFFICIAL_UNUSED_QUANTIZER_KEYS]
    if dropped:
        groups = sorted({k.split(".", 1)[0] if k.startswith(OFFICIAL_TOKENIZER_DROPPED_PREFIXES) else k for k in dropped})
        logger.info("official tokenizer file: dropped %d tensors nothing reads (%s)", len(dropped), ", ".join(groups))
    return {k: v for k, v in drop_index_buffers(state_dict).items() if k not in dropped}


def canonical_to_official_vqkd(state_dict: StateDict) -> StateDict:
    """Canonical tokenizer keys → the official layout that ``microsoft/unilm``'s strict loader accepts.

    Adds ``quantize.embedding.cluster_size`` (zeros) and ``quantize.embedding.embed_avg`` (a copy of
    the codebook), the values the official ``EmbeddingEMA`` starts with and never changes.
    """
    converted = dict(state_dict)
    codebook = state_dict["quantize.embedding.weight"]
    converted["quantize.embedding.cluster_size"] = torch.zeros(codebook.shape[0], dtype=codebook.dtype)
    converted["quantize.embedding.embed_avg"] = codebook.clone()
    return converted


# -------------------------------------------------------------- pretraining
def is_mmpretrain_pretrain_state(state_dict: StateDict) -> bool:
    """Whether mmpretrain keys belong to its ``BEiT`` pretraining algorithm (not a classifier)."""
    markers = ("backbone.mask_token", "neck.patch_aggregation.", "head.cls_head.", "target_generator.")
    return any(k.startswith(markers) for k in state_dict)


def mmpretrain_pretrain_to_canonical(state_dict: StateDict) -> StateDict:
    """mmpretrain ``BEiT`` (BEiT v2 pretraining) keys → canonical pretraining-model keys.

    ``backbone.*`` → ViT keys (``mask_token``, ``rel_pos_bias.*`` keep their names);
    ``neck.patch_aggregation.{j}`` → ``cls_pt_layers.{j}``; ``neck.norm`` → ``norm``;
    ``head.cls_head`` → ``lm_head``; ``target_generator.*`` → ``tokenizer.*`` (see
    :func:`mmpretrain_vqkd_to_canonical`). ``data_preprocessor.*`` buffers are dropped;
    any other key is kept as it is, so a strict load reports it.
    """
    converted = _vit_mmpretrain_to_canonical(_sub(state_dict, "backbone."))
    converted.update(_prefixed(_blocks_mmpretrain_to_canonical(_sub(state_dict, "neck.patch_aggregation.")), "cls_pt_layers."))
    converted.update(_prefixed(_sub(state_dict, "neck.norm."), "norm."))
    converted.update(_prefixed(_sub(state_dict, "head.cls_head."), "lm_head."))
    converted.update(_prefixed(mmpretrain_vqkd_to_canonical(_sub(state_dict, "target_generator.")), "tokenizer."))
    known = ("backbone.", "neck.patch_aggregation.", "neck.norm.", "head.cls_head.", "target_generator.", "data_preprocessor.")
    converted.update({k: v for k, v in state_dict.items() if not k.startswith(known)})
    return converted


def canonical_to_mmpretrain_pretrain(state_dict: StateDict) -> StateDict:
    """Canonical pretraining-model keys → mmpretrain ``BEiT`` keys (inverse of :func:`mmpretrain_pretrain_to_canonical`)."""
    own = ("cls_pt_layers.", "norm.", "lm_head.", "tokenizer.")
    backbone = {k: v for k, v in state_dict.items() if not k.startswith(own)}
    converted = _prefixed(_vit_canonical_to_mmpretrain(backbone), "backbone.")
    converted.update(_prefixed(_blocks_canonical_to_mmpretrain(_sub(state_dict, "cls_pt_layers.")), "neck.patch_aggregation."))
    converted.update(_prefixed(_sub(state_dict, "norm."), "neck.norm."))
    converted.update(_prefixed(_sub(state_dict, "lm_head."), "head.cls_head."))
    converted.update(_prefixed(canonical_to_mmpretrain_vqkd(_sub(state_dict, "tokenizer.")), "target_generator."))
    return converted
