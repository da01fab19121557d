"""BEiT v2 masked image modeling, ViT-L/16, ImageNet-1k, 300 epochs (64 GPUs × 32, fp16 AMP).

The official large command (see the 1600-epoch recipe) with ``PRETRAINING.md``'s settings
for short schedules: 300 epochs, betas (0.9, 0.98), drop path 0. The official README
reports 86.6 top-1 after fine-tuning (``beitv2_large_patch16_224_pt1k_300e``).

The recipe is the base 300-epoch recipe with what the official large command changes (model,
early layers, layer scale 1e-5, 32 per GPU) and two official choices where the base recipe
follows mmpretrain: the official tokenizer and a warmup from 0. Its other values (lr, weight
decay, clipping, schedule, masking, crops, AMP) are the official command's as well.
"""

import dataclasses

from .beitv2_beit_base_p16_8xb256_amp_coslr_300e_in1k import RECIPE as BASE_300E

RECIPE = dataclasses.replace(
    BASE_300E,
    name="beitv2_beit-large-p16_64xb32-amp-coslr-300e_in1k",
    model="beitv2_mim_large_patch16",
    tokenizer="vqkd_encoder_base_decoder_3x768x12_clip",  # the official tokenizer (the base recipe: mmpretrain's copy)
    early_layers=21,
    init_values=1e-5,
    batch_size=32,  # × 64 GPUs = 2048, the base recipe's global batch
    warmup_start_factor=0.0,  # the official warmup starts from 0
    warmup_style="official",
)
