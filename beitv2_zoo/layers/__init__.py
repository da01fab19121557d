"""Building blocks of the BEiT vision transformer.

Nothing here knows about checkpoints, names or downloads: these are plain
``torch.nn`` modules with shapes in their docstrings.
"""

from .attention import Attention
from .block import Block
from .drop_path import DropPath
from .mlp import Mlp
from .patch_embed import PatchEmbed
from .rel_pos import RelativePositionBias, relative_position_index, resize_rel_pos_bias_table

__all__ = [
    "Attention",
    "Block",
    "DropPath",
    "Mlp",
    "PatchEmbed",
    "RelativePositionBias",
    "relative_position_index",
    "resize_rel_pos_bias_table",
]
