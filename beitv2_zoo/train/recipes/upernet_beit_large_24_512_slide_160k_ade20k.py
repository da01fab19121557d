"""BEiT v2 ViT-L/16 + UPerNet on ADE20K from the BEiT v2 pretraining (the release's
``beitv2_large_patch16_224_pt1k_ftade20k``: 56.7 mIoU, the paper's headline).

Source: microsoft/unilm ``beit2/semantic_segmentation/configs/beit/upernet/upernet_beit_large_24_512_slide_160k_ade20k.py``:
the base ``_ade20k`` recipe with the large segmenter (layer scale 1e-6, blocks 7/11/15/23 tapped,
1024 channels: the architecture's own values), drop path 0.2, lr 4e-5, layer decay 0.9
(``num_layers=24``); the pretrained file is inferred as for base.
"""

import dataclasses

from .upernet_beit_base_12_512_slide_160k_ade20k import RECIPE as BASE_ADE20K

RECIPE = dataclasses.replace(BASE_ADE20K, name="upernet_beit_large_24_512_slide_160k_ade20k",
                             model="beit_large_patch16_upernet", pretrained="beitv2_large_patch16_224_pt1k",
                             drop_path_rate=0.2, lr=4e-5, layer_decay=0.9)
