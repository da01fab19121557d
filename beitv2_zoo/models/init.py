"""The one weight initialisation of every model here: truncated normals, and depth-rescaled residual projections.

The fine-tuning code (and timm) truncate the normal at ±2 in absolute value, which at
``std=0.02`` is ±100 std, i.e. not at all; the official *pretraining* code truncates at ±1 std
(microsoft/unilm#914). The two regimes differ only in ``bound``. Meta tensors are skipped:
there is nothing to fill, and meta arithmetic would import torch's symbolic-shape machinery
(a quarter of a second) for no result.
"""

import math
from collections.abc import Iterable

import torch
from torch import nn

from ..layers import Block

TRUNC_STD = 0.02
"""Standard deviation of every initial normal."""


def init_weights_(
    modules: Iterable[nn.Module], tensors: Iterable[torch.Tensor | None] = (), *, bound: float = 2.0
) -> None:
    """Initialise in place, in this order (the order fixes the draws from torch's generator).

    Args:
        modules: every ``nn.Linear`` / ``nn.Conv2d`` among them gets weights ``N(0, 0.02²)`` cut to
            ``[-bound, bound]`` and zero biases; every ``nn.LayerNorm`` weight 1, bias 0.
        tensors: further tensors (tokens, position tables) drawn from the same truncated normal;
            ``None`` entries are skipped.
        bound: absolute truncation bound (``2.0``: torch's default; ``0.02``: the pretraining code's ±1 std).
    """
    for module in modules:
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            _trunc_normal_(module.weight, bound)
            if module.bias is not None and not module.bias.is_meta:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm) and not module.weight.is_meta:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    for tensor in tensors:
        if tensor is not None:
            _trunc_normal_(tensor, bound)


def rescale_residuals_(blocks: Iterable[Block], first_layer_id: int = 1) -> None:
    """Divide each block's two residual output projections (``attn.proj``, ``mlp.fc2``) by ``√(2·layer_id)``,
    counting ``layer_id`` from ``first_layer_id``."""
    for layer_id, block in enumerate(blocks, start=first_layer_id):
        for weight in (block.attn.proj.weight, block.mlp.fc2.weight):
            if not weight.is_meta:
                weight.data.div_(math.sqrt(2.0 * layer_id))


def _trunc_normal_(tensor: torch.Tensor, bound: float) -> None:
    if not tensor.is_meta:
        nn.init.trunc_normal_(tensor, std=TRUNC_STD, a=-bound, b=bound)
