"""Everything about state-dict files: safe reading, layout detection, pure key maps, adaptation and
strict loading, architecture inference, the canonical safetensors format and its cache copies.
Four layouts are read: mmpretrain, official (microsoft/unilm), timm and transformers.

============================  =================================================================
:mod:`.pickle_io`             ``torch.load(weights_only=True)`` with inert stubs, size checks first
:mod:`.safetensors_io`        the safetensors format: header, mapped or in-memory reading, atomic writing
:mod:`.aligned`               safetensors files with 64-byte aligned tensors (the cache copies)
:mod:`.keymaps`               pure key maps: mmpretrain classifier ↔ canonical
:mod:`.keymaps_pretrain`      pure key maps: pretraining models and VQ-KD tokenizers
:mod:`.keymaps_transformers`  pure key maps: Hugging Face transformers ``Beit*`` ↔ canonical
:mod:`.layouts`               unwrap a loaded object and detect its layout
:mod:`.reading`               :func:`read_checkpoint` → :class:`Checkpoint`
:mod:`.adapt`                 fit to a model (resize, drops), strict load, the mismatch report
:mod:`.infer`                 the architecture a state dict was made for
:mod:`.canonical`             the canonical file format and its metadata
:mod:`.cache_copy`            the canonical copy beside a cached pickle
============================  =================================================================

The download layer (:mod:`beitv2_zoo.hub`) never imports this package; this package may use it.
"""

from .adapt import adapt_state_dict, cast_floating, check_finite, load_state_dict_strict, load_weights, resize_pos_embed
from .infer import architecture_of, infer_architecture, infer_pretrain_architecture
from .keymaps import StateDict
from .layouts import split_layout
from .reading import CANONICAL_FORMAT, Checkpoint, read_checkpoint

__all__ = [
    "CANONICAL_FORMAT",
    "Checkpoint",
    "StateDict",
    "adapt_state_dict",
    "architecture_of",
    "cast_floating",
    "check_finite",
    "infer_architecture",
    "infer_pretrain_architecture",
    "load_state_dict_strict",
    "load_weights",
    "read_checkpoint",
    "resize_pos_embed",
    "split_layout",
]
