"""Weight records of checkpoints trained with this package's own recipes and shipped inside it.

``beitv2_tiny_patch4_32_digits`` is the classifier of the CPU reproduction
(``examples/reproduction``): the ``tiny-p4_digits_*`` recipes — a supervised teacher on 500
digits, a VQ-KD tokenizer, BEiT v2 MIM pretraining and fine-tuning on 997 other digits — seed 0.
Its file is package data (``package:`` source, see :mod:`beitv2_zoo.hub.packaged`), so the name
works with no network and no cache.
"""

from ._common import BEIT_V2_PAPER
from .schema import Metric, Preprocessing, Source, WeightRecord

DIGITS_EVAL = Preprocessing(resize_size=32, crop_size=32, interpolation="bicubic", mean=(0.5, 0.5, 0.5),
                            std=(0.5, 0.5, 0.5))
"""32 × 32 RGB (short edge 32, centre crop 32), mean = std = 0.5: the reproduction's evaluation transform."""

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
)
