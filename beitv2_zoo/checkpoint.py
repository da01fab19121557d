"""Read a checkpoint file safely, detect its layout, adapt it to a model and load it strictly.

Three layouts are recognised automatically:

* ``mmpretrain``: ``{'meta', 'state_dict': {'backbone.layers.0.ln1.weight', 'head.fc.weight', …}}``
* ``official`` (microsoft/unilm): ``{'model' | 'module': {'blocks.0.norm1.weight', …, 'relative_position_index'}}``
* ``timm``: a flat ``{'blocks.0.norm1.weight', …}`` in ``.safetensors`` or ``.pth``

and converted to the canonical (official) key names by :mod:`beitv2_zoo.convert`. The same
three families hold BEiT v2 pretraining models (mmpretrain ``backbone.mask_token`` /
``neck.patch_aggregation`` / ``head.cls_head`` / ``target_generator``; official
``cls_pt_layers`` / ``lm_head``) and VQ-KD tokenizers (``encoder.*`` + ``quantize.*``, with
mmpretrain's ``encoder.layers`` or the official ``encoder.blocks``); those are converted by
:mod:`beitv2_zoo.convert_pretrain`.
"""

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .convert import StateDict, drop_index_buffers, mmpretrain_to_canonical
from .convert_pretrain import (
    is_mmpretrain_pretrain_state,
    is_tokenizer_state,
    mmpretrain_pretrain_to_canonical,
    mmpretrain_vqkd_to_canonical,
    official_vqkd_to_canonical,
    tokenizer_layout,
)
from .errors import CheckpointError, CheckpointMismatchError
from .layers import resize_rel_pos_bias_table
from .safe_pickle import load_pickle_checkpoint
from .safetensors_io import load_mmap, looks_like_safetensors, read_header

logger = logging.getLogger(__name__)

_WRAPPER_KEYS = ("state_dict", "model", "module")
CANONICAL_FORMAT = "beitv2_zoo"
"""``format`` metadata of safetensors files written by ``beitv2-zoo convert`` (:mod:`beitv2_zoo.convert_file`)."""
_SHARED_TABLE = "rel_pos_bias.relative_position_bias_table"


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


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read ``path`` (``.safetensors`` or a PyTorch pickle) without executing anything from it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    if _is_safetensors(path):
        raw, metadata = _read_safetensors(path)
    else:
        raw, metadata = load_pickle_checkpoint(path), {}
    state_dict, layout = split_layout(raw, path)
    if metadata.get("format") == CANONICAL_FORMAT:
        layout = "canonical"
    classes = _classes_from_meta(raw) or _classes_from_metadata(metadata)
    return Checkpoint(state_dict, layout, path, classes, metadata)


def _is_safetensors(path: Path) -> bool:
    return path.suffix == ".safetensors" or looks_like_safetensors(path)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors (views on a private memory mapping of the file: loading them into a model
    built on the ``meta`` device with ``assign=True`` copies nothing) and the string metadata."""
    try:
        return load_mmap(path), read_header(path).metadata
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
    if any(k.startswith("backbone.") for k in tensors):
        if is_mmpretrain_pretrain_state(tensors):
            return mmpretrain_pretrain_to_canonical(tensors), "mmpretrain"
        return mmpretrain_to_canonical(tensors), "mmpretrain"
    if is_tokenizer_state(tensors):
        if tokenizer_layout(tensors) == "mmpretrain":
            return mmpretrain_vqkd_to_canonical(tensors), "mmpretrain"
        return official_vqkd_to_canonical(tensors), "official"
    layout = "official" if any(k.endswith("relative_position_index") for k in tensors) else "timm"
    return drop_index_buffers(tensors), layout


def _classes_from_meta(raw: Any) -> tuple[str, ...] | None:
    meta = raw.get("meta") if isinstance(raw, dict) else None
    if not isinstance(meta, dict):
        return None
    dataset_meta = meta.get("dataset_meta")
    classes = dataset_meta.get("classes") if isinstance(dataset_meta, dict) else meta.get("CLASSES")
    if isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes):
        return tuple(classes)
    return None


# ---------------------------------------------------------------- adaptation
def adapt_state_dict(state_dict: StateDict, model: nn.Module) -> tuple[StateDict, list[str]]:
    """Fit a canonical state dict to ``model``'s configuration.

    * a shared relative position table is copied into each block when the model has
      per-block tables (the official fine-tuning rule);
    * relative position tables and ``pos_embed`` are resized to the model's grid;
    * the classification head is dropped (and logged) when its size differs from the model's;
    * a masked-image-modeling checkpoint loaded into a classifier loses its pretraining-only
      tensors (``mask_token``, ``lm_head``, ``cls_pt_layers``, ``tokenizer``, and ``norm`` when
      the classifier pools into ``fc_norm``), and ``fc_norm`` and the head start fresh, as the
      official fine-tuning does (logged);
    * a tokenizer's training-only decoder is dropped (and logged) when the model has none.

    Returns:
        ``(adapted state dict, model keys deliberately left for the caller to initialise)``.
    """
    target = model.state_dict()
    adapted = dict(state_dict)

    block_tables = [k for k in target if k.startswith("blocks.") and k.endswith("relative_position_bias_table")]
    if block_tables and _SHARED_TABLE in adapted and _SHARED_TABLE not in target:
        shared = adapted.pop(_SHARED_TABLE)
        for key in block_tables:
            adapted.setdefault(key, shared.clone())
        logger.info("copied the shared relative position bias into %d blocks", len(block_tables))

    for key, value in list(adapted.items()):
        if key not in target or target[key].shape == value.shape:
            continue
        if key.endswith("relative_position_bias_table"):
            adapted[key] = resize_rel_pos_bias_table(value, _window_of(model, key))
        elif key == "pos_embed" or key.endswith(".pos_embed"):  # also a tokenizer's encoder and decoder
            adapted[key] = resize_pos_embed(value, target[key].shape[1] - 1)

    _drop_tokenizer_decoder(adapted, target)
    left_out = _drop_pretraining_only(adapted, target)
    head_keys = [k for k in ("head.weight", "head.bias") if k in adapted]
    if head_keys and any(k not in target or target[k].shape != adapted[k].shape for k in head_keys):
        old_classes = adapted["head.weight"].shape[0] if "head.weight" in adapted else -1
        for key in head_keys:
            del adapted[key]
        left_out.extend(k for k in ("head.weight", "head.bias") if k in target)
        new_classes = target["head.weight"].shape[0] if "head.weight" in target else 0
        logger.warning(
            "dropped the checkpoint's %d-class head because the model has num_classes=%d; "
            "the new head is randomly initialised",
            old_classes,
            new_classes,
        )
    return adapted, left_out


_PRETRAINING_ONLY = ("mask_token", "lm_head.", "cls_pt_layers.", "cls_pt_norm.", "cls_pt_lm_head.", "tokenizer.")
_DECODER_PARTS = ("decoder.", "decode_task_layer.")


def _drop_pretraining_only(adapted: StateDict, target: StateDict) -> list[str]:
    """Fit a BEiT v2 pretraining checkpoint to a classifier in place; returns the head keys left to initialise."""
    if "mask_token" not in adapted or "mask_token" in target:
        return []
    dropped = [k for k in adapted if k.startswith(_PRETRAINING_ONLY) or (k.startswith("norm.") and k not in target)]
    for key in dropped:
        del adapted[key]
    fresh = []
    for key in ("fc_norm.weight", "fc_norm.bias"):
        if key in target and key not in adapted:  # a fresh LayerNorm: weight 1, bias 0
            adapted[key] = (torch.ones if key.endswith("weight") else torch.zeros)(target[key].shape)
            fresh.append(key)
    left_out = [k for k in ("head.weight", "head.bias") if k in target and k not in adapted]
    logger.warning(
        "loaded a pretraining checkpoint into a classifier: dropped its pretraining-only tensors (%s, %d in all); "
        "%s start fresh, as in the official fine-tuning",
        ", ".join(sorted({k.split(".", 1)[0] for k in dropped})),
        len(dropped),
        " and ".join(sorted({k.split(".", 1)[0] for k in fresh + left_out})) or "no tensors",
    )
    return left_out


def _drop_tokenizer_decoder(adapted: StateDict, target: StateDict) -> None:
    """Drop a VQ-KD decoder (used only to train the tokenizer) in place when the model has none."""
    for owner in ("", "tokenizer."):
        parts = tuple(owner + part for part in _DECODER_PARTS)
        if owner + "quantize.embedding.weight" not in adapted or any(k.startswith(parts) for k in target):
            continue
        dropped = [k for k in adapted if k.startswith(parts)]
        for key in dropped:
            del adapted[key]
        if dropped:
            logger.info("dropped the tokenizer's training-only decoder (%d tensors under %s)", len(dropped),
                        " and ".join(f"{p}*" for p in parts))


def _window_of(model: nn.Module, table_key: str) -> tuple[int, int]:
    owner = model.get_submodule(table_key.rsplit(".", 1)[0]) if "." in table_key else model
    window = getattr(owner, "window_size", None)
    if window is None:
        raise CheckpointMismatchError(f"cannot find the window size that {table_key} belongs to")
    return tuple(window)


def resize_pos_embed(pos_embed: torch.Tensor, num_patches: int, num_prefix_tokens: int = 1) -> torch.Tensor:
    """Bicubically resize an absolute position embedding ``[1, P + n, D]`` to ``[1, num_patches + n, D]``."""
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    old_side, new_side = int(grid.shape[1] ** 0.5), int(num_patches**0.5)
    grid = grid.reshape(1, old_side, old_side, -1).permute(0, 3, 1, 2).float()
    grid = nn.functional.interpolate(grid, size=(new_side, new_side), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_side * new_side, -1).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)


# ---------------------------------------------------------------- strict load
def load_state_dict_strict(
    model: nn.Module, state_dict: StateDict, source: str = "checkpoint", assign: bool = False
) -> list[str]:
    """Adapt and load ``state_dict`` into ``model``; any missing, unexpected or misshapen key raises one error.

    Args:
        assign: the checkpoint tensors become the model's (for a model built on the ``meta`` device).

    Returns:
        Model keys deliberately not loaded (a classification head of another size); the
        caller initialises them (``model.reset_classifier``).
    """
    adapted, left_out = adapt_state_dict(state_dict, model)
    target = model.state_dict()
    missing = sorted(set(target) - set(adapted) - set(left_out))
    unexpected = sorted(set(adapted) - set(target))
    misshapen = sorted(
        f"{k}: checkpoint {list(adapted[k].shape)} vs model {list(target[k].shape)}"
        for k in set(target) & set(adapted)
        if adapted[k].shape != target[k].shape
    )
    if missing or unexpected or misshapen:
        raise CheckpointMismatchError(_mismatch_report(source, missing, unexpected, misshapen))
    model.load_state_dict(adapted, strict=not left_out, assign=assign)
    return left_out


def _mismatch_report(source: str, missing: list[str], unexpected: list[str], misshapen: list[str]) -> str:
    lines = [f"{source} does not fit this model; is it a checkpoint for another architecture or model name?"]
    for title, keys in (("missing from the checkpoint", missing), ("unexpected in the checkpoint", unexpected)):
        if keys:
            lines.append(f"{len(keys)} {title}:\n  " + "\n  ".join(compress_block_keys(keys)))
    if misshapen:
        lines.append(f"{len(misshapen)} with the wrong shape:\n  " + "\n  ".join(misshapen))
    return "\n".join(lines)


def compress_block_keys(keys: list[str]) -> list[str]:
    """Fold per-block keys into one line each: ``blocks.{2-3,5}.norm1.weight``."""
    groups: dict[tuple[str, str], list[int]] = {}
    singles = []
    for key in keys:
        match = re.match(r"^(.*?\bblocks\.)(\d+)(\..*)$", key)
        if match:
            groups.setdefault((match.group(1), match.group(3)), []).append(int(match.group(2)))
        else:
            singles.append(key)
    folded = [f"{prefix}{_ranges(indices)}{suffix}" if len(indices) > 1 else f"{prefix}{indices[0]}{suffix}"
              for (prefix, suffix), indices in groups.items()]
    return sorted(singles + folded)


def _ranges(indices: list[int]) -> str:
    indices = sorted(set(indices))
    spans, start = [], indices[0]
    for previous, current in zip(indices, indices[1:] + [None]):
        if current != previous + 1:
            spans.append(f"{start}-{previous}" if previous > start else f"{start}")
            start = current
    return "{" + ",".join(spans) + "}"
