"""Fine-tune a BEiT v2 pretrained ViT-L/16 on ImageNet-1k, 50 epochs (global batch 1024).

Source: the official ``microsoft/unilm`` ``beit2/get_started_for_image_classification.md``
large command: lr 2e-4 after 1600-epoch pretraining (5e-4 after 300 epochs), layer decay 0.8,
drop path 0.2, 50 epochs, Mixup 0.8 / CutMix 1.0, 8 GPUs × 64 × ``update_freq`` 2 (= 1024);
the augmentation, smoothing, erasing and evaluation are the base recipe's. The warmup is not
stated; the script default is 5 epochs from 0. mmpretrain has no large BEiT v2 fine-tuning
config. On 32 GB GPUs run ``batch_size=64 accum_steps=2`` for the official global batch.

The recipe is the base fine-tuning recipe with the large command's values (and, where the base
recipe follows mmpretrain, the official warmup from 0, 8 workers and bf16 AMP).
"""

import dataclasses

from .beit_base_p16_beitv2_pre_8xb128_coslr_100e_in1k import RECIPE as BASE_FINETUNE

RECIPE = dataclasses.replace(
    BASE_FINETUNE,
    name="beit-large-p16_beitv2-pre_8xb128-coslr-50e_in1k",
    model="beit_large_patch16",
    pretrained="beitv2_large_patch16_224_pt1k",
    init_values=1e-5,
    drop_path_rate=0.2,
    epochs=50,
    warmup_epochs=5,
    lr=2e-4,
    warmup_start_factor=0.0,
    warmup_style="official",
    layer_decay=0.8,
    amp="bf16",
    num_workers=8,
)
