"""The transformer feed-forward network."""

import torch
from torch import nn

from .linear import linear


class Mlp(nn.Module):
    """``fc1 → GELU (exact erf) → fc2``; key names follow the official BEiT code.

    Args:
        dim: token width ``D``.
        hidden_dim: inner width (``4 * D`` for BEiT).
    """

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, N, D]`` → ``[B, N, D]``."""
        hidden = linear(x, self.fc1.weight, self.fc1.bias, gelu=True)
        return linear(hidden, self.fc2.weight, self.fc2.bias)
