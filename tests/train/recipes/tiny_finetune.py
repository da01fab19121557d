"""A seconds-long fine-tuning run for tests: the ``tiny_mim`` student's shape as a
classifier (32-pixel images, 8-pixel patches, 32 wide, 3 blocks), 4 classes, layer decay
0.75, RandAugment and erasing on, Mixup/CutMix off (so that "the loss drops" is a fair test)."""

from beitv2_zoo.train.config import FinetuneRecipe

RECIPE = FinetuneRecipe(
    name="tiny_finetune",
    model="test_beit_tiny",
    img_size=32,
    patch_size=8,
    embed_dim=32,
    depth=3,
    num_heads=2,
    pretrained="",
    num_classes=4,
    drop_path_rate=0.0,
    label_smoothing=0.1,
    mixup=0.0,
    cutmix=0.0,
    randaug_num_ops=2,
    randaug_magnitude=5.0,
    randaug_magnitude_std=0.5,
    random_erasing=0.25,
    crop_scale=(0.5, 1.0),
    eval_resize=32,
    epochs=2,
    warmup_epochs=0,
    batch_size=8,
    lr=2e-3,
    min_lr=1e-4,
    weight_decay=0.05,
    layer_decay=0.75,
    num_workers=0,
    log_interval=1,
    save_interval=100,
    seed=0,
)
