"""CPU reproduction, stage 1: a tiny VQ-KD tokenizer on the unlabelled ``main/train`` digits,
distilling the ``tiny-p4_digits_teacher`` network's patch features (``teacher`` is overridden
with that run's weights). 128 codes of width 16 (BEiT v2: low code width keeps the codebook
in use), k-means initialised, EMA decay 0.99; encoder of the student's shape, 1-block decoder;
the official optimizer settings (AdamW, betas 0.9/0.99, weight decay 1e-4, no clipping)."""

from ..config import VQKDRecipe

RECIPE = VQKDRecipe(
    name="tiny-p4_digits_vqkd",
    model="test_vqkd_tiny",
    img_size=32,
    patch_size=4,
    embed_dim=64,
    depth=4,
    num_heads=2,
    teacher="work_dirs/tiny-p4_digits_teacher",
    num_codes=128,
    code_dim=16,
    decoder_depth=1,
    beta=1.0,
    codebook_decay=0.99,
    kmeans_init=True,
    crop_scale=(0.6, 1.0),
    color_jitter=0.0,
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
    epochs=60,
    warmup_epochs=5,
    batch_size=50,
    lr=2e-3,
    min_lr=1e-5,
    weight_decay=1e-4,
    betas=(0.9, 0.99),
    num_workers=0,
    log_interval=50,
    save_interval=100000,
    seed=0,
)
