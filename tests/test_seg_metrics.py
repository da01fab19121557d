"""mIoU / mAcc / aAcc as mmseg 1.2.2's IoUMetric computes them."""

import math
import sys
import types

import numpy as np
import pytest
import torch

from beitv2_zoo.errors import InvalidInputError
from beitv2_zoo.train.seg_metrics import IoUAccumulator, intersect_and_union, reduce_zero_label

NUM_CLASSES = 12


def _iou_metric_class():
    """mmseg's IoUMetric, imported without mmseg.models (no mmcv.ops needed); ``prettytable`` (only
    used to print its table) is stood in for when it is not installed."""
    pytest.importorskip("mmseg")
    pytest.importorskip("mmengine")
    try:
        import prettytable  # noqa: F401
    except ImportError:
        stub = types.ModuleType("prettytable")

        class PrettyTable:
            def add_column(self, *args, **kwargs):
                pass

            def get_string(self):
                return ""

        stub.PrettyTable = PrettyTable
        sys.modules["prettytable"] = stub
    from mmseg.evaluation.metrics.iou_metric import IoUMetric

    return IoUMetric


def _dataset(seed: int, zero_label: bool):
    """Random predictions and labels of varied sizes, with ignore pixels, out-of-range labels and two
    classes that never occur (NaN IoU)."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(6):
        h, w = (int(v) for v in rng.integers(20, 70, 2))
        pred = rng.integers(0, NUM_CLASSES - 2, (h, w))
        label = np.where(rng.random((h, w)) < 0.6, pred, rng.integers(0, NUM_CLASSES - 2, (h, w)))
        if zero_label:  # raw ADE-style labels: 0 = other, 1..K
            label = np.where(rng.random((h, w)) < 0.1, 0, label + 1).astype(np.uint8)
            label[rng.random((h, w)) < 0.05] = 255
        else:
            label[rng.random((h, w)) < 0.1] = 255
        images.append((pred.astype(np.int64), label))
    return images


def _mmseg_metrics(images, zero_label: bool):
    IoUMetric = _iou_metric_class()
    metric = IoUMetric(ignore_index=255, iou_metrics=["mIoU"])
    metric.dataset_meta = {"classes": tuple(f"c{k}" for k in range(NUM_CLASSES))}
    for pred, label in images:
        gt = label.copy()
        if zero_label:  # mmseg's LoadAnnotations(reduce_zero_label=True)
            gt[gt == 0] = 255
            gt = gt - 1
            gt[gt == 254] = 255
        sample = {
            "pred_sem_seg": {"data": torch.from_numpy(pred)[None]},
            "gt_sem_seg": {"data": torch.from_numpy(gt.astype(np.int64))[None]},
        }
        metric.process({}, [sample])
    totals = [sum(part) for part in zip(*metric.results)]
    raw = IoUMetric.total_area_to_metrics(*totals, metrics=["mIoU"])
    return metric.compute_metrics(metric.results), raw, totals


@pytest.mark.parametrize("zero_label", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_mmseg_iou_metric(seed, zero_label):
    images = _dataset(seed, zero_label)
    rounded, raw, totals = _mmseg_metrics(images, zero_label)

    acc = IoUAccumulator(NUM_CLASSES)
    for pred, label in images:
        acc.update(pred, reduce_zero_label(label) if zero_label else label)
    for ours, theirs in zip(acc.totals, totals):
        assert torch.equal(ours, theirs.double())
    names = tuple(f"c{k}" for k in range(NUM_CLASSES))
    report = acc.report(names)

    for key in ("mIoU", "mAcc", "aAcc"):  # mmseg's rounded values are float32: 47.72 reads 47.720001
        assert round(report[key], 2) == pytest.approx(float(rounded[key]), abs=1e-4), key
    assert report["aAcc"] == pytest.approx(float(raw["aAcc"]) * 100, rel=1e-6)
    assert report["mIoU"] == pytest.approx(float(np.nanmean(raw["IoU"])) * 100, rel=1e-6)
    assert report["mAcc"] == pytest.approx(float(np.nanmean(raw["Acc"])) * 100, rel=1e-6)
    ious = np.array([report["per_class"][n]["IoU"] for n in names])
    accs = np.array([report["per_class"][n]["Acc"] for n in names])
    np.testing.assert_allclose(ious, raw["IoU"].astype(np.float64) * 100, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(accs, raw["Acc"].astype(np.float64) * 100, rtol=1e-6, equal_nan=True)
    assert np.isnan(ious[-2:]).all()  # the two classes that never occur


def test_intersect_and_union_by_hand():
    pred = torch.tensor([[0, 1, 1], [2, 2, 0]])
    label = torch.tensor([[0, 1, 2], [255, 2, 7]])  # 255 ignored; 7 is in no class
    inter, union, area_pred, area_label = intersect_and_union(pred, label, 3)
    assert inter.dtype == torch.float64
    assert inter.tolist() == [1, 1, 1]
    assert area_pred.tolist() == [2, 2, 1]  # the pixel under 255 is dropped from the prediction too
    assert area_label.tolist() == [1, 1, 2]
    assert union.tolist() == [2, 2, 2]


def test_reduce_zero_label():
    raw = np.array([0, 1, 2, 150, 255], dtype=np.uint8)
    assert reduce_zero_label(raw).tolist() == [255, 0, 1, 149, 255]
    assert reduce_zero_label(torch.from_numpy(raw).long()).tolist() == [255, 0, 1, 149, 255]


def test_report_shapes_and_empty():
    acc = IoUAccumulator(3)
    report = acc.report()
    assert math.isnan(report["mIoU"]) and math.isnan(report["aAcc"])
    acc.update(np.zeros((2, 2), np.int64), np.zeros((2, 2), np.int64))
    acc.all_reduce()  # no process group: nothing to do
    report = acc.report(("a", "b", "c"))
    assert report["mIoU"] == 100.0 and report["aAcc"] == 100.0
    assert report["per_class"]["a"] == {"IoU": 100.0, "Acc": 100.0}
    assert math.isnan(report["per_class"]["b"]["IoU"])
    with pytest.raises(InvalidInputError):
        acc.report(("a",))
    with pytest.raises(InvalidInputError):
        acc.update(np.zeros((2, 2)), np.zeros((2, 3)))
