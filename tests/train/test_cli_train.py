"""``beitv2-zoo train`` / ``test`` and ``python -m beitv2_zoo.train``: arguments, errors, the accuracy report."""

import json
import subprocess
import sys

import torch
from PIL import Image

from beitv2_zoo.cli import main
from beitv2_zoo.train.augment import EvalSampleTransform, eval_preprocessing
from beitv2_zoo.train.checkpointing import save_weights
from beitv2_zoo.train.config import apply_overrides, save_recipe
from beitv2_zoo.train.models import build_classifier
from beitv2_zoo.train.recipes import get_recipe

from .conftest import TINY_FINETUNE, TINY_LINEAR_PROBE, write_folder


def test_train_takes_overrides_anywhere(image_folder, tmp_path, capsys):
    work = tmp_path / "run"
    code = main(["train", TINY_LINEAR_PROBE, "max_steps=2", "--data", str(image_folder), "log_interval=1",
                 "--work-dir", str(work), "--no-progress"])
    assert code == 0
    assert capsys.readouterr().out.strip().endswith("model.safetensors")
    saved = json.loads((work / "recipe.json").read_text())
    assert saved["max_steps"] == 2 and saved["data_root"] == str(image_folder) and saved["task"] == "linear_probe"
    assert len([line for line in (work / "log.jsonl").read_text().splitlines() if '"epoch"' in line]) == 2
    assert main(["plot-log", str(work / "log.jsonl"), "--out", str(work / "curves.png")]) == 0  # the log format plots
    assert (work / "curves.png").stat().st_size > 0


def test_train_errors_are_one_line_with_a_hint(image_folder, capsys):
    assert main(["train", TINY_FINETUNE, "--data", str(image_folder), "lrr=1"]) == 1
    assert "did you mean lr" in capsys.readouterr().err
    assert main(["train", "no_such_recipe", "--data", str(image_folder)]) == 1
    assert "beitv2-zoo train --list" in capsys.readouterr().err
    assert main(["train", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k" in listed and "tiny" not in listed  # published ones only


def test_test_reports_known_accuracies(tmp_path):
    """A random 10-class model; each image is filed under its 1st-, 2nd- or last-ranked class, so the
    expected top-1 is 1/3 and top-5 is 2/3, class by class."""
    recipe = apply_overrides(get_recipe(TINY_FINETUNE), {"num_classes": 10})
    torch.manual_seed(0)
    model = build_classifier(recipe).eval()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save_weights(run_dir / "model.safetensors", model.state_dict())
    save_recipe(recipe, run_dir / "recipe.json")

    pool = write_folder(tmp_path / "pool", {"all": 10})
    images = sorted((pool / "all").rglob("*.png"))[:30]
    transform = EvalSampleTransform(eval_preprocessing(recipe))
    data = tmp_path / "data"
    for k in range(10):
        (data / f"c{k}").mkdir(parents=True)
    expected_top1 = [0] * 10
    for i, path in enumerate(images):
        image = Image.open(path).convert("RGB")
        with torch.no_grad():
            ranking = model(transform(image, 0)["image"][None])[0].argsort(descending=True).tolist()
        label = ranking[[0, 1, 9][i % 3]]
        expected_top1[label] += i % 3 == 0
        image.save(data / f"c{label}" / f"{i}.png")

    out = tmp_path / "report.json"
    assert main(["test", str(run_dir), "--data", str(data), "--out", str(out), "--workers", "0"]) == 0
    report = json.loads(out.read_text())
    assert report["num_images"] == 30
    assert report["top1"] == round(100 / 3, 4) and report["top5"] == round(200 / 3, 4)
    for name, entry in report["per_class"].items():
        assert entry["accuracy"] == round(100.0 * expected_top1[int(name[1:])] / entry["count"], 4)
    assert sum(e["count"] for e in report["per_class"].values()) == 30


def test_python_module_entry_point(image_folder, tmp_path):
    done = subprocess.run([sys.executable, "-m", "beitv2_zoo.train", "test", TINY_FINETUNE, "--data",
                           str(image_folder), "--weights", str(tmp_path / "missing.safetensors")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "does not exist" in done.stderr and "missing.safetensors" in done.stderr
