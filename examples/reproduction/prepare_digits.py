"""Write scikit-learn's handwritten digits as PNG ImageFolders for the CPU reproduction.

scikit-learn's ``load_digits`` (1,797 images of 8 × 8 pixels, 17 grey levels, 10 classes;
the UCI "Optical Recognition of Handwritten Digits" test set) ships inside the scikit-learn
wheel, so it is a real image data set that needs no download. Each image is scaled to
0..255, enlarged 4× to 32 × 32 (bicubic) and stored as an RGB PNG, so that the models see
8 × 8 patches of 4 × 4 pixels, one patch per original pixel.

Three disjoint, class-stratified splits (fixed seed):

* ``teacher/train`` (500 images): the only labels the teacher network ever sees;
* ``main/train`` (997 images): unlabelled images for the tokenizer and MIM pretraining, and
  the labelled training set of fine-tuning and linear probing;
* ``main/val`` = ``teacher/val`` (300 images): the test set of every number we report.

Usage: ``python prepare_digits.py OUT_DIR``
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def main(out: Path, seed: int = 0) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    splits: dict[str, list[int]] = {"teacher": [], "main": [], "test": []}
    for label in range(10):
        indices = rng.permutation(np.flatnonzero(digits.target == label))
        n_test = round(300 * len(indices) / len(digits.target))
        n_teacher = round(500 * len(indices) / len(digits.target))
        splits["test"] += indices[:n_test].tolist()
        splits["teacher"] += indices[n_test:n_test + n_teacher].tolist()
        splits["main"] += indices[n_test + n_teacher:].tolist()
    folders = {"teacher": [out / "teacher" / "train"], "main": [out / "main" / "train"],
               "test": [out / "main" / "val", out / "teacher" / "val"]}
    for split, indices in splits.items():
        for index in indices:
            pixels = (digits.images[index] * (255.0 / 16.0)).round().astype(np.uint8)
            image = Image.fromarray(pixels, mode="L").resize((32, 32), Image.Resampling.BICUBIC).convert("RGB")
            for folder in folders[split]:
                target = folder / str(digits.target[index])
                target.mkdir(parents=True, exist_ok=True)
                image.save(target / f"{index:04d}.png")
    print({k: len(v) for k, v in splits.items()})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
