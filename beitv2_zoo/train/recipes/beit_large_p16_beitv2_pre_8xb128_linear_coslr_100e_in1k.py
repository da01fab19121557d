"""Linear probing of a BEiT v2 pretrained ViT-L/16 on ImageNet-1k: the base recipe's protocol
and settings (see ``beit_base_p16_beitv2_pre_8xb128_linear_coslr_100e_in1k.py``) on the
official 1600-epoch large pretraining: the base recipe with the large model and weights."""

import dataclasses

from .beit_base_p16_beitv2_pre_8xb128_linear_coslr_100e_in1k import RECIPE as BASE_LINEAR

RECIPE = dataclasses.replace(BASE_LINEAR, name="beit-large-p16_beitv2-pre_8xb128-linear-coslr-100e_in1k",
                             model="beit_large_patch16", pretrained="beitv2_large_patch16_224_pt1k")
