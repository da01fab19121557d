"""Fixtures of the training tests: a generated 4-class ImageFolder (with one broken file),
chained tiny runs (VQ-KD → MIM) that later tests start from, and the tests' own recipes.

The tiny recipes live in ``tests/train/recipes/`` (they do not ship in the wheel); tests run them
by path, as a user runs any recipe outside the package (``beitv2-zoo train path/to/recipe.py``)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from beitv2_zoo.train.config import apply_overrides
from beitv2_zoo.train.engine import train
from beitv2_zoo.train.recipes import get_recipe

RECIPES = Path(__file__).resolve().parent / "recipes"
TINY_VQKD, TINY_MIM, TINY_FINETUNE, TINY_LINEAR_PROBE = (
    str(RECIPES / f"tiny_{task}.py") for task in ("vqkd", "mim", "finetune", "linear_probe"))
"""Paths of the tests' tiny recipes (what ``get_recipe`` and ``beitv2-zoo train`` take)."""
COLOURS = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (230, 210, 40)]


def write_folder(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """``root/<split>/class_<k>/<i>.png``: noisy 40×40 images of a class colour with a square of its complement."""
    rng = np.random.default_rng(seed)
    for split, count in per_class.items():
        for label, colour in enumerate(COLOURS):
            folder = root / split / f"class_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.normal(0, 25, (40, 40, 3)) + np.array(colour)
                y, x = rng.integers(5, 25, 2)
                pixels[y:y + 10, x:x + 10] = 255 - np.array(colour)
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """64 training images (16 per class) plus one unreadable file, and 24 validation images."""
    root = write_folder(tmp_path_factory.mktemp("folder"), {"train": 16, "val": 6})
    (root / "train" / "class_0" / "broken.png").write_bytes(b"this is not a PNG file")
    return root


def run(recipe: str, data: Path, work_dir: Path, **overrides: object) -> Path:
    """Train a recipe (a name or a recipe file) in this process without a progress bar; returns the work folder."""
    resolved = apply_overrides(get_recipe(recipe), {"data_root": str(data), **overrides})
    train(resolved, work_dir, progress=False)
    return work_dir


def losses(work_dir: Path, key: str = "loss") -> list[float]:
    import json

    rows = [json.loads(line) for line in (work_dir / "log.jsonl").read_text().splitlines()]
    return [row[key] for row in rows if key in row and "epoch" in row]


@pytest.fixture(scope="session")
def vqkd_run(image_folder, tmp_path_factory) -> Path:
    return run(TINY_VQKD, image_folder, tmp_path_factory.mktemp("vqkd"), max_steps=8)


@pytest.fixture(scope="session")
def mim_run(image_folder, vqkd_run, tmp_path_factory) -> Path:
    return run(TINY_MIM, image_folder, tmp_path_factory.mktemp("mim"), max_steps=8,
               tokenizer=str(vqkd_run / "model.safetensors"))
