"""Semantic segmentation: a BEiT + UPerNet segmenter trained on ADE20K-layout data.

* Model: ``beitv2_zoo.get_model(recipe.model, pretrained=…)`` at ``crop_size`` (``patch_size`` /
  ``embed_dim`` / ``depth`` / ``num_heads`` and the head widths ``decode_channels`` / ``aux_channels``
  override the architecture's where non-zero), so a classifier or
  pretraining checkpoint (or a segmenter, or a run folder) initialises the backbone with its position
  tables resized, and the adapter and heads start fresh (unless the file is a segmenter of the same
  classes). Under DDP on GPUs every BatchNorm becomes a SyncBatchNorm (the official ``SyncBN``);
  on CPU (gloo) they stay per-process BatchNorms (see :func:`~beitv2_zoo.train.distributed.sync_batchnorm`).
* Optimiser groups: the official segmentation layer decay (``mmcv_custom/layer_decay_optimizer_constructor.py``):
  with ``L`` blocks, ``backbone.cls_token`` / ``pos_embed`` / ``mask_token`` / ``patch_embed.*`` have
  layer 0, ``backbone.blocks.i.*`` layer ``i + 1``, everything else (adapter, heads, a shared
  relative position table) ``L + 1``; lr scale ``decay^(L + 1 - layer)``. No weight decay for 1-D
  tensors and names ending ``.bias`` only: the official name check (``pos_embed``, ``cls_token``)
  never matches the ``backbone.``-prefixed names, so the 3-D ``cls_token`` *is* decayed, as there.
* Loss: :func:`~beitv2_zoo.train.objectives.segmentation_loss` (decode + ``aux_weight`` × auxiliary).
* Evaluation during training: a cheap monitor, the mIoU / mAcc / aAcc of one whole-image pass per
  validation image resized to fit in the crop (:class:`~beitv2_zoo.train.seg_augment.SegmentationEvalTransform`),
  logits upsampled to the (resized) label. The published protocol (slide inference at ``scale``
  against the original-size labels) is ``beitv2-zoo test``'s.
"""

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SegmentationRecipe
from ..data import to_device
from ..distributed import DistEnv, sync_batchnorm
from ..errors import RecipeError
from ..objectives import segmentation_loss
from ..optim import param_groups
from ..seg_augment import SegmentationEvalTransform, SegmentationTrainTransform
from ..seg_data import SegmentationDataset, segmentation_samples
from .base import Batch, TaskSetup

BACKBONE = "backbone."


class SegmentationObjective(nn.Module):
    """``(image [B, 3, H, W], label int64 [B, H, W]) → {'loss', 'decode_loss', 'aux_loss', 'pixel_acc'}``."""

    def __init__(self, segmenter: nn.Module, aux_weight: float, ignore_index: int) -> None:
        super().__init__()
        self.segmenter = segmenter
        self.aux_weight = aux_weight
        self.ignore_index = ignore_index

    def forward(self, image: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, aux_logits = self.segmenter.forward_with_auxiliary(image)
        return segmentation_loss(logits, aux_logits if self.aux_weight else None, label, self.aux_weight,
                                 self.ignore_index)


def build_segmenter(recipe: SegmentationRecipe) -> nn.Module:
    """The segmenter of ``recipe`` at its crop size, with ``recipe.pretrained`` loaded (``''``: random)."""
    from ...api import get_model

    sizes = {k: getattr(recipe, k) for k in ("patch_size", "embed_dim", "depth", "num_heads") if getattr(recipe, k)}
    if recipe.decode_channels:
        sizes["channels"] = recipe.decode_channels
    if recipe.aux_channels:
        sizes["aux_channels"] = recipe.aux_channels
    model = get_model(recipe.model, pretrained=recipe.pretrained or False, num_classes=recipe.num_classes,
                      img_size=recipe.crop_size, drop_path_rate=recipe.drop_path_rate, **sizes)
    if getattr(model, "task", "") != "semantic-segmentation" or not hasattr(model, "forward_with_auxiliary"):
        raise RecipeError(f"model={recipe.model!r} builds a {type(model).__name__}; the segmentation task needs a "
                          "segmenter architecture (e.g. beit_base_patch16_upernet)")
    return model


def segmentation_param_groups(model: nn.Module, weight_decay: float, layer_decay: float) -> list[dict]:
    """The official segmentation groups (module docstring): layer ids on the ``backbone.``-stripped
    names, weight decay off for 1-D tensors and ``.bias`` only."""
    depth = len(model.backbone.blocks)  # type: ignore[union-attr,arg-type]
    return param_groups(model.named_parameters(), weight_decay, frozenset(), layer_decay, depth, strip_prefix=BACKBONE)


def class_names(model: nn.Module, num_classes: int, label_set: str = "") -> tuple[str, ...]:
    """The recipe's ``label_set`` names, else the model's class names when it has as many, ADE20K's
    for 150 classes, else ``'0'…``."""
    from ...weights.labels import class_names as label_set_names

    if label_set:
        names = label_set_names(label_set)
        if len(names) != num_classes:
            raise RecipeError(f"label_set={label_set!r} has {len(names)} classes and num_classes={num_classes}")
        return names
    names = tuple(getattr(model, "class_names", None) or ())
    if len(names) == num_classes:
        return names
    if num_classes == 150:
        return label_set_names("ade20k")
    return tuple(str(i) for i in range(num_classes))


def segmentation_evaluator(num_classes: int, classes: tuple[str, ...], ignore_index: int):
    """``(segmenter, loader, env) → {'val_mIoU', 'val_mAcc', 'val_aAcc'}`` (percent) over all ranks."""
    @torch.no_grad()
    def evaluate(model: nn.Module, loader: Any, env: DistEnv) -> dict[str, float]:
        from ..seg_metrics import IoUAccumulator

        was_training = model.training
        model.eval()
        accumulator = IoUAccumulator(num_classes, ignore_index=ignore_index)
        for batch in loader:
            batch = to_device(batch, env.device)
            label = batch["label"]
            logits = F.interpolate(model(batch["image"]).float(), size=label.shape[-2:], mode="bilinear",
                                   align_corners=False)
            accumulator.update(logits.argmax(dim=1), label)  # padding is ignore_index: not counted
        model.train(was_training)
        accumulator.all_reduce()
        report = accumulator.report(classes)
        return {"val_mIoU": float(report["mIoU"]), "val_mAcc": float(report["mAcc"]), "val_aAcc": float(report["aAcc"])}

    return evaluate


def setup(recipe: SegmentationRecipe, env: DistEnv) -> TaskSetup:
    segmenter = sync_batchnorm(build_segmenter(recipe), env)
    if not recipe.aux_weight and getattr(segmenter, "auxiliary_head", None) is not None:
        segmenter.auxiliary_head.requires_grad_(False)  # unused: DDP would wait for its gradients
    transform = SegmentationTrainTransform(recipe.crop_size, recipe.scale, recipe.ratio_range, recipe.cat_max_ratio,
                                           recipe.hflip, recipe.photometric, recipe.reduce_zero_label, recipe.mean,
                                           recipe.std, recipe.ignore_index)
    train_set = SegmentationDataset(segmentation_samples(recipe.data_root, recipe.train_split), transform,
                                    seed=recipe.seed)
    val_set = None
    if (Path(recipe.data_root) / "images" / recipe.val_split).is_dir():
        evaluation = SegmentationEvalTransform(recipe.crop_size, recipe.reduce_zero_label, recipe.mean, recipe.std,
                                               recipe.ignore_index)
        val_set = SegmentationDataset(segmentation_samples(recipe.data_root, recipe.val_split), evaluation,
                                      seed=recipe.seed)
    classes = class_names(segmenter, recipe.num_classes, recipe.label_set)

    def prepare(batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"image": batch["image"], "label": batch["label"]}

    return TaskSetup(
        objective=SegmentationObjective(segmenter, recipe.aux_weight, recipe.ignore_index),
        saved=segmenter,
        train_set=train_set,  # type: ignore[arg-type]
        val_set=val_set,  # type: ignore[arg-type]
        param_groups=segmentation_param_groups(segmenter, recipe.weight_decay, recipe.layer_decay),
        prepare=prepare,
        evaluate=segmentation_evaluator(recipe.num_classes, classes, recipe.ignore_index),
        classes=classes,
    )
