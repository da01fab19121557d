"""VQ-KD tokenizer, ViT-B/16 encoder, 3-block decoder, CLIP ViT-B/16 teacher, ImageNet-1k, 100 epochs.

Source: the official ``microsoft/unilm`` ``beit2/TOKENIZER.md`` command (8 GPUs × 64) and the
defaults of ``run_vqkd_training.py``. mmpretrain has no tokenizer-training config (it only
loads the trained encoder as its ``target_generator``), so this recipe follows the official one.

* lr: the script default ``5e-5`` is multiplied by ``global batch / 128``; with 8 × 64 = 512
  that is the 2e-4 stated here for ``base_batch_size=512``.
* Warmup starts from 0; cosine per step to ``min_lr`` 1e-5; no gradient clipping; fp16 AMP.
* The codebook (8192 × 32, k-means initialised) moves by EMA (decay 0.99) only; the loss is
  ``1 − cos`` reconstruction of the teacher's patch features plus the commitment term.
* Teacher: OpenAI CLIP ViT-B/16 through ``open_clip`` (``pip install beitv2-zoo[train]``
  adds it); the official code uses OpenAI's ``clip`` package, same weights. Differences:
  k-means runs on each rank's batch and rank 0's codebook is broadcast (the official code
  lets ranks start from different codebooks; see ``models/quantizer.py``).
"""

from ..config import VQKDRecipe

RECIPE = VQKDRecipe(
    name="vqkd_encoder_base_decoder_3x768x12_clip",
    model="vqkd_base_clip_decoder3",
    mean=(0.0, 0.0, 0.0),  # the tokenizer reads pixels in [0, 1]
    std=(1.0, 1.0, 1.0),
    warmup_epochs=10,
    base_batch_size=512,
    lr=2e-4,
    min_lr=1e-5,
    weight_decay=1e-4,
    betas=(0.9, 0.99),
    amp="fp16",
    num_workers=10,
    save_interval=5000,
)
