"""CPU reproduction, stage 2: BEiT v2 masked image modeling of the tiny student on the
unlabelled ``main/train`` digits against the ``tiny-p4_digits_vqkd`` tokenizer (``tokenizer``
is overridden with that run). 26 of 64 patches (40 %, as 75/196) masked in blocks of at least
4; patch aggregation after block 3 of 4 with 2 blocks; otherwise the 300-epoch base recipe's
optimizer (AdamW betas 0.9/0.98, weight decay 0.05, clipping 3.0, warmup then cosine)."""

from beitv2_zoo.train.config import MIMRecipe

RECIPE = MIMRecipe(
    name="tiny-p4_digits_mim",
    model="test_beitv2_mim_tiny",
    img_size=32,
    patch_size=4,
    embed_dim=64,
    depth=4,
    num_heads=2,
    early_layers=3,
    head_layers=2,
    init_values=0.1,
    drop_path_rate=0.0,
    tokenizer="work_dirs/tiny-p4_digits_vqkd",
    num_mask_patches=26,
    min_mask_patches=4,
    max_mask_patches=0,
    crop_scale=(0.6, 1.0),
    color_jitter=0.4,
    hflip=0.0,  # digits are not mirror-symmetric
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    epochs=100,
    warmup_epochs=5,
    batch_size=50,
    lr=1.5e-3,
    min_lr=1e-5,
    weight_decay=0.05,
    betas=(0.9, 0.98),
    clip_grad=3.0,
    num_workers=0,
    log_interval=50,
    save_interval=100000,
    seed=0,
)
