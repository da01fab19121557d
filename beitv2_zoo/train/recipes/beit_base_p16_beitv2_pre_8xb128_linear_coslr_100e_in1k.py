"""Linear probing of a BEiT v2 pretrained ViT-B/16 on ImageNet-1k, 100 epochs (8 GPUs × 128).

The paper's protocol (arXiv 2208.06366 §4): the backbone is frozen and a linear head reads
the **[CLS] token** for models pretrained with patch aggregation (BEiT v2), the average of
the patch tokens otherwise. The paper's appendix settings are not in our references and
there is no official BEiT v2 script (microsoft/unilm#1574), so the settings start from BEiT
v1's ``beit/run_linear_eval.py``: AdamW, lr 4e-3 (its README example for 8 × 128), weight
decay 1e-4, cosine to 0 with no warmup, 100 epochs, RandomResizedCrop 224 + flip for
training, short edge 256 + centre crop 224 for evaluation, ImageNet mean/std.

Differences from BEiT v1's script: it probes every block at once on ``cat(CLS, mean of
patches)`` without a norm; here one head reads the CLS token after the final norm (the
norm the pretraining LM head was trained behind), as the BEiT v2 paper describes.
"""

from ..config import LinearProbeRecipe

RECIPE = LinearProbeRecipe(
    name="beit-base-p16_beitv2-pre_8xb128-linear-coslr-100e_in1k",
    model="beit_base_patch16",
    pretrained="beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k",
    batch_size=128,
    base_batch_size=1024,
    lr=4e-3,
    weight_decay=1e-4,
    amp="bf16",
    save_interval=1250,
    keep_last=2,
    eval_interval=1250,
)
