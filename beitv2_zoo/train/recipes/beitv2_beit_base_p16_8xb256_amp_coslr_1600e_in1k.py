"""BEiT v2 masked image modeling, ViT-B/16, ImageNet-1k, 1600 epochs (8 GPUs × 256, fp16 AMP).

Source: mmpretrain ``configs/beitv2/beitv2_beit-base-p16_8xb256-amp-coslr-1600e_in1k.py``,
which differs from the 300-epoch config only in drop path 0.1, betas (0.9, 0.999) and the
length (cosine to epoch 1600); mmpretrain publishes no weights for it. The official
``PRETRAINING.md`` command is the same recipe on 16 GPUs × 128 ("0.999 for 1600 epochs",
"0.1 for 1600 epochs"). The differences from the official code listed in the 300-epoch
recipe's docstring apply here too (the official runs use ``tokenizer=vqkd_encoder_base_decoder_3x768x12_clip``,
mmpretrain its copy ``vqkd_encoder``).
"""

from ..config import MIMRecipe

RECIPE = MIMRecipe(
    name="beitv2_beit-base-p16_8xb256-amp-coslr-1600e_in1k",
    model="beitv2_mim_base_patch16",
    img_size=224,
    tokenizer="vqkd_encoder",
    early_layers=9,
    head_layers=2,
    init_values=0.1,
    drop_path_rate=0.1,
    num_mask_patches=75,
    min_mask_patches=16,
    max_mask_patches=75,
    crop_scale=(0.2, 1.0),
    color_jitter=0.4,
    epochs=1600,
    warmup_epochs=10,
    batch_size=256,
    base_batch_size=2048,
    lr=1.5e-3,
    min_lr=1e-5,
    warmup_start_factor=1e-4,
    weight_decay=0.05,
    betas=(0.9, 0.999),
    eps=1e-8,
    clip_grad=3.0,
    amp="fp16",
    num_workers=8,
    save_interval=625,
    keep_last=3,
    seed=0,
)
