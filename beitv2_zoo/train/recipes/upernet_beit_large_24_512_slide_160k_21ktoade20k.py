"""BEiT v2 ViT-L/16 + UPerNet on ADE20K from the ImageNet-21k intermediate fine-tuning
(``beitv2_large_patch16_224_pt1k_ft21k``; the release's ``..._ft21ktoade20k``: 57.5 mIoU).

Source: microsoft/unilm ``beit2/semantic_segmentation/configs/beit/upernet/upernet_beit_large_24_512_slide_160k_21ktoade20k.py``
and the README's command: the large ``_ade20k`` recipe with lr 3e-5 and the ``pt1k_ft21k`` weights.
"""

import dataclasses

from .upernet_beit_large_24_512_slide_160k_ade20k import RECIPE as LARGE_ADE20K

RECIPE = dataclasses.replace(LARGE_ADE20K, name="upernet_beit_large_24_512_slide_160k_21ktoade20k",
                             pretrained="beitv2_large_patch16_224_pt1k_ft21k", lr=3e-5)
