"""A seconds-long BEiT v2 MIM run for tests: 32-pixel images, 8-pixel patches (16 patches, 6
masked in blocks of at least 2), a 32-wide 3-block student with patch aggregation after block
2; ``tokenizer`` is meant to be overridden with a ``tiny_vqkd`` run folder."""

from beitv2_zoo.train.config import MIMRecipe

RECIPE = MIMRecipe(
    name="tiny_mim",
    model="test_beitv2_mim_tiny",
    img_size=32,
    patch_size=8,
    embed_dim=32,
    depth=3,
    num_heads=2,
    early_layers=2,
    head_layers=1,
    init_values=0.1,
    tokenizer="test_vqkd_tiny",
    num_mask_patches=6,
    min_mask_patches=2,
    max_mask_patches=0,
    crop_scale=(0.5, 1.0),
    color_jitter=0.4,
    epochs=2,
    warmup_epochs=0,
    batch_size=8,
    lr=2e-3,
    min_lr=1e-4,
    weight_decay=0.05,
    betas=(0.9, 0.98),
    clip_grad=3.0,
    num_workers=0,
    log_interval=1,
    save_interval=100,
    seed=0,
)
