"""The CPU segmentation reproduction (``examples/reproduction/segmentation``): the canvases are labelled
by the digits pasted on them, the splits keep the classifier's held-out digits held out, and the whole
script runs end to end (a smoke run of a few steps per stage)."""

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("sklearn")

FOLDER = Path(__file__).resolve().parents[2] / "examples" / "reproduction" / "segmentation"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"segmentation_reproduction_{name}", FOLDER / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def digits_root(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("prepare_digits", FOLDER.parent / "prepare_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = tmp_path_factory.mktemp("digits")
    module.main(root)
    return root


@pytest.fixture(scope="module")
def canvases(digits_root, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("canvases")
    meta = _module("prepare_canvases").main(out, digits_root, counts={"training": 60, "validation": 30})
    return out, meta


def _expected_label(entry: dict, images: np.ndarray) -> np.ndarray:
    """The label map rebuilt from the placements alone: each digit's enlarged ink above half, in paint order."""
    label = np.zeros((64, 64), dtype=np.uint8)
    for digit in entry["digits"]:
        side, x, y = digit["side"], digit["x"], digit["y"]
        grey = Image.fromarray((images[digit["index"]] * (255.0 / 16.0)).round().astype(np.uint8), mode="L")
        ink = np.asarray(grey.resize((side, side), Image.Resampling.BICUBIC), dtype=np.float64) / 255.0
        label[y:y + side, x:x + side][ink > 0.5] = digit["class"] + 1
    return label


def test_each_pixel_is_labelled_by_the_digit_pasted_there(canvases):
    from sklearn.datasets import load_digits

    from beitv2_zoo.train.seg_data import load_label, segmentation_samples

    out, meta = canvases
    digits = load_digits()
    low, high = _module("prepare_canvases").DIGIT_SIDES
    for split, entries in meta["splits"].items():
        samples = segmentation_samples(out, split)
        assert [p.stem for p in samples.images] == [e["name"] for e in entries]
        for entry, image_path, label_path in zip(entries, samples.images, samples.labels):
            assert 1 <= len(entry["digits"]) <= 3
            for digit in entry["digits"]:
                assert digit["class"] == int(digits.target[digit["index"]])
                assert low <= digit["side"] <= high and 0 <= digit["x"] <= 64 - digit["side"]
            assert Image.open(label_path).mode == "P"
            label = load_label(label_path)
            assert np.array_equal(label, _expected_label(entry, digits.images)), entry["name"]
            pixels = np.asarray(Image.open(image_path))
            assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
    assert meta["classes"] == ["background", *map(str, range(10))]


def test_digits_are_visible_where_labelled(canvases):
    """Labelled pixels are ink: their colour differs from the canvas's background pixels."""
    out, meta = canvases
    entry = meta["splits"]["validation"][0]
    pixels = np.asarray(Image.open(out / "images" / "validation" / f"{entry['name']}.png"), dtype=np.float64)
    label = np.asarray(Image.open(out / "annotations" / "validation" / f"{entry['name']}.png"))
    for value in np.unique(label[label > 0]):
        assert np.abs(pixels[label == value].mean(0) - pixels[label == 0].mean(0)).max() > 30


def test_splits_are_disjoint_and_the_classifiers(canvases, digits_root):
    out, meta = canvases
    used = {split: {d["index"] for e in entries for d in e["digits"]} for split, entries in meta["splits"].items()}
    held_out = {int(p.stem) for p in (digits_root / "main" / "val").glob("*/*.png")}
    seen_by_mim = {int(p.stem) for p in (digits_root / "main" / "train").glob("*/*.png")}
    assert len(held_out) == 300 and len(seen_by_mim) == 997
    assert used["validation"] <= held_out and used["training"] <= seen_by_mim
    assert not used["validation"] & used["training"]


def test_same_seed_same_files(canvases, digits_root, tmp_path):
    out, _ = canvases
    again = tmp_path / "again"
    _module("prepare_canvases").main(again, digits_root, counts={"training": 60, "validation": 30})

    def digest(root: Path) -> dict[str, str]:
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    assert digest(again) == digest(out)
    other = _module("prepare_canvases").main(tmp_path / "other", digits_root, seed=1,
                                             counts={"training": 4, "validation": 2})
    assert other["splits"]["training"][0] != json.loads((out / "canvases.json").read_text())["splits"]["training"][0]


def test_run_end_to_end_with_a_few_steps(digits_root, tmp_path):
    """Every stage for 2 steps on a few canvases (about 15 s): the results JSON and README table are written."""
    readme = tmp_path / "out" / "README.md"
    readme.parent.mkdir()
    readme.write_text("# title\n\n<!-- results:start -->\nold\n<!-- results:end -->\n\ntail\n", encoding="utf-8")
    digits_work = tmp_path / "digits_work"
    digits_work.mkdir()
    (digits_work / "data").symlink_to(digits_root, target_is_directory=True)
    run = _module("run")
    assert run.main(["--work-dir", str(tmp_path / "seg"), "--digits-work-dir", str(digits_work), "--out",
                     str(readme.parent), "--seeds", "0", "--max-steps", "2", "--canvases", "16", "8"]) == 0
    results = json.loads((readme.parent / "results.json").read_text())
    assert results["seeds"] == [0] and results["num_val_images"] == 8
    row = results["per_seed"]["0"]
    for arm in ("pretrained", "scratch"):
        assert 0.0 <= row[f"{arm}_mIoU"] <= 100.0 and 0.0 <= row[f"{arm}_aAcc"] <= 100.0
        assert list(row[f"{arm}_per_class_IoU"]) == ["background", *map(str, range(10))]
    report = json.loads((tmp_path / "seg" / "seed0" / "pretrained" / "test_validation.json").read_text())
    assert report["reduce_zero_label"] is False and report["num_images"] == 8
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# title\n") and text.endswith("\ntail\n") and "old" not in text
    assert "| MIM-pretrained backbone |" in text


def test_readme_table_is_generated_from_results(tmp_path):
    if not (FOLDER / "results.json").is_file():
        pytest.skip("no results.json yet: run examples/reproduction/segmentation/run.py")
    results = json.loads((FOLDER / "results.json").read_text())
    readme = tmp_path / "README.md"
    text = (FOLDER / "README.md").read_text(encoding="utf-8")
    readme.write_text(text, encoding="utf-8")
    _module("run").write_table(results, readme)
    assert readme.read_text(encoding="utf-8") == text, "run examples/reproduction/segmentation/run.py to regenerate it"
