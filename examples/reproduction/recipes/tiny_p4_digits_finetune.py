"""CPU reproduction, stage 3a: fine-tune the tiny student on the labelled ``main/train`` digits
from a ``tiny-p4_digits_mim`` run (``pretrained``), or, with ``pretrained=''``, the same
architecture from scratch with the same recipe and budget (the baseline). The base fine-tuning
recipe's optimisation (AdamW, drop path 0.1, label smoothing 0.1, warmup then cosine), except:

* no layer-wise lr decay: in pilot runs (seed 0) the MIM-pretrained model reached 90.7 % top-1
  with layer decay 0.65 and 94.7 % without; from scratch, 84.7 % with and 89.3 % without;
* no RandAugment, Mixup/CutMix or random erasing, because at 32 × 32 pixels they destroy digits:
  torchvision's RandAugment at magnitude 9 (or 5) translates by up to 40 % of the image and its
  solarize op inverts white-on-black ink (pilot, pretrained: 59.7 % with it), and Mixup/CutMix with
  erasing cost 5 to 13 points in 50 epochs (pilot, with layer decay: pretrained 87.7 vs scratch 74.3
  with them, 92.7 vs 84.7 without);
* no horizontal flips: digits are not mirror-symmetric.
"""

from beitv2_zoo.train.config import FinetuneRecipe

RECIPE = FinetuneRecipe(
    name="tiny-p4_digits_finetune",
    model="test_beit_tiny",
    img_size=32,
    patch_size=4,
    embed_dim=64,
    depth=4,
    num_heads=2,
    pretrained="work_dirs/tiny-p4_digits_mim",
    num_classes=10,
    init_values=0.1,
    drop_path_rate=0.1,
    label_smoothing=0.1,
    mixup=0.0,
    cutmix=0.0,
    mixup_prob=1.0,
    mixup_switch_prob=0.5,
    randaug_num_ops=0,
    randaug_magnitude=9.0,
    randaug_magnitude_std=0.5,
    random_erasing=0.0,
    crop_scale=(0.6, 1.0),
    eval_resize=32,
    hflip=0.0,  # digits are not mirror-symmetric
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    epochs=50,
    warmup_epochs=5,
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
