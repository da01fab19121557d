"""The public functions: thin compositions of the layers below, the same for every model family.

``get_model`` goes one way: :mod:`resolve` turns the name and weight spec into a record and a
local file (downloading through :mod:`hub`), :mod:`checkpoint` reads it and fits it to the
model that :mod:`models` builds. ``inference_model`` is ``get_model`` plus :mod:`inference` (a
classifier) or :mod:`segment` (a semantic segmenter).
"""

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast, overload

import torch
from torch import nn

from . import pretrained as pretrained_folders
from . import resolve
from .checkpoint import Checkpoint, architecture_of, canonical, load_weights
from .errors import CheckpointError, ModelConfigError
from .hub import sha256_of
from .inference import Prediction, predict, require_classifier
from .models import ARCHITECTURES, VQKD, Architecture
from .models.features import features_only
from .models.protocol import ZooModel
from .resolve import DownloadOptions, WeightSpec
from .segment import is_segmenter, segment
from .transforms import ImageInput
from .weights import IMAGENET_EVAL, WeightRecord, get_record, is_model, list_models
from .weights.timm_cfg import pretrained_cfg_of
from .weights.labels import class_names as label_set_names

logger = logging.getLogger(__name__)

PretrainedArg = WeightSpec
"""``False``, ``True``, or a name / file / folder / URL / ``hf-hub:`` spec (see :mod:`beitv2_zoo.resolve`)."""


def get_model(
    name_or_path: str | Path,
    pretrained: PretrainedArg = False,
    device: str | torch.device | None = None,
    *,
    cache_dir: str | Path | None = None,
    offline: bool | None = None,
    url_map: Any = None,
    progress: bool | None = None,
    safetensors_copy: bool | None = None,
    **kwargs: Any,
) -> ZooModel:
    """Build a model by registry name (or from a checkpoint file) and optionally load weights.

    Args:
        name_or_path: a registered name (``list_models()``), an alias, the path of a
            checkpoint file (its architecture is inferred from its tensors), or a folder or Hub
            repository (``'hf-hub:org/repo[@rev]'``) written by :func:`beitv2_zoo.save_pretrained`
            (or a timm BEiT repository): the model is rebuilt from its ``config.json``, with its
            preprocessing and class names, and its weights are loaded strictly. For a file or a
            folder, ``pretrained`` is ignored.
        pretrained: ``False`` (random init), ``True`` (the record's weights, downloaded and
            cached), or a local file, a training run folder or :func:`~beitv2_zoo.save_pretrained`
            folder, an ``https://`` URL, or ``'hf-hub:org/repo[@rev][/file]'``. A file's own head
            is kept, with its class names, unless ``num_classes=`` asks for another one.
        device: where to put the model (default CPU).
        cache_dir, offline, url_map, progress: download settings for ``pretrained=True`` or a
            URL, overriding ``BEITV2_ZOO_CACHE``, ``BEITV2_ZOO_OFFLINE``, ``BEITV2_ZOO_URL_MAP``
            and ``BEITV2_ZOO_PROGRESS`` (see :mod:`beitv2_zoo.settings`); ``offline`` also keeps
            ``hf-hub:`` weights to huggingface_hub's local cache.
        safetensors_copy: keep and load a canonical safetensors copy of a downloaded ``.pth``
            (memory-mapped; the default, unless ``BEITV2_ZOO_SAFETENSORS_COPY=0``). The weights
            are bit-identical either way.
        **kwargs: ``dtype`` (default ``torch.float32``: a checkpoint stored in another floating
            type is converted, with a log line), ``compile`` (``True`` wraps the model in
            ``torch.compile`` where available), ``num_classes`` (a new head), ``img_size``
            (position tables are resized), ``drop_path_rate``, and any other argument of the
            model class. For a BEiT v2 pretraining model, ``tokenizer_weights`` chooses the
            weights of ``model.tokenizer``: ``True`` (the record's tokenizer), a weight spec,
            or ``False`` (random). By default they come from the model's file, or from the
            record's tokenizer when the file has none (official files), and are random
            without ``pretrained``. ``features_only=True`` with ``out_indices`` (block indices, or an
            int for the last n blocks; default 3) returns timm's features-only backbone: ``model(x)`` is
            a list of ``[B, D, H/16, W/16]`` maps and ``model.feature_info`` describes them.
            ``dynamic_img_size=True`` accepts other input sizes at forward (tables resized on the fly).
            Every model carries timm's ``pretrained_cfg`` (``timm.data.resolve_model_data_config``
            gives the record's preprocessing).

    Returns:
        The model in eval mode, with ``model.weights_info`` (its :class:`WeightRecord`, or
        ``None``; for a pretrained folder, a record made from its ``config.json``, without
        sources), ``model.class_names`` (a tuple, or ``None`` when unknown), and
        ``model.architecture_name`` / ``model.build_settings`` (the architecture key and every
        constructor keyword, which :func:`beitv2_zoo.save_pretrained` writes).

    Raises:
        UnknownModelError: an unknown name (with the closest names).
        ModelConfigError: settings that do not fit the architecture.
        CheckpointError, CheckpointMismatchError: an unreadable file, or one that does not fit.
        WeightsDownloadError, HashMismatchError: the download failed or was not the promised file.
    """
    options = DownloadOptions(cache_dir, offline, url_map, progress, safetensors_copy)
    tokenizer_weights = kwargs.pop("tokenizer_weights", None)
    dtype = kwargs.pop("dtype", None) or torch.float32
    compile_model = kwargs.pop("compile", False)
    want_features, out_indices = kwargs.pop("features_only", False), kwargs.pop("out_indices", 3)

    record, checkpoint, config = _record_and_checkpoint(name_or_path, pretrained, options)
    if config is not None:
        architecture, settings, architecture_name = config.architecture, {**config.settings, **kwargs}, config.architecture_name
    else:
        architecture, settings, architecture_name = _architecture(record, checkpoint, kwargs)
    _validate({**architecture.settings, **settings}, architecture.is_classifier)

    tokenizer = _tokenizer_settings(architecture, settings)  # a pretraining model's tokenizer, else None
    tokenizer_name = (record.tokenizer if record is not None else None) or resolve.default_tokenizer(architecture_name)
    if checkpoint is None:
        model = architecture.build(**settings)
        if tokenizer is not None and tokenizer_weights:  # e.g. a random backbone to pretrain with a trained tokenizer
            state = resolve.tokenizer_state(tokenizer_name, tokenizer_weights, None, options)
            load_weights(model.tokenizer, Checkpoint(state, "canonical", Path("tokenizer weights")), dtype=dtype)
    else:
        if tokenizer is not None:
            fresh = VQKD(**tokenizer).state_dict() if tokenizer_weights is False else None
            state = resolve.with_tokenizer(checkpoint.state_dict, tokenizer_name, tokenizer_weights, fresh, options)
            checkpoint = Checkpoint(state, checkpoint.layout, checkpoint.path, checkpoint.classes, checkpoint.metadata)
        with torch.device("meta"):  # no random init thrown away; the checkpoint's tensors become the parameters
            model = architecture.build(**settings)
        load_weights(model, checkpoint, dtype=dtype)

    model.weights_info = record
    num_classes = getattr(model, "num_classes", 0)
    model.class_names = (_class_names(record, checkpoint, num_classes) if config is None
                         else _folder_class_names(config, checkpoint, num_classes))
    model.architecture_name = architecture_name
    model.build_settings = {**architecture.settings, **settings}
    preprocessing = record.preprocessing if record is not None else None
    model.pretrained_cfg = pretrained_cfg_of(record or preprocessing or IMAGENET_EVAL, num_classes or 0)
    if want_features:  # timm's create_model(features_only=True, out_indices=...): a list of NCHW maps
        if not hasattr(model, "feature_info"):
            raise ModelConfigError(f"features_only=True needs a BEiT backbone; {architecture_name} has no feature maps")
        model = features_only(model, out_indices)
    model = model.to(device=device or "cpu", dtype=dtype).eval()
    return cast(ZooModel, compiled(model) if compile_model else model)


@overload
def inference_model(model: nn.Module | ZooModel | str, inputs: ImageInput, *, topk: int | None = ...,
                    batch_size: int = ..., num_workers: int | None = ..., on_error: str = ...,
                    mode: str | None = ..., return_logits: bool = ..., **kwargs: Any) -> Prediction: ...
@overload
def inference_model(model: nn.Module | ZooModel | str, inputs: list[ImageInput] | tuple[ImageInput, ...], *,
                    topk: int | None = ..., batch_size: int = ..., num_workers: int | None = ...,
                    on_error: str = ..., mode: str | None = ..., return_logits: bool = ...,
                    **kwargs: Any) -> list[Prediction | None]: ...


def inference_model(
    model: nn.Module | ZooModel | str,
    inputs: ImageInput | Sequence[ImageInput],
    *,
    topk: int | None = None,
    batch_size: int = 8,
    num_workers: int | None = None,
    on_error: str = "raise",
    mode: str | None = None,
    return_logits: bool = False,
    **kwargs: Any,
) -> Any:
    """Classify or segment one image or a list of images, as mmpretrain's and mmseg's ``inference_model`` do.

    A classifier gives class scores; a semantic segmenter (``model.task == 'semantic-segmentation'``,
    e.g. ``'beitv2_base_patch16_224_pt1k_ftade20k'``) gives a label map, through
    :func:`beitv2_zoo.segment.segment`.

    Args:
        model: a model from :func:`get_model`, or a registered name (then built with
            ``pretrained=True`` unless ``pretrained=`` is given in ``kwargs``).
        inputs: a path, a PIL image, an RGB ``uint8`` HWC array, a CHW tensor, or a list of them.
        topk: (classifiers) also return the ``topk`` best classes under ``'pred_topk'``.
        batch_size: (classifiers) images per forward pass when ``inputs`` is a list.
        num_workers: (classifiers) threads that decode and preprocess the next batch while the model
            computes the current one (``0``: all in the calling thread; ``None``: chosen by
            :func:`beitv2_zoo.inference.auto_workers`).
        on_error: ``'raise'`` (an unreadable image raises :class:`ImageLoadError`; an image
            with NaN pixels, no pixels or an aspect ratio over 64:1, :class:`InvalidInputError`)
            or ``'skip'`` (it is logged and its result is ``None``).
        mode: (segmenters) ``'slide'`` (mmseg's overlapping windows) or ``'whole'`` (the resized
            image at once); ``None``: the record's ``test_cfg`` mode (``'slide'`` for every ADE20K file).
        return_logits: (segmenters) also return ``seg_logits`` at the original size.
        **kwargs: passed to :func:`get_model` (``pretrained=``, ``device=``, …) when ``model`` is a name.

    Returns:
        Per image, for a classifier, a dict with mmpretrain's keys: ``pred_scores`` (float32 numpy
        ``[num_classes]``, softmax), ``pred_label`` (int), ``pred_score`` (float) and
        ``pred_class`` (str: the class name, or the label index as a string when the model
        carries no class names); plus ``pred_topk`` (a list of ``(label, class, score)``) when
        ``topk`` is given. For a segmenter, a :class:`~beitv2_zoo.segment.SegPrediction` with
        mmseg's keys: ``pred_sem_seg`` (int64 numpy ``[H, W]`` at the image's own size),
        ``classes`` (the class names, a tuple), ``palette`` (an RGB tuple per class) and, with
        ``return_logits``, ``seg_logits`` (float32 ``[num_classes, H, W]``). A list of inputs
        gives a list. (Type checkers see the classifier's result; typed code that segments can
        call :func:`beitv2_zoo.segment.segment`, typed to return a ``SegPrediction``.)

    Raises:
        NonFiniteOutputError: the model's scores are NaN or infinite (no result is returned).
        ValueError: an option of the other task (``topk`` for a segmenter, ``mode`` or
            ``return_logits`` for a classifier).
    """
    if isinstance(model, str):
        if is_model(model):
            require_classifier(model, get_record(model).task)  # before any download
        kwargs.setdefault("pretrained", True)
        model = get_model(model, **kwargs)
    elif kwargs:
        raise TypeError(f"unexpected keyword arguments for an already-built model: {sorted(kwargs)}")
    if is_segmenter(model):
        if topk is not None:
            raise ValueError("topk= applies to classifiers; a segmenter labels every pixel (see pred_sem_seg)")
        return segment(cast(nn.Module, model), inputs, mode=mode, return_logits=return_logits,  # type: ignore[call-overload]
                       on_error=on_error)
    if mode is not None or return_logits:
        raise ValueError("mode= and return_logits= apply to semantic segmenters; this model is a classifier")
    return predict(cast(nn.Module, model), inputs, topk=topk, batch_size=batch_size,  # type: ignore[call-overload]
                   num_workers=num_workers, on_error=on_error)


def convert_checkpoint(src: str | Path, dst: str | Path, *, source: str | None = None,
                       **download: Any) -> canonical.ConvertedFile:
    """Convert ``src`` to a canonical safetensors file at ``dst`` (written atomically; ``beitv2-zoo convert``).

    Args:
        src: a checkpoint file, an ``https://`` URL, an ``hf-hub:`` spec, or a registered name.
        dst: the file to write; its folder is created.
        source: for a registered name, which of its sources to fetch (see :func:`beitv2_zoo.hub.select_sources`).
        **download: ``cache_dir``, ``offline``, ``url_map``, ``progress`` for the fetch.

    Raises:
        UnsafeCheckpointError: a pickle that would run code; nothing ran and nothing was written.
        CheckpointError: an unreadable source, or ``dst`` is the source file itself.
    """
    options = DownloadOptions(**download, safetensors_copy=False, source=source)
    spec: WeightSpec = True if isinstance(src, str) and is_model(src) and not Path(src).exists() else src
    local = resolve.weights_file(spec, get_record(src) if spec is True else None, options)  # type: ignore[arg-type]
    checkpoint = resolve.load_checkpoint(local)
    return canonical.write_canonical(checkpoint, dst, local.label, sha256_of(local.path), local.record)


def save_checkpoint(model: "nn.Module | ZooModel", path: str | Path) -> canonical.ConvertedFile:
    """Write ``model``'s weights as a canonical safetensors file with its class names
    (``model.class_names``), so that ``get_model(path)`` and ``get_model(name, pretrained=path)``
    give back the same model, head and labels."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()
             if not k.endswith("relative_position_index")}
    path = Path(path).expanduser()
    checkpoint = Checkpoint(state, "canonical", path, getattr(model, "class_names", None))
    record = getattr(model, "weights_info", None)
    return canonical.write_canonical(checkpoint, path, getattr(record, "name", type(model).__name__), "", record)


def compiled(model: nn.Module) -> nn.Module:
    """``torch.compile(model)`` where this platform can compile, else ``model`` unchanged with a warning.

    Compilation happens at the first call; on the CPU it needs a C++ compiler.
    """
    reason = None
    if not torch._dynamo.is_dynamo_supported():
        reason = "torch.compile is not supported on this Python/platform"
    elif next(model.parameters()).device.type == "cpu" and not shutil.which(os.environ.get("CXX", "g++")):
        reason = "no C++ compiler found for CPU compilation (set CXX)"
    if reason:
        logger.warning("compile=True ignored: %s; running eagerly", reason)
        return model
    return torch.compile(model)


# ----------------------------------------------------------------- helpers
def _record_and_checkpoint(
    name_or_path: str | Path, pretrained: PretrainedArg, options: DownloadOptions,
) -> tuple[WeightRecord | None, Checkpoint | None, "pretrained_folders.PretrainedConfig | None"]:
    folder = resolve.pretrained_folder(name_or_path, options)
    if folder is not None:  # config.json + weights: rebuilt from the config, no registry entry
        config = pretrained_folders.read_config(folder.config, folder.label)
        return config.record, resolve.load_checkpoint(folder.weights), config
    if resolve.is_checkpoint_path(name_or_path):
        return None, resolve.load_checkpoint(resolve.weights_file(str(name_or_path), None, options)), None
    if not (isinstance(name_or_path, str) and is_model(name_or_path)) and Path(name_or_path).is_dir():
        raise CheckpointError(f"{name_or_path} is a folder without config.json and model.safetensors (what "
                              "save_pretrained writes); pass a checkpoint file, or a registered name with pretrained=")
    record = get_record(str(name_or_path))  # raises UnknownModelError with suggestions
    if pretrained is False or pretrained is None:
        return record, None, None
    return record, resolve.load_checkpoint(resolve.weights_file(pretrained, record, options)), None


def _architecture(record: WeightRecord | None, checkpoint: Checkpoint | None,
                  overrides: dict[str, Any]) -> tuple[Architecture, dict[str, Any], str]:
    """The architecture to build, its settings (record, then file, then the caller's overrides) and its name."""
    if record is None:
        assert checkpoint is not None
        architecture, settings = architecture_of(checkpoint.state_dict)
        name = next((n for n, a in ARCHITECTURES.items() if a is architecture), "")
        return architecture, {**settings, **overrides}, name
    settings: dict[str, Any] = {**record.model_kwargs, "img_size": record.preprocessing.crop_size}
    if record.num_classes:  # pretraining models and tokenizers have no classification head
        settings["num_classes"] = _head_size(record, checkpoint, overrides)
    return ARCHITECTURES[record.architecture], {**settings, **overrides}, record.architecture


def _head_size(record: WeightRecord, checkpoint: Checkpoint | None, overrides: dict[str, Any]) -> int:
    """The record's head size, or the file's when a file with another head is loaded and no
    ``num_classes=`` was given: a user's 10-class file stays a 10-class model."""
    head = checkpoint.state_dict.get("head.weight") if checkpoint is not None else None
    if "num_classes" in overrides or head is None or head.ndim != 2 or head.shape[0] == record.num_classes:
        return record.num_classes
    logger.warning("%s has a %d-class head; keeping it and the file's class names instead of %s's %d classes "
                   "(pass num_classes= for a new head)", checkpoint.path, head.shape[0], record.name, record.num_classes)
    return int(head.shape[0])


def _tokenizer_settings(architecture: Architecture, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The :class:`~beitv2_zoo.models.VQKD` keywords of the tokenizer this model will own; ``None`` if it owns none."""
    merged = {**architecture.settings, **settings}
    if merged.get("tokenizer") is None:
        return None
    return {**merged["tokenizer"], "img_size": merged.get("img_size", 224)}


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


_LABEL_SETS_BY_SIZE = {1000: "imagenet-1k", 21841: "imagenet-21k"}


def _folder_class_names(config: "pretrained_folders.PretrainedConfig", checkpoint: Checkpoint | None,
                        num_classes: int) -> tuple[str, ...] | None:
    """A pretrained folder's class names (its weights file's, else its config's) when they fit the head;
    ImageNet-1k's for a 1000-class head without names (timm's repositories name none; a 21k head is
    left unnamed, since 21k checkpoints differ in their class order)."""
    if not num_classes:
        return None
    for names in (checkpoint.classes if checkpoint is not None else None, config.class_names):
        if names and len(names) == num_classes:
            return tuple(names)
    return label_set_names("imagenet-1k") if num_classes == 1000 else None


def _class_names(record: WeightRecord | None, checkpoint: Checkpoint | None, num_classes: int) -> tuple[str, ...] | None:
    """The file's class names when they fit the head, else the record's, else ImageNet's by head size
    (only for ImageNet models or files without a record); ``None`` when unknown."""
    if not num_classes or (record is not None and record.label_set is None):  # no classification head
        return None
    if checkpoint is not None and checkpoint.classes and len(checkpoint.classes) == num_classes:
        return checkpoint.classes
    if record is not None and record.num_classes == num_classes:
        return label_set_names(record.label_set)
    guess = _LABEL_SETS_BY_SIZE.get(num_classes)
    if guess and (record is None or str(record.label_set).startswith("imagenet")):
        return label_set_names(guess)
    return None


__all__ = ["compiled", "convert_checkpoint", "get_model", "inference_model", "list_models", "save_checkpoint"]
