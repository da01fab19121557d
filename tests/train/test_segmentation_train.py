"""Segmentation training: the transform (mmseg's pipeline, per-sample seeds), the loss (mmseg's
CrossEntropyLoss), the official layer-decay groups, SyncBN, and the task through the shared loop
(it learns; an interrupted run resumes to the same weights, bit for bit)."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from beitv2_zoo.checkpoint.safetensors_io import load_mmap
from beitv2_zoo.models import ARCHITECTURES
from beitv2_zoo.train.config import apply_overrides
from beitv2_zoo.train.distributed import DistEnv, sync_batchnorm
from beitv2_zoo.train.engine import train
from beitv2_zoo.train.objectives import pixel_cross_entropy, segmentation_loss
from beitv2_zoo.train.recipes import get_recipe
from beitv2_zoo.train.seg_augment import (
    SegmentationEvalTransform,
    SegmentationTrainTransform,
    crop_box,
    hsv_to_rgb,
    photometric_distortion,
    reduce_zero_label,
    rgb_to_hsv,
)
from beitv2_zoo.train.tasks.segmentation import segmentation_param_groups

from .conftest import RECIPES, losses

TINY_SEG = str(RECIPES / "tiny_seg.py")


def _photo(name: str, size: tuple[int, int]) -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    return np.asarray(Image.fromarray(getattr(data, name)()).convert("RGB").resize(size, Image.BILINEAR))


def _label(pixels: np.ndarray) -> np.ndarray:
    """ADE-style labels of a photo: classes 1..4 by grey-level quartile, 0 ('other') on a 3-pixel border."""
    grey = pixels.astype(np.float64).mean(axis=-1)
    label = (np.searchsorted(np.quantile(grey, [0.25, 0.5, 0.75]), grey) + 1).astype(np.uint8)
    label[:3], label[-3:], label[:, :3], label[:, -3:] = 0, 0, 0, 0
    return label


@pytest.fixture(scope="module")
def ade_folder(tmp_path_factory) -> Path:
    """ADEChallengeData2016's layout: 4 training and 2 validation photos (JPEG) with label PNGs."""
    root = tmp_path_factory.mktemp("ade")
    photos = {"training": [("astronaut", (128, 128)), ("coffee", (150, 100)), ("chelsea", (113, 75)),
                           ("rocket", (160, 107))],
              "validation": [("coffee", (120, 80)), ("astronaut", (96, 96))]}
    for split, items in photos.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        for i, (name, size) in enumerate(items):
            pixels = _photo(name, size)
            Image.fromarray(pixels).save(root / "images" / split / f"ADE_{split}_{i:08d}.jpg", quality=95)
            Image.fromarray(_label(pixels), mode="L").save(root / "annotations" / split / f"ADE_{split}_{i:08d}.png")
    return root


# ----------------------------------------------------------------------------- transform
def _sample(size=(150, 100)) -> tuple[Image.Image, np.ndarray]:
    pixels = _photo("coffee", size)
    return Image.fromarray(pixels), _label(pixels)


def test_reduce_zero_label():
    label = np.array([[0, 1, 2], [150, 255, 7]], dtype=np.uint8)
    assert reduce_zero_label(label).tolist() == [[255, 0, 1], [149, 255, 6]]


def test_the_transform_is_a_function_of_the_seed():
    image, label = _sample()
    transform = SegmentationTrainTransform(64, scale=(128, 64), mean=(0.5,) * 3, std=(0.25,) * 3)
    first, again, other = transform(image, label, 7), transform(image, label, 7), transform(image, label, 8)
    assert first["image"].shape == (3, 64, 64) and first["image"].dtype == torch.float32
    assert first["label"].shape == (64, 64) and first["label"].dtype == torch.int64
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["label"], again["label"])
    assert not torch.equal(first["image"], other["image"])
    assert set(first["label"].unique().tolist()) <= {0, 1, 2, 3, 255}  # reduce_zero_label: 1..4 → 0..3, 0 → 255


def test_padding_to_the_crop_is_0_for_the_image_and_255_for_the_label():
    image, label = _sample((40, 30))
    transform = SegmentationTrainTransform(64, scale=(40, 30), ratio_range=(1.0, 1.0), photometric=False, hflip=0.0)
    out = transform(image, label, 0)
    assert torch.all(out["image"][:, 30:] == 0) and torch.all(out["image"][:, :, 40:] == 0)
    assert torch.all(out["label"][30:] == 255) and torch.all(out["label"][:, 40:] == 255)
    expected = torch.from_numpy(reduce_zero_label(label).astype(np.int64))
    assert torch.equal(out["label"][:30, :40], expected)  # no resize, no crop, no flip
    pixels = torch.from_numpy(np.asarray(image)).permute(2, 0, 1).float()
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None] * 255
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None] * 255
    torch.testing.assert_close(out["image"][:, :30, :40], (pixels - mean) / std)
    evaluation = SegmentationEvalTransform(64)(image, label, 0)
    assert evaluation["image"].shape == (3, 64, 64) and torch.all(evaluation["label"][48:] == 255)  # 40x30 → 64x48


def _draws(seed: int, margins: tuple[int, int], count: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(0, margins[0] + 1)), int(rng.integers(0, margins[1] + 1))) for _ in range(count)]


def test_cat_max_ratio_redraws_at_most_ten_times():
    one_class = np.full((100, 120), 3, dtype=np.uint8)
    checker = (np.indices((100, 120)).sum(axis=0) % 2).astype(np.uint8)
    for seed in range(5):
        # no crop can pass: the first draw and 10 redraws, the 11th kept (mmseg's loop)
        assert crop_box(one_class, 50, 0.75, np.random.default_rng(seed)) == _draws(seed, (50, 70), 11)[-1]
        # every crop passes: the first draw
        assert crop_box(checker, 50, 0.75, np.random.default_rng(seed)) == _draws(seed, (50, 70), 1)[0]
        # cat_max_ratio = 1: no check at all
        assert crop_box(one_class, 50, 1.0, np.random.default_rng(seed)) == _draws(seed, (50, 70), 1)[0]
    # ignored pixels are not counted: a crop of class 3 and 255 only has one class and is redrawn
    ignored = one_class.copy()
    ignored[:, ::2] = 255
    assert crop_box(ignored, 50, 0.75, np.random.default_rng(0)) == _draws(0, (50, 70), 11)[-1]
    # a crop larger than the label keeps it whole
    assert crop_box(checker[:30, :40], 64, 0.75, np.random.default_rng(0)) == (0, 0)


class _NumpyRandom:
    """``numpy.random``'s ``randint`` / ``uniform`` / ``rand`` drawn from a Generator, so mmseg's
    transforms make the same draws as ours."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def randint(self, low, high=None):
        return int(self.rng.integers(low, high)) if high is not None else int(self.rng.integers(low))

    def uniform(self, low, high):
        return self.rng.uniform(low, high)


def _mmseg_transforms():
    pytest.importorskip("mmseg")
    pytest.importorskip("cv2")
    import tests.mmseg_stub as stub

    stub.install()
    from mmseg.datasets.transforms import transforms

    return transforms


def test_crop_and_photometric_distortion_match_mmseg(monkeypatch):
    transforms = _mmseg_transforms()
    image, label = _sample((150, 100))
    pixels = np.asarray(image)
    label = reduce_zero_label(label)
    for seed in range(12):
        ours = photometric_distortion(pixels.copy(), np.random.default_rng(seed))
        monkeypatch.setattr(transforms, "random", _NumpyRandom(seed))
        theirs = transforms.PhotoMetricDistortion().transform({"img": pixels[..., ::-1].copy()})["img"][..., ::-1]
        difference = np.abs(ours.astype(int) - theirs)
        assert difference.max() <= 1 and (difference > 0).any(axis=-1).mean() < 1e-3, (seed, difference.max())

        fake = _NumpyRandom(seed)
        monkeypatch.setattr(np.random, "randint", fake.randint)
        crop = transforms.RandomCrop(48, cat_max_ratio=0.75)
        bbox = crop.crop_bbox({"img": pixels, "gt_seg_map": label})
        monkeypatch.undo()
        assert crop_box(label, 48, 0.75, np.random.default_rng(seed)) == (bbox[0], bbox[2])


def test_hsv_conversions_match_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (256, 512, 3), dtype=np.uint8)
    assert np.array_equal(rgb_to_hsv(rgb), cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV))  # exact (all 2^24 colours checked)
    hsv = np.stack([rng.integers(0, 180, (256, 512)), rng.integers(0, 256, (256, 512)),
                    rng.integers(0, 256, (256, 512))], axis=-1).astype(np.uint8)
    assert np.array_equal(hsv_to_rgb(hsv), cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))  # rows of 16 blocks of 32: vectorised
    tails = np.ascontiguousarray(hsv[:, :150])  # 4 blocks + a 22-pixel scalar tail per row
    difference = np.abs(hsv_to_rgb(tails).astype(int) - cv2.cvtColor(tails, cv2.COLOR_HSV2RGB))
    assert difference.max() <= 1 and (difference > 0).any(axis=-1).mean() < 1e-3  # 429 of 11.8M triples


# ----------------------------------------------------------------------------- loss
def test_loss_is_mmseg_cross_entropy_over_all_pixels():
    torch.manual_seed(0)
    logits, aux = torch.randn(2, 5, 8, 10, requires_grad=True), torch.randn(2, 5, 2, 3)
    label = torch.randint(0, 5, (2, 32, 40))
    label[:, :6] = 255
    out = segmentation_loss(logits, aux, label, aux_weight=0.4)
    up = torch.nn.functional.interpolate(logits, size=(32, 40), mode="bilinear", align_corners=False)
    per_pixel = torch.nn.functional.cross_entropy(up, label, ignore_index=255, reduction="none")
    torch.testing.assert_close(out["decode_loss"], per_pixel.sum() / label.numel())  # ignored pixels count as 0
    torch.testing.assert_close(out["loss"], out["decode_loss"] + 0.4 * out["aux_loss"])
    assert set(segmentation_loss(logits, None, label)) == {"loss", "decode_loss", "pixel_acc"}
    out["loss"].backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()

    pytest.importorskip("mmseg")
    import tests.mmseg_stub as stub

    stub.install()
    from mmseg.models.losses import CrossEntropyLoss

    theirs = CrossEntropyLoss(loss_weight=1.0)(up.detach(), label, ignore_index=255)
    torch.testing.assert_close(pixel_cross_entropy(logits.detach(), label), theirs, rtol=1e-6, atol=0)
    aux_up = torch.nn.functional.interpolate(aux, size=(32, 40), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out["aux_loss"], CrossEntropyLoss(loss_weight=1.0)(aux_up, label, ignore_index=255),
                               rtol=1e-6, atol=0)


# ----------------------------------------------------------------------------- optimiser groups, SyncBN
def official_groups(named_parameters, weight_decay: float, depth: int, rate: float) -> dict[str, tuple[float, float]]:
    """The official ``LayerDecayOptimizerConstructor`` rule, written out (``num_layers = depth + 2``)."""
    num_layers = depth + 2
    groups = {}
    for name, parameter in named_parameters:
        no_decay = len(parameter.shape) == 1 or name.endswith(".bias") or name in ("pos_embed", "cls_token")
        if name in ("backbone.cls_token", "backbone.mask_token", "backbone.pos_embed") or name.startswith(
                "backbone.patch_embed"):
            layer = 0
        elif name.startswith("backbone.blocks"):
            layer = int(name.split(".")[2]) + 1
        else:
            layer = num_layers - 1
        groups[name] = (rate ** (num_layers - layer - 1), 0.0 if no_decay else weight_decay)
    return groups


@pytest.mark.parametrize("arch,rate", [("beit_base_patch16_upernet", 0.75), ("test_beit_tiny_upernet", 0.9)])
def test_param_groups_follow_the_official_segmentation_rule(arch, rate):
    architecture = ARCHITECTURES[arch]
    with torch.device("meta"):
        model = architecture.model_class(**architecture.settings, num_classes=150)
    groups = segmentation_param_groups(model, 0.05, rate)
    ours = {name: (group["lr_scale"], group["weight_decay"]) for group in groups for name in group["names"]}
    depth = len(model.backbone.blocks)
    expected = official_groups(model.named_parameters(), 0.05, depth, rate)
    assert ours.keys() == expected.keys()
    for name, (scale, decay) in expected.items():
        assert ours[name] == (pytest.approx(scale, rel=1e-12), decay), name
    assert ours["backbone.cls_token"] == (pytest.approx(rate ** (depth + 1)), 0.05)  # 3-D: decayed, as officially
    assert ours["decode_head.conv_seg.weight"] == (1.0, 0.05) and ours["backbone.fpn1.0.weight"] == (1.0, 0.05)


def test_syncbn_only_under_ddp_on_gpus():
    def module():
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))

    assert isinstance(sync_batchnorm(module(), DistEnv())[1], torch.nn.BatchNorm2d)
    assert isinstance(sync_batchnorm(module(), DistEnv(world_size=2))[1], torch.nn.BatchNorm2d)  # CPU (gloo)
    converted = sync_batchnorm(module(), DistEnv(world_size=2, device=torch.device("cuda", 0)))
    assert isinstance(converted[1], torch.nn.SyncBatchNorm)
    assert converted.state_dict().keys() == module().state_dict().keys()


# ----------------------------------------------------------------------------- the task through the loop
def test_the_loss_drops_on_one_repeated_batch(ade_folder):
    from beitv2_zoo.train.tasks import setup_task

    recipe = apply_overrides(get_recipe(TINY_SEG), {"data_root": str(ade_folder), "drop_path_rate": 0.0})
    torch.manual_seed(0)
    task = setup_task(recipe, DistEnv())
    batch = torch.utils.data.default_collate([task.train_set[(0, 0)], task.train_set[(0, 1)]])
    optimizer = torch.optim.AdamW(task.param_groups, lr=3e-3)
    values = []
    task.objective.train()
    for _ in range(12):
        out = task.objective(**task.prepare(batch, torch.Generator()))
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        values.append(float(out["loss"].detach()))
    assert all(np.isfinite(values)) and values[-1] < 0.9 * values[0], values  # measured: 1.19 → 1.01
    assert sum(later < earlier for earlier, later in itertools.pairwise(values)) >= 9, values


def test_training_runs_and_evaluates(ade_folder, tmp_path):
    work = tmp_path / "run"
    train(apply_overrides(get_recipe(TINY_SEG), {"data_root": str(ade_folder)}), work, progress=False)
    values = losses(work)
    assert len(values) == 6 and all(np.isfinite(values)), values
    rows = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    steps = [row for row in rows if "epoch" in row]
    assert {"decode_loss", "aux_loss", "pixel_acc", "lr"} <= set(steps[0])
    # poly with a 2-step warmup over 6 steps (the log keeps 6 decimals): 1e-9, then (1 - 1/6) × 0.5 × 1e-3
    assert [row["lr"] for row in steps[:3]] == [0.0, round(1e-3 * 5 / 6 * (0.5 + 0.5e-6), 6), round(1e-3 * 4 / 6, 6)]
    metrics = json.loads((work / "metrics.json").read_text())
    assert 0.0 <= metrics["val_aAcc"] <= 100.0 and "val_mIoU" in metrics
    state = load_mmap(work / "model.safetensors")
    assert "decode_head.conv_seg.weight" in state and "auxiliary_head.conv_seg.weight" in state


def test_stop_and_resume_is_bit_for_bit(ade_folder, tmp_path):
    overrides = {"data_root": str(ade_folder), "num_workers": 1, "save_interval": 2, "keep_last": 2}
    recipe = apply_overrides(get_recipe(TINY_SEG), overrides)
    train(recipe, tmp_path / "whole", progress=False)
    train(recipe, tmp_path / "parts", stop_at=3, progress=False)
    assert not (tmp_path / "parts" / "model.safetensors").exists()
    train(recipe, tmp_path / "parts", resume=True, progress=False)
    left, right = load_mmap(tmp_path / "whole" / "model.safetensors"), load_mmap(tmp_path / "parts" / "model.safetensors")
    assert left.keys() == right.keys()
    for key in left:  # BatchNorm running statistics included
        assert torch.equal(left[key], right[key]), key


def test_recipe_head_widths_reach_the_model():
    from beitv2_zoo.train.errors import RecipeError
    from beitv2_zoo.train.tasks.segmentation import build_segmenter

    recipe = apply_overrides(get_recipe(TINY_SEG), {"decode_channels": 24, "aux_channels": 8, "pretrained": ""})
    model = build_segmenter(recipe)
    assert model.decode_head.conv_seg.in_channels == 24 and model.auxiliary_head.conv_seg.in_channels == 8
    default = build_segmenter(apply_overrides(get_recipe(TINY_SEG), {"pretrained": ""}))
    assert default.decode_head.channels == ARCHITECTURES["test_beit_tiny_upernet"].settings["channels"]
    with pytest.raises(RecipeError, match="decode_channels"):
        apply_overrides(get_recipe(TINY_SEG), {"decode_channels": -1})
