"""Linear probing of a BEiT v2 pretrained ViT-L/16 on ImageNet-1k: the base recipe's protocol
and settings (see ``beit_base_p16_beitv2_pre_8xb128_linear_coslr_100e_in1k.py``) on the
official 1600-epoch large pretraining."""

from ..config import LinearProbeRecipe

RECIPE = LinearProbeRecipe(
    name="beit-large-p16_beitv2-pre_8xb128-linear-coslr-100e_in1k",
    model="beit_large_patch16",
    img_size=224,
    pretrained="beitv2_large_patch16_224_pt1k",
    num_classes=1000,
    feature="cls",
    crop_scale=(0.08, 1.0),
    eval_resize=256,
    epochs=100,
    warmup_epochs=0,
    batch_size=128,
    base_batch_size=1024,
    lr=4e-3,
    min_lr=0.0,
    warmup_start_factor=0.0,
    weight_decay=1e-4,
    betas=(0.9, 0.999),
    eps=1e-8,
    clip_grad=0.0,
    amp="bf16",
    num_workers=8,
    save_interval=1250,
    keep_last=2,
    eval_interval=1250,
    seed=0,
)
