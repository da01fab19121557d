"""The README's segmentation picture: four validation canvases side by side, segmented by the shipped
tiny segmenter (``beitv2_tiny_patch4_64_canvas_upernet``, no network needed) with slide inference.

    python examples/reproduction/segmentation/picture.py [CANVASES] [--out FILE]

``CANVASES`` is the canvas folder ``run.py`` wrote (default ``work_dirs/canvas_segmentation/canvases``).
The 128 × 128 mosaic is segmented at its own size (64-pixel windows every 43 pixels, as the record
says); only for display are the image and its labels enlarged 4× (nearest neighbour), so the legend
is legible.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from beitv2_zoo import inference_model
from beitv2_zoo.viz import segmentation_overlay

NAME = "beitv2_tiny_patch4_64_canvas_upernet"
HERE = Path(__file__).resolve().parent


def mosaic(canvases: Path, count: int = 4) -> np.ndarray:
    """The first ``count`` validation canvases (sorted by name) as a 2 × 2 ``uint8`` mosaic ``[128, 128, 3]``."""
    files = sorted((canvases / "images" / "validation").glob("*.png"))[:count]
    if len(files) < count:
        raise SystemExit(f"error: {canvases} has fewer than {count} validation canvases; run run.py first")
    tiles = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    return np.concatenate([np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)], axis=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("canvases", nargs="?", type=Path, default=Path("work_dirs/canvas_segmentation/canvases"))
    parser.add_argument("--out", type=Path, default=HERE / "canvas_segmentation.png")
    args = parser.parse_args(argv)
    image = mosaic(args.canvases)
    result = inference_model(NAME, image)
    labels = result["pred_sem_seg"]
    big_image = np.kron(image, np.ones((4, 4, 1), dtype=np.uint8))
    big_labels = np.kron(labels, np.ones((4, 4), dtype=labels.dtype))
    segmentation_overlay(big_image, big_labels, result["palette"], result["classes"], alpha=0.55).save(args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
