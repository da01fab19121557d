"""Write the segmentation reproduction's data: real handwritten digits on textured canvases, labelled
pixel by pixel, in the ADE20K layout.

Each canvas is a 64 × 64 RGB image holding 1 to 3 of scikit-learn's handwritten digits (the 8 × 8
``load_digits`` images), each enlarged (bicubic) to a random side of 24 to 36 pixels (the
classification images are 32) and pasted at a random place (later digits may cover part of earlier
ones) in a light, nearly grey ink over a dark, nearly grey background with smooth low-contrast
shading and grain, as the classification reproduction's digits are light ink on black. A pixel's
label is ``1 + digit`` where that digit's enlarged ink (grey level above half of full ink) is on top,
else ``0`` (background): the 11 classes of the label set ``digits-canvas`` (``background``, ``'0'``
… ``'9'``).

The digits come from ``prepare_digits.py``'s splits (it is run first when its folder is missing):
training canvases use only the 997 ``main/train`` digits, validation canvases only the 300
``main/val`` digits, so no validation digit was ever seen by the tokenizer or MIM pretraining of the
classification reproduction, whose backbone the segmenter starts from. Everything is drawn from a
seeded generator: the same seed writes the same files.

Layout written under ``OUT``::

    images/{training,validation}/canvas_NNNNN.png        RGB
    annotations/{training,validation}/canvas_NNNNN.png   8-bit palette PNG, the palette index is the class
    canvases.json                                        every digit placed: source index, class, x, y, side

Usage: ``python prepare_canvases.py OUT [--digits DIGITS_DIR] [--seed 0]``
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
CANVAS = 64
DIGIT_SIDES = (24, 36)  # inclusive range of an enlarged digit's side
INK_THRESHOLD = 0.5  # a pixel is ink where the enlarged digit's grey level passes half of full ink
MAX_DIGITS = 3
SPLITS = {"training": ("main/train", 1000), "validation": ("main/val", 300)}
"""Split → (the ``prepare_digits.py`` folder whose digits it uses, number of canvases)."""


def split_digits(digits_root: Path) -> dict[str, list[int]]:
    """The ``load_digits`` indices of each split: the file names ``NNNN.png`` that ``prepare_digits.py``
    wrote under ``main/train`` and ``main/val`` (so the splits are exactly the classifier's)."""
    splits = {}
    for split, (folder, _) in SPLITS.items():
        files = sorted((digits_root / folder).glob("*/*.png"))
        if not files:
            raise FileNotFoundError(f"no digits under {digits_root / folder}; run prepare_digits.py {digits_root}")
        splits[split] = sorted(int(path.stem) for path in files)
    return splits


def enlarged_ink(pixels: np.ndarray, side: int) -> np.ndarray:
    """An 8 × 8 ``load_digits`` image (0..16) → its ink coverage, float ``[side, side]`` in ``[0, 1]``
    (bicubic, as ``prepare_digits.py`` enlarges)."""
    grey = Image.fromarray((pixels * (255.0 / 16.0)).round().astype(np.uint8), mode="L")
    return np.asarray(grey.resize((side, side), Image.Resampling.BICUBIC), dtype=np.float64) / 255.0


def ink_mask(pixels: np.ndarray, side: int) -> np.ndarray:
    """The pixels labelled as the digit: bool ``[side, side]``."""
    return enlarged_ink(pixels, side) > INK_THRESHOLD


def _background(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A dark, nearly grey background with smooth low-contrast shading, float ``[64, 64, 3]`` in 0..255,
    and its mean level (the classification digits are light ink on black)."""
    base = rng.uniform(0, 60) + rng.normal(0.0, 6.0, 3)
    coarse = rng.normal(0.0, 12.0, (4, 4, 3))
    smooth = np.stack([np.asarray(Image.fromarray(coarse[:, :, c].astype(np.float32), mode="F")
                                  .resize((CANVAS, CANVAS), Image.Resampling.BICUBIC)) for c in range(3)], axis=-1)
    image = np.clip(base + smooth, 0, 255)
    return image, float(image.mean())


def _ink_colour(rng: np.random.Generator, background_level: float) -> np.ndarray:
    """A light, nearly grey ink at least 120 levels above the background."""
    level = rng.uniform(max(background_level + 120.0, 170.0), 255.0)
    return np.clip(level + rng.normal(0.0, 8.0, 3), 0, 255)


def _place(rng: np.random.Generator, side: int, boxes: list[tuple[int, int, int]]) -> tuple[int, int]:
    """A top-left corner for a ``side`` box, preferring one that covers at most a quarter of any earlier box."""
    x = y = 0
    for _ in range(20):
        x, y = (int(v) for v in rng.integers(0, CANVAS - side + 1, 2))
        if all(_overlap(x, y, side, *box) <= 0.25 * min(side, box[2]) ** 2 for box in boxes):
            break
    return x, y


def _overlap(x: int, y: int, side: int, bx: int, by: int, bside: int) -> int:
    width = min(x + side, bx + bside) - max(x, bx)
    height = min(y + side, by + bside) - max(y, by)
    return max(width, 0) * max(height, 0)


def render(images: np.ndarray, targets: np.ndarray, placements: list[dict], rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray]:
    """Draw one canvas: ``(RGB uint8 [64, 64, 3], label uint8 [64, 64])``; ``placements`` (index, side,
    x, y per digit, in paint order) are filled in with each digit's ``class``."""
    canvas, level = _background(rng)
    label = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    for placement in placements:
        index, side, x, y = placement["index"], placement["side"], placement["x"], placement["y"]
        ink = enlarged_ink(images[index], side)[:, :, None]
        colour = _ink_colour(rng, level)
        window = canvas[y:y + side, x:x + side]
        canvas[y:y + side, x:x + side] = window * (1.0 - ink) + colour * ink
        label[y:y + side, x:x + side][ink[:, :, 0] > INK_THRESHOLD] = 1 + int(targets[index])
        placement["class"] = int(targets[index])
    grain = rng.normal(0.0, 4.0, canvas.shape)
    return np.clip(canvas + grain, 0, 255).round().astype(np.uint8), label


def write_split(out: Path, split: str, pool: list[int], count: int, seed: int, images: np.ndarray,
                targets: np.ndarray) -> list[dict]:
    """Write ``count`` canvases of ``split`` using digits of ``pool`` (each used about equally often)."""
    from beitv2_zoo.weights.labels import palette

    rng = np.random.default_rng([seed, list(SPLITS).index(split)])
    colours = [v for rgb in palette("digits-canvas") for v in rgb]
    image_dir, label_dir = out / "images" / split, out / "annotations" / split
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    order: list[int] = []
    canvases = []
    for number in range(count):
        placements: list[dict] = []
        boxes: list[tuple[int, int, int]] = []
        for _ in range(int(rng.integers(1, MAX_DIGITS + 1))):
            if not order:
                order = rng.permutation(pool).tolist()
            side = int(rng.integers(DIGIT_SIDES[0], DIGIT_SIDES[1] + 1))
            x, y = _place(rng, side, boxes)
            boxes.append((x, y, side))
            placements.append({"index": int(order.pop()), "side": side, "x": x, "y": y})
        pixels, label = render(images, targets, placements, rng)
        name = f"canvas_{number:05d}"
        Image.fromarray(pixels, mode="RGB").save(image_dir / f"{name}.png")
        label_image = Image.fromarray(label, mode="P")
        label_image.putpalette(colours)
        label_image.save(label_dir / f"{name}.png")
        canvases.append({"name": name, "digits": placements})
    return canvases


def main(out: Path, digits_root: Path | None = None, seed: int = 0, counts: dict[str, int] | None = None) -> dict:
    """Write the canvases (``counts``: canvases per split, default 1000 training / 300 validation)."""
    from sklearn.datasets import load_digits

    digits_root = digits_root or out.parent / "digits"
    if not (digits_root / "main" / "val").is_dir():
        sys.path.insert(0, str(HERE.parent))
        from prepare_digits import main as prepare_digits

        prepare_digits(digits_root)
    digits = load_digits()
    pools = split_digits(digits_root)
    if set(pools["training"]) & set(pools["validation"]):
        raise RuntimeError(f"{digits_root}: main/train and main/val share digits")
    meta: dict = {"seed": seed, "canvas": CANVAS, "digit_sides": list(DIGIT_SIDES), "ink_threshold": INK_THRESHOLD,
                  "classes": ["background", *map(str, range(10))], "splits": {}}
    for split, (_, default_count) in SPLITS.items():
        count = (counts or {}).get(split, default_count)
        meta["splits"][split] = write_split(out, split, pools[split], count, seed, digits.images, digits.target)
    (out / "canvases.json").write_text(json.dumps(meta) + "\n")
    print({split: len(canvases) for split, canvases in meta["splits"].items()})
    return meta


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--digits", type=Path, help="prepare_digits.py's output (default OUT/../digits; written if missing)")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    main(arguments.out, arguments.digits, arguments.seed)
