"""``get_model``: build a registered (or inferred) architecture and load weights into it."""

import dataclasses
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import hub
from .checkpoint import Checkpoint, load_state_dict_strict, read_checkpoint
from .convert import StateDict
from .errors import ModelConfigError
from .factory_pretrain import infer_pretrain_architecture, tokenizer_name, tokenizer_settings, tokenizer_state, with_tokenizer
from .labels import class_names
from .models import ARCHITECTURES, Architecture, Beit
from .registry import get_record, is_model
from .weight_record import WeightRecord

logger = logging.getLogger(__name__)

PretrainedArg = bool | str | Path


def get_model(
    name_or_path: str | Path,
    pretrained: PretrainedArg = False,
    device: str | torch.device | None = None,
    *,
    cache_dir: str | Path | None = None,
    offline: bool | None = None,
    url_map: hub.UrlMap | None = None,
    progress: bool | None = None,
    safetensors_copy: bool | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a model by registry name (or from a checkpoint file) and optionally load weights.

    Args:
        name_or_path: a registered name (``list_models()``), an alias, or the path of a
            checkpoint file: its architecture is inferred from its tensors and its weights
            are loaded (``pretrained`` is then ignored).
        pretrained: ``False`` (random init), ``True`` (the record's weights, downloaded and
            cached), or a local file, an ``https://`` URL, or ``'hf-hub:org/repo[@rev]'``.
        device: where to put the model (default CPU).
        cache_dir, offline, url_map, progress: download settings for ``pretrained=True`` or a
            URL, overriding ``BEITV2_ZOO_CACHE``, ``BEITV2_ZOO_OFFLINE``, ``BEITV2_ZOO_URL_MAP``
            and ``BEITV2_ZOO_PROGRESS`` (see :mod:`beitv2_zoo.hub`); ``offline`` also keeps
            ``hf-hub:`` weights to huggingface_hub's local cache.
        safetensors_copy: keep and load a canonical safetensors copy of a downloaded ``.pth``
            (memory-mapped; the default, unless ``BEITV2_ZOO_SAFETENSORS_COPY=0``). The weights
            are bit-identical either way.
        **kwargs: ``dtype`` (e.g. ``torch.bfloat16``: parameters are converted after loading),
            ``compile`` (``True`` wraps the model in ``torch.compile`` where available),
            ``num_classes`` (a new head), ``img_size`` (position tables are resized),
            ``drop_path_rate``, and any other argument of the model class. For a BEiT v2
            pretraining model, ``tokenizer_weights`` chooses the weights of ``model.tokenizer``:
            ``True`` (the record's tokenizer), a file / URL / ``hf-hub:`` spec, or ``False``
            (random). By default they come from the model's file, or from the record's tokenizer
            when the file has none (official files), and are random without ``pretrained``.

    Returns:
        The model in eval mode, with ``model.weights_info`` (its :class:`WeightRecord`, or
        ``None``) and ``model.class_names`` (a tuple, or ``None`` when unknown).
    """
    tokenizer_weights = kwargs.pop("tokenizer_weights", None)
    dtype, compile_model = kwargs.pop("dtype", None), kwargs.pop("compile", False)
    record, file_checkpoint = _resolve(name_or_path)
    inferred = infer_pretrain_architecture(file_checkpoint.state_dict) if file_checkpoint is not None else None
    if record is not None:
        architecture = ARCHITECTURES[record.architecture]
    else:
        architecture = inferred[0] if inferred else Architecture(Beit)
    model_kwargs = {**inferred[1], **kwargs} if inferred else _model_kwargs(record, file_checkpoint, kwargs)
    _validate({**architecture.settings, **model_kwargs}, architecture.is_classifier)
    checkpoint = file_checkpoint
    download = dict(cache_dir=cache_dir, offline=offline, url_map=url_map, progress=progress,
                    safetensors_copy=safetensors_copy)
    if checkpoint is None and pretrained:
        checkpoint = read_checkpoint(_weights_path(record, pretrained, **download))

    tokenizer = tokenizer_settings(architecture, model_kwargs)  # a pretraining model's tokenizer, else None
    if tokenizer is not None:
        name = tokenizer_name(record, architecture)
        fetch = lambda tokenizer_record, spec: _weights_path(tokenizer_record, spec, **download)  # noqa: E731
    if checkpoint is None:
        model = architecture.build(**model_kwargs)
        if tokenizer is not None and tokenizer_weights:  # e.g. a random backbone to pretrain with a trained tokenizer
            state = tokenizer_state(name, tokenizer_weights, tokenizer, fetch)
            load_state_dict_strict(model.tokenizer, state, source="tokenizer weights")
    else:
        if tokenizer is not None:
            state = with_tokenizer(checkpoint.state_dict, name, tokenizer_weights, tokenizer, fetch)
            checkpoint = dataclasses.replace(checkpoint, state_dict=state)
        # Built without storage: the checkpoint's tensors become the parameters (no random init thrown away).
        # The one derived buffer, the relative position index, is built on the CPU even here (rel_pos.py).
        with torch.device("meta"):
            model = architecture.build(**model_kwargs)
        left_out = load_state_dict_strict(model, checkpoint.state_dict, source=str(checkpoint.path), assign=True)
        if left_out:  # a checkpoint head of another size was dropped: start a fresh one
            model.reset_classifier(model.num_classes)

    model.weights_info = record
    model.class_names = _class_names(record, checkpoint, getattr(model, "num_classes", 0))
    model = model.to(device=device or "cpu", dtype=dtype).eval()
    return compiled(model) if compile_model else model


def compiled(model: nn.Module) -> nn.Module:
    """``torch.compile(model)`` where this platform can compile, else ``model`` unchanged with a warning.

    Compilation happens at the first call; on the CPU it needs a C++ compiler.
    """
    import shutil

    reason = None
    if not torch._dynamo.is_dynamo_supported():
        reason = "torch.compile is not supported on this Python/platform"
    elif next(model.parameters()).device.type == "cpu" and not shutil.which(os.environ.get("CXX", "g++")):
        reason = "no C++ compiler found for CPU compilation (set CXX)"
    if reason:
        logger.warning("compile=True ignored: %s; running eagerly", reason)
        return model
    return torch.compile(model)


def _resolve(name_or_path: str | Path) -> tuple[WeightRecord | None, Checkpoint | None]:
    if isinstance(name_or_path, str) and is_model(name_or_path):
        return get_record(name_or_path), None
    path = Path(name_or_path)
    if path.suffix in (".pth", ".pt", ".bin", ".safetensors", ".ckpt") or path.is_file():
        return None, read_checkpoint(path)
    return get_record(str(name_or_path)), None  # raises UnknownModelError with suggestions


def _model_kwargs(record: WeightRecord | None, checkpoint: Checkpoint | None, overrides: dict[str, Any]) -> dict[str, Any]:
    if record is not None:
        settings = {**record.model_kwargs, "img_size": record.preprocessing.crop_size}
        if record.num_classes:  # pretraining models and tokenizers have no classification head
            settings["num_classes"] = record.num_classes
    else:
        assert checkpoint is not None
        settings = infer_architecture(checkpoint.state_dict)
    settings.update(overrides)
    return settings


def _validate(settings: dict[str, Any], is_classifier: bool) -> None:
    num_classes = settings.get("num_classes")
    if not is_classifier and num_classes is not None:
        raise ModelConfigError(
            f"num_classes={num_classes!r} applies to classifiers, and this is a pretraining model or a tokenizer; to "
            "fine-tune its backbone, build a classifier from its weights: "
            "get_model('beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k', pretrained=<file>, num_classes=...)"
        )
    if is_classifier and (not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes <= 0):
        raise ModelConfigError(
            f"num_classes must be a positive int, got {num_classes!r}; for features without a head use "
            "model.extract_feat(x) or model.forward_features(x)"
        )
    img_size, patch = settings.get("img_size", 224), settings.get("patch_size", 16)
    if not isinstance(img_size, int) or img_size <= 0 or img_size % patch:
        nearest = max(patch, round(img_size / patch) * patch) if isinstance(img_size, (int, float)) else 224
        raise ModelConfigError(f"img_size must be a positive multiple of the patch size {patch}, got {img_size!r}; try {nearest}")


def _weights_path(record: WeightRecord | None, pretrained: PretrainedArg, **download: Any) -> Path:
    """The local file to load for ``pretrained`` (a cached pickle's canonical safetensors copy where
    there is one); ``download`` holds the keyword arguments of :func:`hub.fetch_weights`."""
    if pretrained is True:
        assert record is not None
        return hub.fetch_weights(record, for_loading=True, **download)
    spec = str(pretrained)
    if spec.startswith("hf-hub:"):
        return hub.fetch_hf_spec(spec, offline=download.get("offline"))
    if re.match(r"^https?://", spec):
        return hub.fetch_url(spec, for_loading=True, **download)
    return Path(spec).expanduser()


def _class_names(record: WeightRecord | None, checkpoint: Checkpoint | None, num_classes: int) -> tuple[str, ...] | None:
    if not num_classes or (record is not None and record.label_set is None):  # no classification head
        return None
    if checkpoint is not None and checkpoint.classes and len(checkpoint.classes) == num_classes:
        return checkpoint.classes
    if record is not None and record.num_classes == num_classes:
        return class_names(record.label_set)
    for label_set, size in (("imagenet-1k", 1000), ("imagenet-21k", 21841)):
        if record is None and num_classes == size:
            return class_names(label_set)
    return None


def infer_architecture(state_dict: StateDict) -> dict[str, Any]:
    """Constructor settings of :class:`Beit` that fit a canonical state dict.

    Reads the width from ``cls_token``, the depth from the block indices, the heads from a
    relative position table (else 64-wide heads), and the patch size, grid, pooling, layer
    scale and head size from the tensors present.
    """
    if "cls_token" not in state_dict or "patch_embed.proj.weight" not in state_dict:
        raise ModelConfigError("cannot infer an architecture: the checkpoint has no cls_token / patch_embed (not a BEiT?)")
    embed_dim = state_dict["cls_token"].shape[-1]
    patch = state_dict["patch_embed.proj.weight"].shape[-1]
    depth = 1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith("blocks."))
    tables = [v for k, v in state_dict.items() if k.endswith("relative_position_bias_table")]
    num_heads = tables[0].shape[1] if tables else max(1, embed_dim // 64)
    grid_side = int(((tables[0].shape[0] - 3) ** 0.5 + 1) / 2) if tables else None
    if "pos_embed" in state_dict:
        grid_side = int((state_dict["pos_embed"].shape[1] - 1) ** 0.5)
    settings: dict[str, Any] = dict(
        patch_size=patch,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        mlp_ratio=state_dict["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
        img_size=(grid_side or 14) * patch,
        use_abs_pos_emb="pos_embed" in state_dict,
        use_rel_pos_bias="blocks.0.attn.relative_position_bias_table" in state_dict,
        use_shared_rel_pos_bias="rel_pos_bias.relative_position_bias_table" in state_dict,
        init_values=0.1 if "blocks.0.gamma_1" in state_dict else None,
        global_pool="avg" if "fc_norm.weight" in state_dict else "token",
        num_classes=state_dict["head.weight"].shape[0] if "head.weight" in state_dict else 0,
    )
    return settings
