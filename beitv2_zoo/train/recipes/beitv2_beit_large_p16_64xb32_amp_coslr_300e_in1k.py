"""BEiT v2 masked image modeling, ViT-L/16, ImageNet-1k, 300 epochs (64 GPUs × 32, fp16 AMP).

The official large command (see the 1600-epoch recipe) with ``PRETRAINING.md``'s settings
for short schedules: 300 epochs, betas (0.9, 0.98), drop path 0. The official README
reports 86.6 top-1 after fine-tuning (``beitv2_large_patch16_224_pt1k_300e``).
"""

from ..config import MIMRecipe

RECIPE = MIMRecipe(
    name="beitv2_beit-large-p16_64xb32-amp-coslr-300e_in1k",
    model="beitv2_mim_large_patch16",
    img_size=224,
    tokenizer="vqkd_encoder_base_decoder_3x768x12_clip",
    early_layers=21,
    head_layers=2,
    init_values=1e-5,
    drop_path_rate=0.0,
    num_mask_patches=75,
    min_mask_patches=16,
    max_mask_patches=75,
    crop_scale=(0.2, 1.0),
    color_jitter=0.4,
    epochs=300,
    warmup_epochs=10,
    batch_size=32,
    base_batch_size=2048,
    lr=1.5e-3,
    min_lr=1e-5,
    warmup_start_factor=0.0,
    weight_decay=0.05,
    betas=(0.9, 0.98),
    eps=1e-8,
    clip_grad=3.0,
    amp="fp16",
    num_workers=8,
    save_interval=625,
    keep_last=3,
    seed=0,
)
