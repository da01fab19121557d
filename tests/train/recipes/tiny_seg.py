"""A seconds-long segmentation run for tests: the ``test_beit_tiny_upernet`` segmenter (64 wide,
4 blocks, patch 16) on 64-pixel crops of images rescaled to fit (128, 64) × 0.5–2.0, 4 classes
(ADE-style labels 1..4, 0 ignored), the official pipeline otherwise (cat_max_ratio, flip,
photometric distortion), poly schedule with a 2-step warmup, layer decay 0.75, drop path 0.1."""

from beitv2_zoo.train.config import SegmentationRecipe

RECIPE = SegmentationRecipe(
    name="tiny_seg",
    model="test_beit_tiny_upernet",
    num_classes=4,
    crop_size=64,
    scale=(128, 64),
    drop_path_rate=0.1,
    max_steps=6,
    warmup_steps=2,
    batch_size=2,
    lr=1e-3,
    layer_decay=0.75,
    num_workers=0,
    log_interval=1,
    save_interval=100,
)
