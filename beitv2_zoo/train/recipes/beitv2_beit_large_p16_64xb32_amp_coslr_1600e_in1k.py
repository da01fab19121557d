"""BEiT v2 masked image modeling, ViT-L/16, ImageNet-1k, 1600 epochs (64 GPUs × 32, fp16 AMP).

Source: the official ``microsoft/unilm`` ``beit2/PRETRAINING.md`` large command
(``beit_large_patch16_224_8k_vocab_cls_pt --early_layers 21 --head_layers 2 --batch_size 32``
on 4 nodes × 16 GPUs, ``--layer_scale_init_value 1e-5``, otherwise the base command: lr
1.5e-3, 10 warmup epochs from 0, clipping 3.0, drop path 0.1, betas (0.9, 0.999), weight
decay 0.05, cosine to 1e-5). mmpretrain has no large BEiT v2 config. The tokenizer is the
same ViT-B/16 VQ-KD as for base.

The recipe is the large 300-epoch one with the base 1600-epoch recipe's ``LONG_SCHEDULE``
(epochs, drop path, betas) applied.
"""

import dataclasses

from .beitv2_beit_base_p16_8xb256_amp_coslr_1600e_in1k import LONG_SCHEDULE
from .beitv2_beit_large_p16_64xb32_amp_coslr_300e_in1k import RECIPE as LARGE_300E

RECIPE = dataclasses.replace(LARGE_300E, name="beitv2_beit-large-p16_64xb32-amp-coslr-1600e_in1k", **LONG_SCHEDULE)
