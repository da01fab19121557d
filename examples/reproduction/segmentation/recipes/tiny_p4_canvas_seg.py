"""CPU segmentation reproduction: a tiny BEiT + UPerNet segmenter trained on the digit canvases of
``prepare_canvases.py`` (64 × 64 images, 11 classes: background and the ten digits), from the
classification reproduction's MIM-pretrained student (``pretrained``: a ``tiny-p4_digits_mim`` run)
or, with ``pretrained=''``, the same architecture from scratch with the same recipe and budget.

The backbone is the student's: 4 × 4 patches, width 64, 4 blocks, 2 heads, layer scale 0.1; its
MIM checkpoint was trained on 32 × 32 digits (8 × 8 tokens) and is loaded at 64 × 64 (16 × 16
tokens; relative position tables resized). The head is ``test_beit_tiny_upernet``'s (UPerNet 32
channels, auxiliary FCN 16, blocks 0-3 tapped). Against the ADE20K recipe:

* labels are already 0..10 with 0 a real class (background): ``reduce_zero_label=False``;
* the random resize keeps digits near their size (ratio 0.75-1.5 of the 64-pixel canvas), no
  ``cat_max_ratio`` (background covers most of every canvas, so almost every crop would be redrawn),
  no flips (digits are not mirror-symmetric); photometric distortion as published;
* mean / std 0.5, as the MIM stage normalised;
* lr 1e-3 for both arms, no layer-wise decay (at 4 blocks the classification reproduction found it
  held both arms back), poly schedule with a short warmup;
* 2,000 steps of 16 canvases (32 passes over the 1,000 training canvases): the four runs of
  ``run.py`` (2 seeds × pretrained / scratch) take about 20 minutes on two CPU cores. Pilots (one
  shared core, a 25-epoch MIM backbone): at 800 steps both arms found the ink but not which digit
  it is (mIoU 8.2, background only); the identity emerged after about 1,400 steps (33 % of ink
  pixels given the right digit at 2,500, constant lr).
"""

from beitv2_zoo.train.config import SegmentationRecipe

RECIPE = SegmentationRecipe(
    name="tiny-p4_canvas_seg",
    model="test_beit_tiny_upernet",
    img_size=64,
    crop_size=64,
    patch_size=4,
    embed_dim=64,
    depth=4,
    num_heads=2,
    pretrained="work_dirs/tiny-p4_digits_mim",
    num_classes=11,
    label_set="digits-canvas",
    reduce_zero_label=False,
    scale=(256, 64),
    ratio_range=(0.75, 1.5),
    cat_max_ratio=1.0,
    photometric=True,
    hflip=0.0,  # digits are not mirror-symmetric
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    drop_path_rate=0.1,
    aux_weight=0.4,
    max_steps=2000,
    warmup_steps=50,
    batch_size=16,
    lr=1e-3,
    min_lr=0.0,
    weight_decay=0.05,
    betas=(0.9, 0.999),
    layer_decay=1.0,
    num_workers=0,
    log_interval=50,
    save_interval=100000,
    seed=0,
)
