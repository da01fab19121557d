"""Draw the shipped canvas segmenter on the sample canvases: each row is a held-out validation canvas,
its true labels and ``inference_model``'s labels, blended over the canvas with a legend.

    python examples/reproduction/segmentation/picture.py    # writes segmentation.png here
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
NAME = "beitv2_tiny_patch4_64_canvas_upernet"
ZOOM = 4  # canvases are 64 pixels: enlarge them (nearest) so that digits and legend are readable


def main(out: Path = HERE / "segmentation.png") -> Path:
    from beitv2_zoo import inference_model
    from beitv2_zoo.viz import segmentation_overlay

    rows = []
    for canvas in sorted(p for p in (HERE / "samples").glob("canvas_*.png") if not p.stem.endswith("_label")):
        result = inference_model(NAME, str(canvas))
        truth = np.asarray(Image.open(canvas.with_name(f"{canvas.stem}_label.png")))
        image = Image.open(canvas).convert("RGB")
        big = image.resize((image.width * ZOOM, image.height * ZOOM), Image.Resampling.NEAREST)

        def overlay(labels: np.ndarray) -> Image.Image:
            labels = np.kron(labels, np.ones((ZOOM, ZOOM), dtype=labels.dtype))
            return segmentation_overlay(big, labels, result["palette"], result["classes"], alpha=0.6)

        panels = [big, overlay(truth), overlay(result["pred_sem_seg"])]
        width = [big.width, max(p.width for p in panels[1:]), max(p.width for p in panels[1:])]
        row = Image.new("RGB", (sum(width) + 2 * 8, big.height), "white")
        x = 0
        for panel, w in zip(panels, width):
            row.paste(panel, (x, 0))
            x += w + 8
        rows.append(row)
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows) + 8 * (len(rows) - 1)), "white")
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height + 8
    sheet.save(out)
    print(out)
    return out


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "segmentation.png")
