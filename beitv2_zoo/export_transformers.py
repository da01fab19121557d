"""Write a BEiT classifier as a folder that Hugging Face transformers loads
(``transformers.BeitForImageClassification.from_pretrained(folder)``, ``pipeline('image-classification', folder)``).

The folder holds three files, written without importing transformers:

==========================  ===========================================================================
``config.json``             a ``BeitConfig``: width, depth, heads, MLP width, patch and image size,
                            ``use_relative_position_bias`` / ``use_shared_relative_position_bias`` /
                            ``use_absolute_position_embeddings``, ``use_mean_pooling`` (``global_pool='avg'``),
                            ``layer_scale_init_value``, ``layer_norm_eps`` (1e-6, not transformers' default
                            1e-12), ``id2label`` / ``label2id``
``model.safetensors``       the weights in transformers' file names (:mod:`beitv2_zoo.checkpoint.keymaps_transformers`),
                            metadata ``{'format': 'pt'}``
``preprocessor_config.json``  a ``BeitImageProcessor``: resize the short edge, centre-crop, rescale by 1/255,
                            normalise, all from the weight record's evaluation preprocessing
==========================  ===========================================================================

Only classifiers (:class:`~beitv2_zoo.models.Beit` with a head) export: transformers has no class for
BEiT v2's masked-image-modeling model with its VQ-KD tokenizer, nor for the tokenizer.
The class names come from ``class_names=``, else the model's ``class_names`` or the file's
stored names, else the record's label set; else they are ``LABEL_0``, ``LABEL_1``, …
"""

import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import resolve
from .checkpoint import Checkpoint, infer_architecture
from .checkpoint.keymaps import StateDict
from .checkpoint.keymaps_transformers import canonical_to_transformers
from .checkpoint.safetensors_io import save, write_error
from .errors import ModelConfigError
from .models.protocol import ZooModel
from .resolve import DownloadOptions
from .weights import WeightRecord, get_record, is_model
from .weights.labels import class_names as label_set_names
from .weights.schema import Preprocessing

_RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1, "box": 4, "hamming": 5}
"""PIL's resampling numbers, which ``BeitImageProcessor``'s ``resample`` takes."""


@dataclass(frozen=True)
class TransformersExport:
    """What :func:`export_transformers` wrote.

    Attributes:
        directory: the folder.
        files: the files written in it (``config.json``, ``model.safetensors``, ``preprocessor_config.json``).
        config: the ``config.json`` contents.
        num_tensors: tensors in ``model.safetensors``.
    """

    directory: Path
    files: tuple[Path, ...]
    config: dict[str, Any]
    num_tensors: int


def export_transformers(model_or_checkpoint: "nn.Module | ZooModel | Checkpoint | StateDict", directory: str | Path, *,
                        record: WeightRecord | None = None,
                        class_names: Sequence[str] | None = None) -> TransformersExport:
    """Write a classifier as a transformers ``BeitForImageClassification`` folder.

    Args:
        model_or_checkpoint: a model from :func:`beitv2_zoo.get_model`, a
            :class:`~beitv2_zoo.checkpoint.Checkpoint` (:func:`~beitv2_zoo.checkpoint.read_checkpoint`),
            or a canonical state dict.
        directory: the folder to write (created; the three files in it are replaced).
        record: the weight record whose preprocessing and label set to use (a model's own
            ``weights_info`` by default); without one, ImageNet's ``Resize(256)``, ``CenterCrop(224)``, bicubic.
        class_names: one name per class, overriding every other source.

    Raises:
        ModelConfigError: not a BEiT classifier (a pretraining model, a tokenizer, no head), or
            ``class_names`` of the wrong length.
        CheckpointWriteError: a file cannot be written.
    """
    state, stored_names, record, norm_eps = _unpack(model_or_checkpoint, record)
    settings = _classifier_settings(state)
    names = _names(settings["num_classes"], class_names, stored_names, record)
    config = transformers_config(settings, names, norm_eps)
    directory = Path(directory).expanduser()
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in canonical_to_transformers(state).items()}
    weights = directory / "model.safetensors"
    save(weights, tensors, {"format": "pt"})
    preprocessing = record.preprocessing if record is not None else Preprocessing()
    config_file = _write_json(directory / "config.json", config)
    processor_file = _write_json(directory / "preprocessor_config.json", image_processor_config(preprocessing))
    return TransformersExport(directory, (config_file, weights, processor_file), config, len(tensors))


def convert_to_transformers(src: str | Path, directory: str | Path, *, source: str | None = None,
                            class_names: Sequence[str] | None = None, **download: Any) -> TransformersExport:
    """``beitv2-zoo convert SRC DIR --to transformers``: resolve ``src`` as
    :func:`beitv2_zoo.convert_checkpoint` does (a file, URL, ``hf-hub:`` spec or registered name)
    and write it with :func:`export_transformers`.

    Raises:
        ModelConfigError: ``src`` is not a classifier.
        UnsafeCheckpointError, CheckpointError: as for :func:`beitv2_zoo.convert_checkpoint`.
    """
    options = DownloadOptions(**download, safetensors_copy=False, source=source)
    named = isinstance(src, str) and is_model(src) and not Path(src).exists()
    record = get_record(str(src)) if named else None
    if record is not None and record.task != "image-classification":
        raise ModelConfigError(_not_a_classifier(f"{src} is a {record.task} model"))
    local = resolve.weights_file(True if named else src, record, options)  # type: ignore[arg-type]
    checkpoint = resolve.load_checkpoint(local)
    return export_transformers(checkpoint, directory, record=local.record or record, class_names=class_names)


def transformers_config(settings: dict[str, Any], class_names: Sequence[str], norm_eps: float = 1e-6) -> dict[str, Any]:
    """``config.json`` of a ``BeitForImageClassification`` for :class:`~beitv2_zoo.models.Beit` settings
    (as :func:`~beitv2_zoo.checkpoint.infer_architecture` returns them)."""
    width = settings["embed_dim"]
    return {
        "architectures": ["BeitForImageClassification"],
        "model_type": "beit",
        "hidden_size": width,
        "num_hidden_layers": settings["depth"],
        "num_attention_heads": settings["num_heads"],
        "intermediate_size": round(settings["mlp_ratio"] * width),
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "image_size": settings["img_size"],
        "patch_size": settings["patch_size"],
        "num_channels": settings.get("in_chans", 3),
        "use_mask_token": False,
        "use_absolute_position_embeddings": settings["use_abs_pos_emb"],
        "use_relative_position_bias": settings["use_rel_pos_bias"],
        "use_shared_relative_position_bias": settings["use_shared_rel_pos_bias"],
        "layer_scale_init_value": float(settings["init_values"] or 0.0),
        "use_mean_pooling": settings["global_pool"] == "avg",
        "layer_norm_eps": norm_eps,
        "id2label": {str(i): name for i, name in enumerate(class_names)},
        "label2id": _label2id(class_names),
    }


def image_processor_config(preprocessing: Preprocessing) -> dict[str, Any]:
    """``preprocessor_config.json`` of a ``BeitImageProcessor`` doing a record's evaluation transform."""
    return {
        "image_processor_type": "BeitImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": preprocessing.resize_size},
        "resample": _RESAMPLE[preprocessing.interpolation],
        "do_center_crop": True,
        "crop_size": {"height": preprocessing.crop_size, "width": preprocessing.crop_size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(preprocessing.mean),
        "image_std": list(preprocessing.std),
        "do_reduce_labels": False,
    }


# ----------------------------------------------------------------- helpers
def _not_a_classifier(what: str) -> str:
    return (f"{what}; only BEiT classifiers export to transformers (BeitForImageClassification): "
            "transformers has no class for BEiT v2 masked-image-modeling models or VQ-KD tokenizers. "
            "Export a fine-tuned classifier, or `beitv2-zoo convert SRC FILE.safetensors` for the canonical layout")


def _unpack(source: Any, record: WeightRecord | None) -> tuple[StateDict, Sequence[str] | None, WeightRecord | None, float]:
    """(canonical state dict, stored class names, record, LayerNorm epsilon) of a model, checkpoint or state dict."""
    if isinstance(source, nn.Module):
        state = {k: v for k, v in source.state_dict().items() if not k.endswith("relative_position_index")}
        norms = [m.eps for m in (getattr(source, "fc_norm", None), getattr(source, "norm", None))
                 if isinstance(m, nn.LayerNorm)]
        return (state, getattr(source, "class_names", None), record or getattr(source, "weights_info", None),
                norms[0] if norms else 1e-6)
    if isinstance(source, Checkpoint):
        return source.state_dict, source.classes, record, 1e-6
    if isinstance(source, dict) and all(isinstance(v, torch.Tensor) for v in source.values()):
        return {k: v for k, v in source.items() if not k.endswith("relative_position_index")}, None, record, 1e-6
    raise TypeError(f"expected a model, a Checkpoint or a state dict, got {type(source).__name__}")


def _classifier_settings(state: StateDict) -> dict[str, Any]:
    if "lm_head.weight" in state:
        raise ModelConfigError(_not_a_classifier("this is a masked-image-modeling (pretraining) model"))
    if "quantize.embedding.weight" in state or any(k.startswith("encoder.") for k in state):
        raise ModelConfigError(_not_a_classifier("this is a VQ-KD tokenizer"))
    try:
        settings = infer_architecture(state)
    except ModelConfigError as error:
        raise ModelConfigError(_not_a_classifier(str(error))) from None
    if not settings["num_classes"]:
        raise ModelConfigError(_not_a_classifier("this model has no classification head (num_classes=0)")
                               + "; or give it one: get_model(..., num_classes=N)")
    if "blocks.0.attn.q_bias" not in state:
        raise ModelConfigError(_not_a_classifier("this model has no q/v biases, which transformers' BEiT always has"))
    settings["in_chans"] = state["patch_embed.proj.weight"].shape[1]
    return settings


def _names(num_classes: int, given: Sequence[str] | None, stored: Sequence[str] | None,
           record: WeightRecord | None) -> list[str]:
    if given is not None:
        if len(given) != num_classes:
            raise ModelConfigError(f"class_names has {len(given)} names but the head has {num_classes} classes")
        return list(given)
    if stored and len(stored) == num_classes:
        return list(stored)
    if record is not None and record.label_set and record.num_classes == num_classes:
        return list(label_set_names(record.label_set))
    return [f"LABEL_{i}" for i in range(num_classes)]


def _label2id(names: Sequence[str]) -> dict[str, int]:
    """Name → first index (a few ImageNet-1k names occur twice, e.g. 'crane'); an exact inverse needs unique names."""
    label2id: dict[str, int] = {}
    for index, name in enumerate(names):
        label2id.setdefault(name, index)
    return label2id


def _write_json(path: Path, content: dict[str, Any]) -> Path:
    """Write ``content`` as indented JSON at ``path`` atomically (temporary file, then rename)."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(temp, path)
    except OSError as error:
        raise write_error(path, error) from None
    finally:
        temp.unlink(missing_ok=True)
    return path


__all__ = ["TransformersExport", "convert_to_transformers", "export_transformers", "image_processor_config",
           "transformers_config"]
