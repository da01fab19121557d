"""CPU reproduction, stage 0: the VQ-KD teacher, a tiny BEiT classifier trained from scratch
on the 500-image ``teacher/train`` split of scikit-learn's digits (disjoint from everything
else; see ``examples/reproduction``). In BEiT v2 the teacher is CLIP, trained on other data
than the tokenizer and the student; this small supervised network plays that role.

Architecture (shared by every tiny reproduction recipe): 32-pixel images, 4-pixel patches
(8 × 8 tokens), width 64, 4 blocks, 2 heads, per-block relative position bias, layer scale 0.1.
"""

from beitv2_zoo.train.config import FinetuneRecipe

RECIPE = FinetuneRecipe(
    name="tiny-p4_digits_teacher",
    model="test_beit_tiny",
    img_size=32,
    patch_size=4,
    embed_dim=64,
    depth=4,
    num_heads=2,
    pretrained="",
    num_classes=10,
    init_values=0.1,
    drop_path_rate=0.1,
    label_smoothing=0.1,
    mixup=0.0,
    cutmix=0.0,
    randaug_num_ops=0,
    random_erasing=0.0,
    crop_scale=(0.6, 1.0),
    eval_resize=32,
    hflip=0.0,  # digits are not mirror-symmetric
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    epochs=150,
    warmup_epochs=10,
    batch_size=50,
    lr=2e-3,
    min_lr=1e-5,
    weight_decay=0.05,
    betas=(0.9, 0.999),
    layer_decay=1.0,
    num_workers=0,
    log_interval=50,
    save_interval=100000,
    seed=0,
)
