"""``beitv2-zoo test`` for semantic segmenters: mIoU, mAcc, aAcc and per-class IoU / accuracy on an
ADE20K-layout split (:mod:`beitv2_zoo.train.seg_data`), measured at each label map's original size.

Per image the prediction is :func:`beitv2_zoo.segment.segment`'s (the model's evaluation pipeline:
resize to its scale, slide or whole inference, logits resized back to the original image), and the
label map is read as 8-bit indices; with ``reduce_zero_label`` (ADE20K: label 0 is "other") 0 becomes
the ignored 255 and every other label drops by one, as mmsegmentation's ``LoadAnnotations`` does.
Intersections and unions are summed per class over the whole split
(:class:`beitv2_zoo.train.seg_metrics.IoUAccumulator`), then IoU = I / U per class, mIoU their mean
over the classes present.

Under ``torchrun`` rank ``r`` of ``n`` segments images ``r, r + n, …``; the per-class areas are
summed over ranks (gloo on CPUs, NCCL on GPUs) and rank 0 returns and writes the report.

Targets: a registered segmentation name (task ``'semantic-segmentation'``, with its published
weights or ``--weights``), a segmentation checkpoint file, or a segmentation recipe (a run folder, its
``recipe.json`` or ``model.safetensors``, or a recipe with ``--weights``).
"""

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..segment import SEGMENTATION_TASK, is_segmenter, segment
from ..weights.schema import SegmentationPreprocessing
from .data import eval_loader
from .distributed import DistEnv, all_reduce_sum
from .errors import DataError, RecipeError
from .seg_data import SegmentationDataset, segmentation_samples

logger = logging.getLogger(__name__)

DEFAULT_SPLIT = "validation"
RECIPE_TASK = "segmentation"
IGNORE_INDEX = 255
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


@dataclass(frozen=True)
class RecipeInfo:
    """Stands in for a weight record on a segmenter built from a recipe: what
    :func:`beitv2_zoo.segment.segment` reads (its evaluation pipeline and label set)."""

    preprocessing: SegmentationPreprocessing
    label_set: str | None = None


@dataclass(frozen=True)
class SegTarget:
    """A segmenter ready to evaluate and what the report says about it."""

    model: Any  # a BeitSegmenter (typed loosely: its attributes are set at run time)
    description: dict[str, Any]
    reduce_zero_label: bool


# ------------------------------------------------------------------ targets
def is_segmentation_target(target: str) -> bool:
    """Whether ``beitv2-zoo test TARGET`` names a segmenter: a registered name whose task is
    ``'semantic-segmentation'``, a recipe (name, file or run) of the ``'segmentation'`` task, or a
    checkpoint file with decode-head tensors. Anything else is left to the classification test
    (which reports its own errors)."""
    from ..weights import get_record, is_model

    if is_model(target):
        return get_record(target).task == SEGMENTATION_TASK
    path = Path(target)
    if path.is_file() and path.suffix.lower() in WEIGHT_SUFFIXES:
        recipe = _recipe_beside(path)
        return recipe.task == RECIPE_TASK if recipe is not None else _has_decode_head(path)
    recipe = _maybe_recipe(target)
    return recipe is not None and recipe.task == RECIPE_TASK


def _maybe_recipe(target: str) -> Any:
    from .recipes import get_recipe

    try:
        return get_recipe(target)
    except RecipeError:
        return None


def _recipe_beside(path: Path) -> Any:
    from .models import run_recipe

    try:
        return run_recipe(path)
    except RecipeError:
        return None


def _has_decode_head(path: Path) -> bool:
    from ..checkpoint import read_checkpoint
    from ..errors import BeitZooError

    try:
        keys = read_checkpoint(path).state_dict.keys()
    except BeitZooError:
        return False
    return any(key.startswith("decode_head.") or ".decode_head." in key for key in keys)


def default_reduce_zero_label(record: Any = None, recipe: Any = None) -> bool:
    """ADE20K's convention unless stated otherwise: a recipe's ``reduce_zero_label``; a record's own
    field when it has one, else ``True`` for the ``'ade20k'`` label set. (A checkpoint file without
    either: on for ADE20K's class names or a 150-class head without names, else off.)"""
    if recipe is not None:
        return bool(getattr(recipe, "reduce_zero_label", False))
    if record is None:
        return False
    stated = getattr(record, "reduce_zero_label", None)
    return bool(stated) if stated is not None else record.label_set == "ade20k"


def recipe_preprocessing(recipe: Any) -> SegmentationPreprocessing:
    """The published-protocol evaluation of a segmentation recipe's model: keep-ratio resize to the
    recipe's ``scale``, slide windows of its ``crop_size`` every 2/3 crop (ADE20K's 341 of 512), its
    mean and std."""
    crop = int(getattr(recipe, "crop_size", 0) or recipe.img_size)
    scale = tuple(int(v) for v in (getattr(recipe, "scale", None) or (4 * crop, crop)))
    stride = max(1, (2 * crop) // 3)
    return SegmentationPreprocessing(resize_size=scale[1], crop_size=crop, scale=(scale[0], scale[1]), stride=stride,
                                     mode="slide", mean=tuple(recipe.mean), std=tuple(recipe.std))


def load_target(target: str, weights: str | None = None) -> SegTarget:
    """Build the segmenter ``target`` names (see :func:`is_segmentation_target`), weights loaded, in eval mode."""
    from ..api import get_model
    from ..weights import get_record, is_model
    from .models import resolve_weights

    if is_model(target):
        record = get_record(target)
        if weights:
            pretrained: Any = str(resolve_weights(weights))
        else:
            pretrained = bool(record.sources)
            if not pretrained:
                logger.warning("%s has no published weights: evaluating random weights", target)
        model = get_model(target, pretrained=pretrained)
        return SegTarget(model.eval(), {"model": target, "weights": weights or ("registry" if pretrained else "random")},
                         default_reduce_zero_label(record=record))
    path = Path(target)
    if path.is_file() and path.suffix.lower() in WEIGHT_SUFFIXES and _recipe_beside(path) is None:
        model = get_model(path)
        _check_segmenter(model, target)
        return SegTarget(model.eval(), {"model": getattr(model, "architecture_name", None) or path.stem,
                                        "weights": str(path)}, _file_reduce_zero_label(model))
    return _load_recipe_target(target, weights)


def _load_recipe_target(target: str, weights: str | None) -> SegTarget:
    from .models import load_weights, resolve_weights, run_recipe
    from .recipes import get_recipe

    path = Path(target)
    if path.is_file() and path.suffix.lower() in WEIGHT_SUFFIXES:  # a run's model.safetensors
        weights_path: Path | None = path
        recipe = run_recipe(path)
        if recipe is None:
            raise RecipeError(f"{path} has no recipe.json beside it")
    else:
        recipe = get_recipe(target)
        weights_path = (resolve_weights(weights) if weights else
                        (path / "model.safetensors" if path.is_dir() else None))
        if weights_path is None:
            raise RecipeError(f"{target} is a recipe: pass --weights (a run folder or its model.safetensors)")
        recipe = run_recipe(weights_path) or recipe
    model = build_recipe_segmenter(recipe)
    load_weights(model, str(weights_path))
    _check_segmenter(model, target)
    # The recipe's own evaluation pipeline and names, whatever the architecture's record says.
    model.weights_info = RecipeInfo(recipe_preprocessing(recipe), getattr(recipe, "label_set", None) or None)
    model.class_names = _recipe_class_names(recipe, int(model.num_classes))
    return SegTarget(model.eval(), {"model": recipe.name, "weights": str(weights_path)},
                     default_reduce_zero_label(recipe=recipe))


def build_recipe_segmenter(recipe: Any) -> Any:
    """The segmenter a run of ``recipe`` saves, with fresh weights (to load the run into)."""
    import dataclasses

    from .tasks.segmentation import build_segmenter

    return build_segmenter(dataclasses.replace(recipe, pretrained=""))


def _recipe_class_names(recipe: Any, num_classes: int) -> tuple[str, ...] | None:
    names = getattr(recipe, "class_names", None)
    if names and len(names) == num_classes:
        return tuple(names)
    label_set = getattr(recipe, "label_set", None)
    if label_set:
        from ..weights.labels import class_names

        try:
            names = class_names(label_set)
        except ValueError:
            return None
        return tuple(names) if len(names) == num_classes else None
    return None


def _file_reduce_zero_label(model: Any) -> bool:
    """A bare file's convention: ADE20K's (on) when its class names are ADE20K's, or when it has none
    and a 150-class head; off otherwise."""
    names = getattr(model, "class_names", None)
    if names:
        return tuple(names) == _ade20k_names()
    return int(model.num_classes) == len(_ade20k_names())


def _ade20k_names() -> tuple[str, ...]:
    from ..weights.labels import class_names

    return tuple(class_names("ade20k"))


def _check_segmenter(model: Any, target: str) -> None:
    if not is_segmenter(model):
        raise RecipeError(f"{target} is not a semantic segmenter (task {getattr(model, 'task', None)!r})")


# ----------------------------------------------------------------- the loop
class _RawPair:
    """The data-set transform of the evaluation: the decoded pixels and labels, unchanged."""

    def __call__(self, image: Any, label: np.ndarray, seed: int) -> dict[str, torch.Tensor]:
        return {"image": torch.from_numpy(np.array(image, dtype=np.uint8)), "label": torch.from_numpy(label.copy())}


def _prepare_label(label: np.ndarray, reduce_zero_label: bool, num_classes: int, source: Path) -> np.ndarray:
    """uint8 ``[H, W]`` → int64 ``[H, W]`` in ``0..K-1`` or 255, checked."""
    from .seg_metrics import reduce_zero_label as reduce

    values = label.astype(np.int64)
    if reduce_zero_label:
        values = np.asarray(reduce(values), dtype=np.int64)
    bad = (values >= num_classes) & (values != IGNORE_INDEX)
    if bad.any():
        found = sorted(int(v) for v in np.unique(values[bad]))[:5]
        hint = ("; labels 1..K with 0 as 'other' need reduce_zero_label (ADE20K)" if not reduce_zero_label else
                "; for labels 0..K-1 pass --no-reduce-zero-label")
        raise DataError(f"label map {source} holds classes {found} outside 0..{num_classes - 1} (255: ignored) "
                        f"for this {num_classes}-class model{hint}")
    return values


def segmentation_metrics(model: Any, loader: Any, samples: Any, env: DistEnv, *, mode: str | None,
                         reduce_zero_label: bool, amp_dtype: torch.dtype | None = None) -> tuple[Any, int, int]:
    """Accumulated areas over this rank's images, all-reduced: ``(IoUAccumulator, images, skipped)``."""
    from .seg_metrics import IoUAccumulator

    num_classes = int(model.num_classes)
    accumulator = IoUAccumulator(num_classes, ignore_index=IGNORE_INDEX)
    device = next(model.parameters()).device
    counts = torch.zeros(2, dtype=torch.float64)  # images, skipped (replaced by the next readable one)
    indices = iter(loader.sampler)
    for batch in loader:
        _, index = next(indices)
        if int(batch["replaced"][0]):
            counts[1] += 1
            continue
        pixels = batch["image"][0].numpy()
        label = _prepare_label(batch["label"][0].numpy(), reduce_zero_label, num_classes, samples.labels[index])
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            prediction = segment(model, pixels, mode=mode)
        accumulator.update(torch.from_numpy(prediction["pred_sem_seg"]), torch.from_numpy(label))
        counts[0] += 1
    accumulator.all_reduce()
    counts = all_reduce_sum(counts.to(env.device), env).cpu()
    return accumulator, int(counts[0]), int(counts[1])


def _rounded(value: Any) -> Any:
    """Percentages to 4 decimals; NaN (a class absent from labels and predictions) becomes ``null``."""
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    value = float(value)
    return None if value != value else round(value, 4)


def class_names_of(model: Any) -> tuple[str, ...]:
    names = getattr(model, "class_names", None)
    num_classes = int(model.num_classes)
    return tuple(names) if names and len(names) == num_classes else tuple(str(i) for i in range(num_classes))


def run_seg_test(target: str, data: str, weights: str | None = None, split: str | None = None, mode: str | None = None,
                 reduce_zero_label: bool | None = None, num_workers: int = 4, device: str | None = None,
                 out: Path | None = None, amp: str = "none") -> dict[str, Any]:
    """Evaluate the segmenter ``target`` on ``data/images/<split>`` (see the module docstring).

    Returns:
        ``{'model', 'weights', 'data', 'split', 'num_images', 'mode', 'reduce_zero_label', 'mIoU', 'mAcc',
        'aAcc', 'per_class': {name: {'IoU', 'Acc'}}, 'skipped_images'}``, percentages rounded to 4
        decimals, ``null`` for a class that neither the labels nor the predictions hold.
    """
    from . import distributed

    split = split or DEFAULT_SPLIT
    if mode not in (None, "slide", "whole"):
        raise RecipeError(f"mode must be 'slide' or 'whole', got {mode!r}")
    env = distributed.setup(device)
    try:
        samples = segmentation_samples(data, split)
        loaded = load_target(target, weights)
        model: Any = loaded.model.to(env.device)
        reduce = loaded.reduce_zero_label if reduce_zero_label is None else reduce_zero_label
        from ..segment import seg_preprocessing

        mode = mode or seg_preprocessing(model).mode
        dataset = SegmentationDataset(samples, _RawPair())
        workers = min(num_workers, os.cpu_count() or 1)
        loader = eval_loader(dataset, 1, workers, env.rank, env.world_size)  # type: ignore[arg-type]
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        accumulator, images, skipped = segmentation_metrics(model, loader, samples, env, mode=mode,
                                                            reduce_zero_label=reduce, amp_dtype=amp_dtype)
        metrics = accumulator.report(class_names_of(model))
        report = {**loaded.description, "data": str(data), "split": split, "num_images": images, "mode": mode,
                  "reduce_zero_label": reduce, "mIoU": _rounded(metrics["mIoU"]), "mAcc": _rounded(metrics["mAcc"]),
                  "aAcc": _rounded(metrics["aAcc"]), "per_class": _rounded(metrics["per_class"]),
                  "skipped_images": skipped}
        if env.is_main and out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        return report
    finally:
        distributed.teardown(env)
