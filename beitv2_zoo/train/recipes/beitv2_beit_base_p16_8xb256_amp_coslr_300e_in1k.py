"""BEiT v2 masked image modeling, ViT-B/16, ImageNet-1k, 300 epochs (8 GPUs × 256, fp16 AMP).

Source: mmpretrain ``configs/beitv2/beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k.py``
(fully resolved in ``reference/mmpretrain_beitv2.md`` §2.1). Values as stated there: AdamW
lr 1.5e-3, betas (0.9, 0.98), weight decay 0.05, gradient clipping 3.0, 10 warmup epochs
(``LinearLR`` from 1e-4 of the lr), cosine to 1e-5, drop path 0, layer scale 0.1, 75 of 196
patches masked in blocks of at least 16, crops of scale (0.2, 1.0), colour jitter 0.4,
tokenizer and student both at 224 (bicubic).

Where the official ``microsoft/unilm`` recipe differs, and what this recipe does:

* weight decay: mmpretrain exempts names matching ``.ln``/``.bias``/``q_bias``/``v_bias``/
  ``.cls_token``/``.pos_embed``/``.gamma`` (so its ``neck.norm`` weight *is* decayed); the
  official code exempts every 1-D tensor plus ``pos_embed``/``cls_token``. We use the
  official rule (the two differ only on that one LayerNorm).
* warmup: the official schedule starts from 0, mmpretrain's from 1e-4 × lr (we follow mmpretrain).
* tokenizer: mmpretrain uses its own copy ``vqkd_encoder`` and leaves it in training mode,
  so its codebook drifts by EMA during pretraining; here (as in the official code) the
  tokenizer is frozen in eval mode. Global batch: official 16 × 128, mmpretrain 8 × 256 (both 2048).
* masks: mmpretrain's block corners exclude the last row/column (numpy's exclusive bound);
  we use the official generator (``beitv2_zoo.train.masking``). Resizing: mmpretrain resizes with
  OpenCV, the official code and we with Pillow.
"""

from ..config import MIMRecipe

RECIPE = MIMRecipe(
    name="beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k",
    model="beitv2_mim_base_patch16",
    tokenizer="vqkd_encoder",
    early_layers=9,
    max_mask_patches=75,
    epochs=300,
    warmup_epochs=10,
    batch_size=256,
    base_batch_size=2048,
    lr=1.5e-3,
    min_lr=1e-5,
    warmup_start_factor=1e-4,
    warmup_style="mmengine",  # LinearLR then CosineAnnealingLR, iteration-based
    betas=(0.9, 0.98),
    clip_grad=3.0,
    amp="fp16",
    save_interval=625,  # one epoch of 1,281,167 images at 2048 per step
)
