"""A seconds-long linear-probing run for tests: a frozen ``tiny_finetune``-shaped backbone
(CLS token after the final norm) and a 4-class linear head."""

from beitv2_zoo.train.config import LinearProbeRecipe

RECIPE = LinearProbeRecipe(
    name="tiny_linear_probe",
    model="test_beit_tiny",
    img_size=32,
    patch_size=8,
    embed_dim=32,
    depth=3,
    num_heads=2,
    pretrained="",
    num_classes=4,
    feature="cls",
    crop_scale=(0.5, 1.0),
    eval_resize=32,
    epochs=2,
    warmup_epochs=0,
    batch_size=8,
    lr=1e-2,
    min_lr=0.0,
    weight_decay=1e-4,
    num_workers=0,
    log_interval=1,
    save_interval=100,
    seed=0,
)
