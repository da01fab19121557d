"""BEiT v2 ViT-B/16 + UPerNet on ADE20K, 512 crops, 160k iterations (8 GPUs × 2 images, fp16),
fine-tuned from the BEiT v2 pretraining (the release's ``beitv2_base_patch16_224_pt1k_ftade20k``: 53.1 mIoU).

Source: microsoft/unilm ``beit2/semantic_segmentation/configs/beit/upernet/upernet_beit_base_12_512_slide_160k_ade20k.py``
with its ``_base_`` files (``reference/segmentation_ade20k.md`` §5): AdamW lr 5e-5, betas (0.9, 0.999),
weight decay 0.05, layer decay 0.75 (``num_layers=12``), no clipping; poly schedule (power 1, min 0)
with a 1500-iteration linear warmup from 1e-6 (mmcv 1.x); drop path 0.15; SyncBN; apex fp16;
2 images per GPU; log every 50 iterations, checkpoint and evaluate every 16k. The data pipeline and
loss are :class:`~beitv2_zoo.train.config.SegmentationRecipe`'s defaults.

Which pretrained file: the official README shows only the ``_21ktoade20k`` commands (from the
``pt1k_ft21k`` files); the ``_ade20k`` rows of its table are inferred from the file names to start
from the pretraining-only ``pt1k`` weights (``reference/segmentation_ade20k.md`` §1). Not followed:
the config's ``rel_pos_bias_interpolation_type=0`` (rejected by the official backbone, unilm #864):
tables are resized with the official cubic rule.
"""

from ..config import SegmentationRecipe

RECIPE = SegmentationRecipe(
    name="upernet_beit_base_12_512_slide_160k_ade20k",
    model="beit_base_patch16_upernet",
    pretrained="beitv2_base_patch16_224_pt1k",
    drop_path_rate=0.15,
    batch_size=2,
    base_batch_size=16,
    lr=5e-5,
    layer_decay=0.75,
    amp="fp16",
    num_workers=4,
    log_interval=50,
    save_interval=16000,
    eval_interval=16000,
)
