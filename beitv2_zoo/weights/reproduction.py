"""Weight records of checkpoints trained with this package's own recipes and shipped inside it.

``beitv2_tiny_patch4_32_digits`` is the classifier of the CPU reproduction
(``examples/reproduction``): the ``tiny-p4_digits_*`` recipes — a supervised teacher on 500
digits, a VQ-KD tokenizer, BEiT v2 MIM pretraining and fine-tuning on 997 other digits — seed 0.
``beitv2_tiny_patch4_64_canvas_upernet`` is the segmenter of the segmentation reproduction
(``examples/reproduction/segmentation``): that student's seed-0 MIM weights fine-tuned as a BEiT +
UPerNet segmenter on 64 × 64 canvases of handwritten digits (``tiny-p4_canvas_seg``).
Their files are package data (``package:`` sources, see :mod:`beitv2_zoo.hub.packaged`), so the
names work with no network and no cache.
"""

from ._common import BEIT_V2_PAPER
from .schema import Metric, Preprocessing, SegmentationPreprocessing, Source, WeightRecord

DIGITS_EVAL = Preprocessing(resize_size=32, crop_size=32, interpolation="bicubic", mean=(0.5, 0.5, 0.5),
                            std=(0.5, 0.5, 0.5))
"""32 × 32 RGB (short edge 32, centre crop 32), mean = std = 0.5: the reproduction's evaluation transform."""

CANVAS_EVAL = SegmentationPreprocessing(resize_size=64, crop_size=64, scale=(256, 64), stride=42,
                                        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
"""The segmentation reproduction's test protocol: fit (256, 64) keeping the aspect ratio (a 64-pixel
canvas stays as it is), slide windows of 64 every 42 pixels (2/3 of the crop), mean = std = 0.5."""

REPRODUCTION_RECORDS = (
    WeightRecord(
        name="beitv2_tiny_patch4_32_digits",
        architecture="test_beit_tiny",
        model_kwargs=dict(img_size=32, patch_size=4),
        num_classes=10,
        label_set="digits",
        sources=(
            Source(
                url="package:beitv2_zoo/weights/files/beitv2_tiny_patch4_32_digits.safetensors",
                sha256="7f5adb2c4e02db9f44785681772941c63a41a453a1eb4558f8230f18d2a29620",
                host="beitv2-zoo",
            ),
        ),
        preprocessing=DIGITS_EVAL,
        params=205_994,
        gmacs=0.015,
        license="mit",
        paper=BEIT_V2_PAPER,
        metrics=(Metric("digits (300 held-out images)", 94.3333, 100.0, "examples/reproduction/results.json"),),
        training_data=("scikit-learn digits: 500 images (teacher), 997 images (tokenizer, MIM, fine-tuning)",),
        notes=(
            "A 4-block, 64-wide BEiT on 32x32 images with 4x4 patches, BEiT v2-pretrained and fine-tuned on "
            "scikit-learn's handwritten digits by examples/reproduction/run.py (seed 0); a demonstration of the "
            "training recipes, not an ImageNet model. Shipped inside the package: works offline. The digits are "
            "the UCI Optical Recognition of Handwritten Digits data (CC BY 4.0)."
        ),
    ),
    WeightRecord(
        name="beitv2_tiny_patch4_64_canvas_upernet",
        architecture="test_beit_tiny_upernet",
        model_kwargs=dict(img_size=64, patch_size=4, channels=64, aux_channels=32),
        num_classes=11,
        label_set="digits-canvas",
        task="semantic-segmentation",
        sources=(
            Source(
                url="package:beitv2_zoo/weights/files/beitv2_tiny_patch4_64_canvas_upernet.safetensors",
                sha256="6ea3e48d24821eac8ed0953b9ac389174892ae926e3009b4953b0a43cd8635aa",
                host="beitv2-zoo",
            ),
        ),
        preprocessing=CANVAS_EVAL,
        params=703_254,
        gmacs=0.138,
        license="mit",
        paper=BEIT_V2_PAPER,
        metrics=(Metric("300 held-out digit canvases", miou=63.8689, macc=75.4162,
                        aacc=95.3643, source="examples/reproduction/segmentation/results.json"),),
        training_data=("scikit-learn digits: 500 images (teacher), 997 images (tokenizer, MIM); "
                       "1,000 canvases of those 997 digits (segmentation)",),
        notes=(
            "The 4-block, 64-wide BEiT of beitv2_tiny_patch4_32_digits' pretraining (seed 0 MIM weights) with a "
            "64-channel UPerNet head, fine-tuned to label each pixel of a 64x64 canvas as background or one of the "
            "ten digits by examples/reproduction/segmentation/run.py; a demonstration of the segmentation recipe, "
            "not an ADE20K model. Shipped inside the package: works offline. The digits are the UCI Optical "
            "Recognition of Handwritten Digits data (CC BY 4.0)."
        ),
    ),
)
