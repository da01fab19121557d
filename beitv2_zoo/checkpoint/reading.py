"""Read a checkpoint file safely, detect its layout, adapt it to a model and load it strictly.

Three layouts are recognised automatically:

* ``mmpretrain``: ``{'meta', 'state_dict': {'backbone.layers.0.ln1.weight', 'head.fc.weight', …}}``
* ``official`` (microsoft/unilm): ``{'model' | 'module': {'blocks.0.norm1.weight', …, 'relative_position_index'}}``
* ``timm``: a flat ``{'blocks.0.norm1.weight', …}`` in ``.safetensors`` or ``.pth``

and converted to the canonical (official) key names by :mod:`beitv2_zoo.checkpoint.keymaps`. The same
three families hold BEiT v2 pretraining models (mmpretrain ``backbone.mask_token`` /
``neck.patch_aggregation`` / ``head.cls_head`` / ``target_generator``; official
``cls_pt_layers`` / ``lm_head``) and VQ-KD tokenizers (``encoder.*`` + ``quantize.*``, with
mmpretrain's ``encoder.layers`` or the official ``encoder.blocks``); those are converted by
:mod:`beitv2_zoo.checkpoint.keymaps_pretrain`.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .keymaps import StateDict
from .layouts import split_layout
from .pickle_io import load_pickle_checkpoint
from .safetensors_io import load_in_memory, load_mmap, looks_like_safetensors, read_header

logger = logging.getLogger(__name__)

FORMAT_MARKER = "beitv2_zoo_format"
"""The metadata key that marks a canonical file written by this package (its value: :data:`FORMAT_MARKER_VERSION`).

The standard ``format`` key holds ``'pt'``, as transformers and other safetensors readers require."""
FORMAT_MARKER_VERSION = "1"
CANONICAL_FORMAT = "beitv2_zoo"
"""The ``format`` value of canonical files written before 0.2's ``format: pt``; still read as canonical."""


def format_metadata() -> dict[str, str]:
    """The format fields of every safetensors file this package writes: ``format: pt`` plus its own marker."""
    return {"format": "pt", FORMAT_MARKER: FORMAT_MARKER_VERSION}


def is_canonical_metadata(metadata: dict[str, str]) -> bool:
    """Whether safetensors metadata marks a file written by this package (the marker, or the old ``format``)."""
    return FORMAT_MARKER in metadata or metadata.get("format") == CANONICAL_FORMAT


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint converted to canonical keys.

    Attributes:
        state_dict: canonical tensors.
        layout: ``'mmpretrain'``, ``'official'``, ``'timm'`` or ``'canonical'`` (written by ``beitv2-zoo convert``).
        path: the file it was read from.
        classes: class names stored in the file (mmpretrain ``meta.dataset_meta``), if any.
        metadata: string metadata of a safetensors file.
    """

    state_dict: StateDict
    layout: str
    path: Path
    classes: tuple[str, ...] | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def read_checkpoint(path: str | Path, *, mmap: bool = False) -> Checkpoint:
    """Read ``path`` (``.safetensors`` or a PyTorch pickle) without executing anything from it.

    Args:
        mmap: map a safetensors file instead of reading it (no copy; for files the package owns
            and writes atomically, since a mapping follows later edits of the file). Pickles are
            always read into memory.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    if _is_safetensors(path):
        raw, metadata = _read_safetensors(path, mmap)
    else:
        raw, metadata = load_pickle_checkpoint(path), {}
    state_dict, layout = split_layout(raw, path)
    if is_canonical_metadata(metadata):
        layout = "canonical"
    classes = _classes_from_meta(raw) or _classes_from_metadata(metadata)
    return Checkpoint(state_dict, layout, path, classes, metadata)


def _is_safetensors(path: Path) -> bool:
    return path.suffix == ".safetensors" or looks_like_safetensors(path)


def _read_safetensors(path: Path, mmap: bool) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors (with ``mmap``, views on a private memory mapping of the file: loading them into
    a model built on the ``meta`` device with ``assign=True`` copies nothing) and the string metadata."""
    try:
        return (load_mmap(path) if mmap else load_in_memory(path)), read_header(path).metadata
    except CheckpointError:
        raise
    except (OSError, RuntimeError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot read the safetensors file ({error}); it is probably truncated") from None


def _classes_from_metadata(metadata: dict[str, str]) -> tuple[str, ...] | None:
    """Class names stored by ``beitv2-zoo convert`` as a JSON list under ``classes``."""
    try:
        classes = json.loads(metadata.get("classes", "null"))
    except json.JSONDecodeError:
        return None
    if isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes):
        return tuple(classes)
    return None


def _classes_from_meta(raw: Any) -> tuple[str, ...] | None:
    meta = raw.get("meta") if isinstance(raw, dict) else None
    if not isinstance(meta, dict):
        return None
    dataset_meta = meta.get("dataset_meta")
    classes = dataset_meta.get("classes") if isinstance(dataset_meta, dict) else meta.get("CLASSES")
    if isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes):
        return tuple(classes)
    return None


