"""``beitv2-zoo test`` on a segmenter: the JSON report, its numbers against a direct IoUAccumulator
computation over segment()'s predictions, the flags, one process against two, and bad input."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from beitv2_zoo.train.commands import main

NAME = "test_beit_tiny_upernet"
SIZES = [(70, 50), (64, 64), (90, 40), (48, 100), (66, 66)]  # (width, height): resized, slid, cropped back


def write_ade_split(root: Path, split: str = "validation", max_label: int = 150, seed: int = 0) -> Path:
    """Images of several sizes with blocky ADE-style label maps (0 = 'other', 1..max_label)."""
    rng = np.random.default_rng(seed)
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
    for i, (width, height) in enumerate(SIZES):
        blocks = rng.integers(0, max_label + 1, (height // 8 + 1, width // 8 + 1)).astype(np.uint8)
        label = np.kron(blocks, np.ones((8, 8), dtype=np.uint8))[:height, :width]
        pixels = (rng.integers(0, 256, (height, width, 3)) * 0.3 + label[:, :, None] * 1.2).astype(np.uint8)
        Image.fromarray(pixels).save(root / "images" / split / f"img{i}.jpg", quality=95)
        Image.fromarray(label, mode="L").save(root / "annotations" / split / f"img{i}.png")
    return root


@pytest.fixture(scope="module")
def ade(tmp_path_factory) -> Path:
    return write_ade_split(tmp_path_factory.mktemp("ade"))


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """Fixed random weights of the tiny segmenter, as a file (so every build below is the same model)."""
    from beitv2_zoo import get_model

    torch.manual_seed(0)
    model = get_model(NAME)
    path = tmp_path_factory.mktemp("weights") / "tiny_upernet.pth"
    torch.save(model.state_dict(), path)
    return path


def direct_report(weights: Path, root: Path, split: str = "validation", mode: str | None = None,
                  reduce: bool = True) -> dict:
    from beitv2_zoo import get_model
    from beitv2_zoo.segment import segment
    from beitv2_zoo.train.seg_metrics import IoUAccumulator, reduce_zero_label

    model = get_model(NAME, pretrained=str(weights))
    accumulator = IoUAccumulator(model.num_classes, ignore_index=255)
    for image in sorted((root / "images" / split).iterdir()):
        label = np.asarray(Image.open(root / "annotations" / split / f"{image.stem}.png")).astype(np.int64)
        label = np.asarray(reduce_zero_label(label), dtype=np.int64) if reduce else label
        prediction = segment(model, image, mode=mode)["pred_sem_seg"]
        assert prediction.shape == label.shape
        accumulator.update(torch.from_numpy(prediction), torch.from_numpy(label))
    return accumulator.report(model.class_names)


def same(value, expected) -> bool:
    expected = float(expected)
    return value is None if math.isnan(expected) else value == round(expected, 4)


def test_report_shape_and_numbers(ade, weights, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(["test", NAME, "--data", str(ade), "--weights", str(weights), "--workers", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and printed[0].startswith("mIoU ") and "(5 images, slide)" in printed[0]
    report = json.loads(out.read_text())
    assert set(report) == {"model", "weights", "data", "split", "num_images", "mode", "reduce_zero_label", "mIoU",
                           "mAcc", "aAcc", "per_class", "skipped_images"}
    assert report["model"] == NAME and report["weights"] == str(weights) and report["split"] == "validation"
    assert report["num_images"] == 5 and report["skipped_images"] == 0
    assert report["mode"] == "slide" and report["reduce_zero_label"] is True  # the record's (ADE20K) defaults
    from beitv2_zoo.weights.labels import class_names

    assert list(report["per_class"]) == list(class_names("ade20k"))
    expected = direct_report(weights, ade)
    for key in ("mIoU", "mAcc", "aAcc"):
        assert same(report[key], expected[key]), key
    for name, entry in report["per_class"].items():
        assert set(entry) == {"IoU", "Acc"}
        assert same(entry["IoU"], expected["per_class"][name]["IoU"]) and same(entry["Acc"], expected["per_class"][name]["Acc"])


def test_whole_mode_and_labels_without_reduction(weights, tmp_path, capsys):
    root = write_ade_split(tmp_path / "custom", split="val", max_label=149, seed=1)  # labels already 0..149
    assert main(["test", NAME, "--data", str(root), "--split", "val", "--weights", str(weights), "--workers", "0",
                 "--mode", "whole", "--no-reduce-zero-label"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "whole" and report["reduce_zero_label"] is False and report["num_images"] == 5
    expected = direct_report(weights, root, split="val", mode="whole", reduce=False)
    assert same(report["mIoU"], expected["mIoU"]) and same(report["aAcc"], expected["aAcc"])


def test_a_segmentation_file_is_a_target(ade, weights, tmp_path):
    from beitv2_zoo.train.evaluate import run_test

    by_name = run_test(NAME, str(ade), weights=str(weights), num_workers=0)
    by_file = run_test(str(weights), str(ade), num_workers=0)
    assert by_file["weights"] == str(weights) and by_file["reduce_zero_label"] is True  # a 150-class head: ADE20K's
    assert by_file["mIoU"] == by_name["mIoU"]
    assert list(by_file["per_class"].values()) == list(by_name["per_class"].values())  # named 0..149: the file has no names


def test_labels_outside_the_classes_are_an_error(ade, weights, capsys):
    code = main(["test", NAME, "--data", str(ade), "--weights", str(weights), "--workers", "0", "--no-reduce-zero-label"])
    error = capsys.readouterr().err
    assert code == 1 and "outside 0..149" in error and "reduce_zero_label" in error


@pytest.mark.parametrize("layout", ["missing", "parent"])
def test_bad_data_is_one_line(layout, tmp_path):
    if layout == "missing":
        data, expected = tmp_path / "nowhere", "does not exist"
    else:
        write_ade_split(tmp_path / "ADEChallengeData2016")
        data, expected = tmp_path, f"pass --data {tmp_path / 'ADEChallengeData2016'}"
    done = subprocess.run([sys.executable, "-m", "beitv2_zoo", "test", NAME, "--data", str(data)],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert expected in done.stderr


def test_two_processes_count_every_image_once(ade, weights, tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "beitv2_zoo",
               "test", NAME, "--data", str(ade), "--weights", str(weights), "--device", "cpu", "--workers", "0",
               "--out", str(tmp_path / "two.json")]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    from beitv2_zoo.train.evaluate import run_test

    one = run_test(NAME, str(ade), weights=str(weights), num_workers=0)
    two = json.loads((tmp_path / "two.json").read_text())
    assert two["num_images"] == one["num_images"] == 5  # split 3 / 2, none twice
    assert two["per_class"] == one["per_class"] and two["mIoU"] == one["mIoU"] and two["aAcc"] == one["aAcc"]


def test_a_segmentation_run_folder_is_a_target(tmp_path, capsys):
    """A run of a segmentation recipe: rebuilt from its recipe.json, scored with its own pipeline and labels."""
    from .conftest import RECIPES, run

    root = write_ade_split(tmp_path / "ade4", split="training", max_label=4)
    write_ade_split(root, split="validation", max_label=4, seed=1)
    run_dir = run(str(RECIPES / "tiny_seg.py"), root, tmp_path / "run", max_steps=2)
    assert main(["test", str(run_dir), "--data", str(root), "--workers", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "tiny_seg" and report["weights"] == str(run_dir / "model.safetensors")
    assert report["reduce_zero_label"] is True and report["num_images"] == 5 and report["mode"] == "slide"
    assert list(report["per_class"]) == ["0", "1", "2", "3"]
    by_file = run_test_of(run_dir / "model.safetensors", root)
    assert by_file["mIoU"] == report["mIoU"] and by_file["per_class"] == report["per_class"]


def run_test_of(target: Path, root: Path) -> dict:
    from beitv2_zoo.train.evaluate import run_test

    return run_test(str(target), str(root), num_workers=0)
