"""Recognise a loaded checkpoint object's layout and convert it to canonical keys.

Wrappers (``state_dict``, ``model``, ``module``) and a DDP ``module.`` prefix are removed;
the key maps themselves are pure functions in :mod:`.keymaps`, :mod:`.keymaps_pretrain` and
:mod:`.keymaps_transformers`. The layouts: ``'mmpretrain'`` (``backbone.`` keys), ``'transformers'``
(Hugging Face transformers' ``beit.`` keys, or a bare ``BeitModel``), ``'official'`` (with
``relative_position_index`` buffers) and ``'timm'``; a file this package wrote reads as canonical.
Segmentation files (a ``decode_head`` / ``auxiliary_head``, or the multi-scale adapter) read as
``'official'`` (the canonical segmenter layout), ``'mmseg'`` or ``'transformers'`` (:mod:`.keymaps_segmentation`).
"""

from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .keymaps import StateDict, drop_index_buffers, mmpretrain_to_canonical
from .keymaps_pretrain import (
    is_mmpretrain_pretrain_state,
    is_tokenizer_state,
    mmpretrain_pretrain_to_canonical,
    mmpretrain_vqkd_to_canonical,
    official_vqkd_to_canonical,
    tokenizer_layout,
)
from .keymaps_segmentation import (
    is_segmentation_state,
    mmseg_to_canonical,
    segmentation_layout,
    transformers_segmentation_to_canonical,
)
from .keymaps_transformers import is_transformers_state, transformers_to_canonical

_WRAPPER_KEYS = ("state_dict", "model", "module")


def split_layout(raw: Any, path: Path | str = "<memory>") -> tuple[StateDict, str]:
    """Unwrap a loaded checkpoint object and convert it to canonical keys.

    Returns:
        ``(canonical state dict, layout name)``.
    """
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found a {type(raw).__name__}")
    tensors = raw
    for wrapper in _WRAPPER_KEYS:
        if isinstance(raw.get(wrapper), dict):
            tensors = raw[wrapper]
            break
    tensors = {k: v for k, v in tensors.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: holds no tensors (top-level keys: {sorted(map(str, raw))[:10]})")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    if is_segmentation_state(tensors):
        return _segmentation_to_canonical(tensors)
    if any(k.startswith("backbone.") for k in tensors):
        if is_mmpretrain_pretrain_state(tensors):
            return mmpretrain_pretrain_to_canonical(tensors), "mmpretrain"
        return mmpretrain_to_canonical(tensors), "mmpretrain"
    if is_transformers_state(tensors):
        return transformers_to_canonical(tensors), "transformers"
    if is_tokenizer_state(tensors):
        if tokenizer_layout(tensors) == "mmpretrain":
            return mmpretrain_vqkd_to_canonical(tensors), "mmpretrain"
        return official_vqkd_to_canonical(tensors), "official"
    layout = "official" if any(k.endswith("relative_position_index") for k in tensors) else "timm"
    return drop_index_buffers(tensors), layout


def _segmentation_to_canonical(tensors: StateDict) -> tuple[StateDict, str]:
    """A segmenter's file (official microsoft/unilm, mmseg or transformers) → canonical keys and its layout."""
    layout = segmentation_layout(tensors)
    if layout == "mmseg":
        return mmseg_to_canonical(tensors), layout
    if layout == "transformers":
        return transformers_segmentation_to_canonical(tensors), layout
    return drop_index_buffers(tensors), layout  # the official layout is the canonical one
