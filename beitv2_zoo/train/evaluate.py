"""Classification evaluation: top-1 / top-5 and per-class accuracy, summed over ranks.

Also the ``test`` entry point: a registered model (with its published or given weights), a
recipe (a name or a recipe file), or a training run evaluated on an ``ImageFolder`` /
``ann_file`` split, results as JSON. Segmentation targets (a registered segmenter, a segmentation
file or recipe run) go to :func:`beitv2_zoo.train.seg_evaluate.run_seg_test` instead.
"""

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data import ImageDataset, eval_loader, split_samples, to_device
from .distributed import DistEnv, all_reduce_sum
from .errors import DataError, RecipeError

logger = logging.getLogger(__name__)


@torch.no_grad()
def classification_counts(model: nn.Module, loader: Any, env: DistEnv, num_classes: int,
                          amp_dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Per-class image counts, top-1 and top-5 hits, and replaced (unreadable) images, over all ranks."""
    was_training = model.training
    model.eval()
    device = env.device
    total = torch.zeros(num_classes, dtype=torch.float64, device=device)
    top1 = torch.zeros_like(total)
    top5 = torch.zeros_like(total)
    replaced = torch.zeros((), dtype=torch.float64, device=device)
    for batch in loader:
        batch = to_device(batch, device)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(batch["image"])
        labels = batch["label"]
        k = min(5, logits.shape[-1])
        ranked = logits.float().topk(k, dim=-1).indices
        hit1 = (ranked[:, 0] == labels).double()
        hit5 = (ranked == labels[:, None]).any(dim=-1).double()
        total.index_add_(0, labels, torch.ones_like(hit1))
        top1.index_add_(0, labels, hit1)
        top5.index_add_(0, labels, hit5)
        replaced += batch["replaced"].sum()
    model.train(was_training)
    counts = torch.stack([total, top1, top5])
    return {"counts": all_reduce_sum(counts, env).cpu(), "replaced": all_reduce_sum(replaced, env).cpu()}


def accuracy_report(counts: dict[str, torch.Tensor], classes: tuple[str, ...]) -> dict[str, Any]:
    """``{'num_images', 'top1', 'top5', 'per_class': {name: {'accuracy', 'count'}}, 'skipped_images'}`` in percent."""
    total, top1, top5 = counts["counts"]
    n = float(total.sum())
    per_class = {
        (classes[i] if i < len(classes) else str(i)): {
            "accuracy": round(100.0 * float(top1[i] / total[i]), 4), "count": int(total[i])}
        for i in range(total.shape[0]) if total[i] > 0
    }
    return {
        "num_images": int(n),
        "top1": round(100.0 * float(top1.sum()) / max(n, 1.0), 4),
        "top5": round(100.0 * float(top5.sum()) / max(n, 1.0), 4),
        "per_class": per_class,
        "skipped_images": int(counts["replaced"]),
    }


def run_test(target: str, data: str, weights: str | None = None, split: str | None = None, ann_file: str = "",
             batch_size: int = 64, num_workers: int = 4, device: str | None = None, out: Path | None = None,
             amp: str = "none", mode: str | None = None, reduce_zero_label: bool | None = None) -> dict[str, Any]:
    """Evaluate ``target`` on ``data`` (see ``beitv2-zoo test --help``); rank 0 returns (and writes) the report.

    ``split`` defaults to ``val`` (classification) or ``validation`` (segmentation); ``mode`` and
    ``reduce_zero_label`` apply to segmenters only (``None``: the model's or recipe's own).
    """
    from . import distributed
    from .augment import EvalSampleTransform
    from .seg_evaluate import is_segmentation_target, run_seg_test

    if is_segmentation_target(target):
        if ann_file:
            raise DataError("--ann-file is for classification lists; a segmenter reads DIR/images/SPLIT and "
                            "DIR/annotations/SPLIT")
        return run_seg_test(target, data, weights=weights, split=split, mode=mode,
                            reduce_zero_label=reduce_zero_label, num_workers=num_workers, device=device, out=out,
                            amp=amp)
    split = split or "val"
    env = distributed.setup(device)
    try:
        model, preprocessing, description = _test_model(target, weights)
        model = model.to(env.device)
        samples = split_samples(data, split, ann_file)
        num_classes = int(getattr(model, "num_classes", 0))
        if max(samples.labels) >= num_classes or min(samples.labels) < 0:
            raise DataError(f"{data}: labels must be 0..{num_classes - 1} for this {num_classes}-class model "
                             f"(found {min(samples.labels)}..{max(samples.labels)})")
        dataset = ImageDataset(samples, EvalSampleTransform(preprocessing))
        loader = eval_loader(dataset, batch_size, min(num_workers, os.cpu_count() or 1), env.rank, env.world_size,
                             pin_memory=env.device.type == "cuda")
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        counts = classification_counts(model, loader, env, num_classes, amp_dtype)
        names = _class_names(model, samples.classes, num_classes)
        report = {**description, "data": str(data), "split": split, **accuracy_report(counts, names)}
        if env.is_main and out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        return report
    finally:
        distributed.teardown(env)


def _class_names(model: nn.Module, folder_classes: tuple[str, ...], num_classes: int) -> tuple[str, ...]:
    """The folder's class names when they cover the head, else the model's own."""
    if len(folder_classes) == num_classes and folder_classes != ("unlabelled",):
        return folder_classes
    return tuple(getattr(model, "class_names", None) or folder_classes)


def _test_model(target: str, weights: str | None) -> tuple[nn.Module, Any, dict[str, Any]]:
    """(classifier in eval mode, its evaluation preprocessing, a description for the report)."""
    from ..weights import is_model
    from .augment import eval_preprocessing
    from .models import build_for_recipe, load_weights, resolve_weights, run_recipe
    from .recipes import get_recipe

    if is_model(target):
        from ..api import get_model
        from ..transforms import create_transform

        model = get_model(target, pretrained=str(resolve_weights(weights)) if weights else True)
        return model, create_transform(model).preprocessing, {"model": target, "weights": weights or "registry"}
    recipe = get_recipe(target)
    path = resolve_weights(weights) if weights else (Path(target) / "model.safetensors" if Path(target).is_dir() else None)
    if path is None:
        raise RecipeError(f"{target} is a recipe: pass --weights (a run folder or its model.safetensors)")
    recipe = run_recipe(path) or recipe
    model = build_for_recipe(recipe)
    load_weights(model, str(path))
    return model.eval(), eval_preprocessing(recipe), {"model": recipe.name, "weights": str(path)}
