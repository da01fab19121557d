"""CPU reproduction, stage 3b: linear probe of the tiny student on the labelled ``main/train``
digits: frozen backbone, the CLS token after the final norm, one linear head; the BEiT v1
``run_linear_eval.py`` optimizer (AdamW, weight decay 1e-4, cosine to 0, no warmup) with
RandomResizedCrop + flip, at a higher lr for the short schedule."""

from beitv2_zoo.train.config import LinearProbeRecipe

RECIPE = LinearProbeRecipe(
    name="tiny-p4_digits_linear-probe",
    model="test_beit_tiny",
    img_size=32,
    patch_size=4,
    embed_dim=64,
    depth=4,
    num_heads=2,
    pretrained="work_dirs/tiny-p4_digits_mim",
    num_classes=10,
    feature="cls",
    crop_scale=(0.6, 1.0),
    eval_resize=32,
    hflip=0.0,  # digits are not mirror-symmetric
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    epochs=30,
    warmup_epochs=0,
    batch_size=50,
    lr=1e-2,
    min_lr=0.0,
    weight_decay=1e-4,
    betas=(0.9, 0.999),
    num_workers=0,
    log_interval=50,
    save_interval=100000,
    seed=0,
)
