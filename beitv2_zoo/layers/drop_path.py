"""Stochastic depth: drop a whole residual branch per sample."""

import torch
from torch import nn


class DropPath(nn.Module):
    """Zero a residual branch for a random subset of samples while training.

    Surviving samples are scaled by ``1 / (1 - p)`` so the expectation is unchanged.
    In eval mode, or with ``p == 0``, this is the identity.

    Args:
        p: probability of dropping the branch for one sample.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, ...]`` → same shape."""
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask_shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = x.new_empty(mask_shape).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def drop_path_schedule(rate: float, depth: int) -> list[float]:
    """Stochastic depth of each of ``depth`` blocks: linear from 0 (first block) to ``rate`` (last block)."""
    return [rate * i / max(depth - 1, 1) for i in range(depth)]
