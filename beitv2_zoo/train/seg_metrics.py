"""Semantic segmentation metrics as mmseg computes them (``IoUMetric``): mIoU, mAcc, aAcc.

Per image, pixels whose label is ``ignore_index`` are dropped and four class histograms are taken:
intersection (prediction == label), prediction area, label area, and union = pred + label - intersection.
The histograms are summed over the whole data set before any division:

* ``IoU[k] = I[k] / U[k]``, ``Acc[k] = I[k] / label_area[k]`` (NaN for a class absent from both);
* ``mIoU`` and ``mAcc`` are the NaN-ignoring means over classes, ``aAcc = sum(I) / sum(label_area)``.

Values outside ``0..K-1`` (other than ``ignore_index``) count in no class, as with mmseg's
``torch.histc``. mmseg keeps the histograms in float32 (exact below 2**24 pixels per class); here
they are float64, exact to 2**53, so on a large data set the two can differ in the 7th digit.
"""

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..errors import InvalidInputError

Tensorish = torch.Tensor | np.ndarray


def _as_tensor(values: Tensorish) -> torch.Tensor:
    return values if isinstance(values, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(values))


def reduce_zero_label(label: Tensorish) -> Tensorish:
    """ADE20K's label shift: 0 (``other``) → 255 (ignored), ``k`` → ``k - 1``, 255 stays 255.

    Works on numpy arrays and tensors of any integer dtype; returns a new array of the same type.
    """
    shifted = label - 1
    shifted[(label == 0) | (label == 255)] = 255
    return shifted


def intersect_and_union(
    pred: Tensorish, label: Tensorish, num_classes: int, ignore_index: int = 255
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The four class histograms of one image (or of a batch: they add up).

    Args:
        pred: predicted classes, ``[H, W]`` (any integer dtype; any shape equal to ``label``'s).
        label: ground truth, same shape; ``ignore_index`` pixels are dropped.
        num_classes: ``K``.

    Returns:
        ``(intersect, union, pred_area, label_area)``, each float64 ``[K]`` on ``pred``'s device.
    """
    pred_t, label_t = _as_tensor(pred), _as_tensor(label).to(_as_tensor(pred).device)
    if pred_t.shape != label_t.shape:
        raise InvalidInputError(f"prediction {tuple(pred_t.shape)} and label {tuple(label_t.shape)} differ in shape")
    if num_classes <= 0:
        raise InvalidInputError(f"num_classes must be positive, got {num_classes}")
    pred_t, label_t = pred_t.reshape(-1).long(), label_t.reshape(-1).long()
    keep = label_t != ignore_index
    pred_t, label_t = pred_t[keep], label_t[keep]

    def histogram(values: torch.Tensor) -> torch.Tensor:
        values = values[(values >= 0) & (values < num_classes)]
        return torch.bincount(values, minlength=num_classes).double()

    area_intersect = histogram(pred_t[pred_t == label_t])
    area_pred = histogram(pred_t)
    area_label = histogram(label_t)
    return area_intersect, area_pred + area_label - area_intersect, area_pred, area_label


def iou_from_totals(
    intersect: torch.Tensor, union: torch.Tensor, label_area: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(IoU, Acc, aAcc)`` from summed histograms: per-class fractions (float64 ``[K]``, NaN where
    undefined) and the overall pixel accuracy (mmseg's ``total_area_to_metrics``, before ×100)."""
    iou = intersect.double() / union.double()  # 0 / 0 = NaN: a class in neither
    acc = intersect.double() / label_area.double()
    total = float(label_area.sum())
    return iou, acc, float(intersect.sum()) / total if total else math.nan


def _nanmean(values: torch.Tensor) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # every class absent: NaN, not a warning
        return float(np.nanmean(values.cpu().numpy()))


class IoUAccumulator:
    """Sums the class histograms of a data set, across processes too, and reports mmseg's metrics.

    Args:
        num_classes: ``K``.
        ignore_index: label value that is not scored (255 for ADE20K after ``reduce_zero_label``).

    Attributes:
        totals: float64 ``[4, K]``: intersection, union, prediction area, label area.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes <= 0:
            raise InvalidInputError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.totals = torch.zeros(4, num_classes, dtype=torch.float64)

    def update(self, pred: Tensorish, label: Tensorish) -> None:
        """Add one image ``[H, W]`` (or a batch ``[B, H, W]``) of predicted classes and labels."""
        parts = intersect_and_union(pred, label, self.num_classes, self.ignore_index)
        counts = torch.stack(parts)
        if self.totals.device != counts.device:
            self.totals = self.totals.to(counts.device)
        self.totals += counts

    def all_reduce(self) -> None:
        """Sum the totals of every process (no-op unless ``torch.distributed`` is initialised).

        Under NCCL the totals must be on this process's GPU: they are where the updates put them.
        """
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            if dist.get_backend() == "nccl" and self.totals.device.type != "cuda":
                self.totals = self.totals.to(torch.device("cuda", torch.cuda.current_device()))
            dist.all_reduce(self.totals)

    def report(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """``{"mIoU", "mAcc", "aAcc", "per_class": {name: {"IoU", "Acc"}}}`` in percent, unrounded.

        mmseg prints these rounded to 2 decimals (``round(x, 2)``); classes absent from both the
        predictions and the labels have NaN and are left out of the means.
        """
        names = tuple(class_names) if class_names is not None else tuple(str(k) for k in range(self.num_classes))
        if len(names) != self.num_classes:
            raise InvalidInputError(f"{len(names)} class names for {self.num_classes} classes")
        intersect, union, _, label_area = self.totals.cpu()
        iou, acc, all_acc = iou_from_totals(intersect, union, label_area)
        return {
            "mIoU": _nanmean(iou) * 100.0,
            "mAcc": _nanmean(acc) * 100.0,
            "aAcc": all_acc * 100.0,
            "per_class": {
                name: {"IoU": float(i) * 100.0, "Acc": float(a) * 100.0} for name, i, a in zip(names, iou, acc)
            },
        }
