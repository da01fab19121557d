"""What ``get_model`` needs beyond classifiers: a pretraining model's tokenizer weights, and
recognising pretraining-model and tokenizer files by their tensors.

The official BEiT v2 pretraining files hold no tokenizer; the official trainer loads it from
its own file. Here a :class:`~beitv2_zoo.models.BeitV2Pretrain` owns its tokenizer as
``model.tokenizer``, so ``get_model`` adds the tokenizer's tensors under ``tokenizer.*``
before the strict load. They come from one of:

* the record named by ``WeightRecord.tokenizer`` (``tokenizer_weights=True``, the default
  when the model's own file lacks them);
* a file, URL or ``hf-hub:`` spec (``tokenizer_weights='…'``);
* a freshly initialised tokenizer (``tokenizer_weights=False``).
"""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .checkpoint import read_checkpoint
from .convert import StateDict
from .errors import ModelConfigError
from .models import ARCHITECTURES, VQKD, Architecture, BeitV2Pretrain
from .registry import get_record
from .weight_record import WeightRecord
from .weights_pretrain import DEFAULT_TOKENIZER

logger = logging.getLogger(__name__)

TokenizerWeights = bool | str | Path | None
WeightsPath = Callable[[WeightRecord | None, bool | str | Path], Path]
"""``get_model``'s resolver: ``(record, True | file | URL | hf-hub spec)`` → a local file."""

DEFAULT_TOKENIZERS = {
    "beitv2_mim_base_patch16": DEFAULT_TOKENIZER,
    "beitv2_mim_large_patch16": DEFAULT_TOKENIZER,
    "test_beitv2_mim_tiny": "test_vqkd_tiny",
}
"""The tokenizer record of each pretraining architecture, for files loaded without a record."""


def tokenizer_settings(architecture: Architecture, model_kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The :class:`VQKD` keywords of the tokenizer this model will own; ``None`` if it owns none."""
    if architecture.model_class is not BeitV2Pretrain:
        return None
    merged = {**architecture.settings, **model_kwargs}
    if merged.get("tokenizer") is None:
        return None
    return {**merged["tokenizer"], "img_size": merged.get("img_size", 224)}


def tokenizer_name(record: WeightRecord | None, architecture: Architecture) -> str | None:
    """The tokenizer record that goes with a pretraining model's record (or its architecture)."""
    if record is not None:
        return record.tokenizer
    name = next((n for n, a in ARCHITECTURES.items() if a is architecture), None)
    return DEFAULT_TOKENIZERS.get(name or "")


def tokenizer_state(name: str | None, weights: bool | str | Path, settings: dict[str, Any],
                    weights_path: WeightsPath) -> StateDict:
    """A tokenizer's canonical tensors (no prefix).

    Args:
        name: the tokenizer's record, used when ``weights`` is ``True``.
        weights: ``True`` (that record's published weights), a file / URL / ``hf-hub:`` spec,
            or ``False`` (random weights built from ``settings``).
        settings: the tokenizer's :class:`VQKD` keywords.
        weights_path: ``get_model``'s resolver from ``(record, weights)`` to a local file.
    """
    if weights is False:
        logger.info("the tokenizer starts from random weights (tokenizer_weights=False)")
        return VQKD(**settings).state_dict()
    record = None
    if weights is True:
        if name is None:
            raise ModelConfigError("no tokenizer is registered for this model; pass tokenizer_weights='path/to/vqkd.pth' "
                                   "(or tokenizer_weights=False for a random one)")
        record = get_record(name)
    checkpoint = read_checkpoint(weights_path(record, weights))
    logger.info("attaching tokenizer weights from %s", checkpoint.path)
    return checkpoint.state_dict


def with_tokenizer(state_dict: StateDict, name: str | None, weights: TokenizerWeights, settings: dict[str, Any],
                   weights_path: WeightsPath) -> StateDict:
    """``state_dict`` with its ``tokenizer.*`` part added when missing, or replaced when ``weights`` is given."""
    if weights is None:
        if any(k.startswith("tokenizer.") for k in state_dict):
            return state_dict
        weights = True
    kept = {k: v for k, v in state_dict.items() if not k.startswith("tokenizer.")}
    tokenizer = tokenizer_state(name, weights, settings, weights_path)
    return {**kept, **{f"tokenizer.{k}": v for k, v in tokenizer.items()}}


def infer_pretrain_architecture(state_dict: StateDict) -> tuple[Architecture, dict[str, Any]] | None:
    """Recognise a canonical pretraining-model or ViT-B/16 tokenizer state dict; ``None`` for anything else.

    A pretraining state (``lm_head.weight``) matches the registered architecture of the same
    width and depth. A tokenizer (``quantize.embedding.weight``) gets its decoder depth and
    target width from its tensors.
    """
    if "lm_head.weight" in state_dict:
        width = state_dict["cls_token"].shape[-1]
        depth = 1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith("blocks."))
        for name in DEFAULT_TOKENIZERS:
            settings = ARCHITECTURES[name].settings
            if (settings["embed_dim"], settings["depth"]) == (width, depth):
                table = state_dict.get("rel_pos_bias.relative_position_bias_table")
                grid = 14 if table is None else int(((table.shape[0] - 3) ** 0.5 + 1) / 2)
                return ARCHITECTURES[name], {"img_size": grid * settings["patch_size"]}
        return None
    if "quantize.embedding.weight" in state_dict and state_dict["encoder.cls_token"].shape[-1] == 768:
        blocks = {int(k.split(".")[2]) for k in state_dict if k.startswith("decoder.blocks.")}
        settings = {"decoder_depth": 1 + max(blocks) if blocks else 0}
        if blocks:
            settings["target_dim"] = state_dict["decode_task_layer.2.weight"].shape[0]
        return ARCHITECTURES["vqkd_base_encoder"], settings
    return None
