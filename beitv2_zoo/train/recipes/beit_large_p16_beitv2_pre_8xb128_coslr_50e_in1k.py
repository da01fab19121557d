"""Fine-tune a BEiT v2 pretrained ViT-L/16 on ImageNet-1k, 50 epochs (global batch 1024).

Source: the official ``microsoft/unilm`` ``beit2/get_started_for_image_classification.md``
large command: lr 2e-4 after 1600-epoch pretraining (5e-4 after 300 epochs), layer decay 0.8,
drop path 0.2, 50 epochs, Mixup 0.8 / CutMix 1.0, 8 GPUs × 64 × ``update_freq`` 2 (= 1024);
the augmentation, smoothing, erasing and evaluation are the base recipe's. The warmup is not
stated; the script default is 5 epochs from 0. mmpretrain has no large BEiT v2 fine-tuning
config. On 32 GB GPUs run ``batch_size=64 accum_steps=2`` for the official global batch.
"""

from ..config import FinetuneRecipe

RECIPE = FinetuneRecipe(
    name="beit-large-p16_beitv2-pre_8xb128-coslr-50e_in1k",
    model="beit_large_patch16",
    img_size=224,
    pretrained="beitv2_large_patch16_224_pt1k",
    num_classes=1000,
    global_pool="avg",
    init_values=1e-5,
    drop_path_rate=0.2,
    label_smoothing=0.1,
    mixup=0.8,
    cutmix=1.0,
    mixup_prob=1.0,
    mixup_switch_prob=0.5,
    randaug_num_ops=2,
    randaug_magnitude=9.0,
    randaug_magnitude_std=0.5,
    random_erasing=0.25,
    crop_scale=(0.08, 1.0),
    eval_resize=256,
    epochs=50,
    warmup_epochs=5,
    batch_size=128,
    base_batch_size=1024,
    lr=2e-4,
    min_lr=1e-6,
    warmup_start_factor=0.0,
    weight_decay=0.05,
    betas=(0.9, 0.999),
    eps=1e-8,
    layer_decay=0.8,
    clip_grad=0.0,
    amp="bf16",
    num_workers=8,
    save_interval=1250,
    keep_last=2,
    eval_interval=1250,
    seed=0,
)
