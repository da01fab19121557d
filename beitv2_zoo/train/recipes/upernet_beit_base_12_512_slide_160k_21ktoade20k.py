"""BEiT v2 ViT-B/16 + UPerNet on ADE20K from the ImageNet-21k intermediate fine-tuning
(``beitv2_base_patch16_224_pt1k_ft21k``; the release's ``..._ft21ktoade20k``: 53.5 mIoU).

Source: microsoft/unilm ``beit2/semantic_segmentation/configs/beit/upernet/upernet_beit_base_12_512_slide_160k_21ktoade20k.py``
and the README's command (``model.pretrained=…/beitv2_base_patch16_224_pt1k_ft21k.pth``): the
``_ade20k`` recipe with layer decay 0.85 and those weights.
"""

import dataclasses

from .upernet_beit_base_12_512_slide_160k_ade20k import RECIPE as BASE_ADE20K

RECIPE = dataclasses.replace(BASE_ADE20K, name="upernet_beit_base_12_512_slide_160k_21ktoade20k",
                             pretrained="beitv2_base_patch16_224_pt1k_ft21k", layer_decay=0.85)
