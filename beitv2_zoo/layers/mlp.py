"""The transformer feed-forward network."""

import torch
import torch.nn.functional as F
from torch import nn

from . import fast


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))`` with the exact (erf) GELU; key names follow the official BEiT code.

    At CPU inference the forward pass goes through :func:`beitv2_zoo.layers.fast.mlp` (the same
    function, GELU fused into the first product).

    Args:
        dim: token width ``D``.
        hidden_dim: inner width (``4 * D`` for BEiT).
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, N, D]`` → ``[B, N, D]``."""
        if fast.applies(x):
            return fast.mlp(self, x)
        return self.fc2(F.gelu(self.fc1(x)))
