"""The transformer feed-forward network."""

import torch
import torch.nn.functional as F
from torch import nn

from . import fast


class Mlp(nn.Module):
    """``dropout(fc2(GELU(fc1(x))))`` with the exact (erf) GELU; key names follow the official BEiT code,
    which also drops out after ``fc2`` only.

    At CPU inference the forward pass goes through :func:`beitv2_zoo.layers.fast.mlp` (the same
    function, GELU fused into the first product).

    Args:
        dim: token width ``D``.
        hidden_dim: inner width (``4 * D`` for BEiT).
        drop: dropout after ``fc2`` while training.
    """

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, N, D]`` → ``[B, N, D]``."""
        if fast.applies(x):
            return fast.mlp(self, x)
        return self.drop(self.fc2(F.gelu(self.fc1(x))))
