"""Building blocks of the BEiT vision transformer.

Nothing here knows about checkpoints, names or downloads: these are plain ``torch.nn``
modules with shapes in their docstrings, written as the reference math. The CPU fast paths
(oneDNN projections, bfloat16 attention) live in :mod:`beitv2_zoo.layers.fast`, behind one switch.
"""

from .attention import ATTENTION_IMPLS, Attention, set_attention_impl
from .block import Block
from .conv import ConvModule
from .drop_path import DropPath, drop_path_schedule
from .mlp import Mlp
from .patch_embed import PatchEmbed
from .pos_embed import resample_abs_pos_embed
from .rel_pos import RelativePositionBias, bias_for_grid, relative_position_index, resize_rel_pos_bias_table

__all__ = [
    "ATTENTION_IMPLS",
    "Attention",
    "Block",
    "ConvModule",
    "DropPath",
    "Mlp",
    "PatchEmbed",
    "RelativePositionBias",
    "bias_for_grid",
    "drop_path_schedule",
    "relative_position_index",
    "resample_abs_pos_embed",
    "resize_rel_pos_bias_table",
    "set_attention_impl",
]
