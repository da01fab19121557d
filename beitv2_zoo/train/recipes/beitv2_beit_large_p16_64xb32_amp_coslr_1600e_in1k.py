"""BEiT v2 masked image modeling, ViT-L/16, ImageNet-1k, 1600 epochs (64 GPUs × 32, fp16 AMP).

Source: the official ``microsoft/unilm`` ``beit2/PRETRAINING.md`` large command
(``beit_large_patch16_224_8k_vocab_cls_pt --early_layers 21 --head_layers 2 --batch_size 32``
on 4 nodes × 16 GPUs, ``--layer_scale_init_value 1e-5``, otherwise the base command: lr
1.5e-3, 10 warmup epochs from 0, clipping 3.0, drop path 0.1, betas (0.9, 0.999), weight
decay 0.05, cosine to 1e-5). mmpretrain has no large BEiT v2 config. The tokenizer is the
same ViT-B/16 VQ-KD as for base.
"""

from ..config import MIMRecipe

RECIPE = MIMRecipe(
    name="beitv2_beit-large-p16_64xb32-amp-coslr-1600e_in1k",
    model="beitv2_mim_large_patch16",
    img_size=224,
    tokenizer="vqkd_encoder_base_decoder_3x768x12_clip",
    early_layers=21,
    head_layers=2,
    init_values=1e-5,
    drop_path_rate=0.1,
    num_mask_patches=75,
    min_mask_patches=16,
    max_mask_patches=75,
    crop_scale=(0.2, 1.0),
    color_jitter=0.4,
    epochs=1600,
    warmup_epochs=10,
    batch_size=32,
    base_batch_size=2048,
    lr=1.5e-3,
    min_lr=1e-5,
    warmup_start_factor=0.0,
    weight_decay=0.05,
    betas=(0.9, 0.999),
    eps=1e-8,
    clip_grad=3.0,
    amp="fp16",
    grad_checkpointing=False,
    num_workers=8,
    save_interval=625,
    keep_last=3,
    seed=0,
)
