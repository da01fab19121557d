"""One pre-norm transformer block with BEiT's layer scale."""

import torch
from torch import nn

from .attention import Attention
from .drop_path import DropPath
from .mlp import Mlp


class Block(nn.Module):
    """``x + γ₁·Attn(LN(x))`` then ``x + γ₂·MLP(LN(x))``, each branch with stochastic depth.

    Args:
        dim: token width ``D``.
        num_heads: attention heads.
        mlp_ratio: MLP width as a multiple of ``D``.
        drop_path: stochastic depth probability of this block.
        init_values: initial layer-scale value; ``None`` or ``0`` disables ``gamma_1/2`` (``γ = 1``).
        window_size: patch grid for a per-layer relative position table, or ``None``.
        norm_eps: LayerNorm epsilon (1e-6 in BEiT).
        attn_drop: attention-weight dropout.
        proj_drop: dropout after the attention projection and after the MLP (the official ``drop``).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        init_values: float | None = None,
        window_size: tuple[int, int] | None = None,
        norm_eps: float = 1e-6,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, window_size=window_size, attn_drop=attn_drop, proj_drop=proj_drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=proj_drop)
        if init_values:
            self.gamma_1 = nn.Parameter(torch.full((dim,), float(init_values)))
            self.gamma_2 = nn.Parameter(torch.full((dim,), float(init_values)))
        else:
            self.gamma_1 = self.gamma_2 = None

    def residual(self, x: torch.Tensor, gamma: torch.Tensor | None, branch: torch.Tensor) -> torch.Tensor:
        """``x + DropPath(γ·branch)``, all ``[B, L, D]`` (``gamma`` ``[D]`` or ``None`` for 1)."""
        if gamma is None:
            return x + self.drop_path(branch)
        if self.drop_path.p == 0.0 or not self.training:
            return torch.addcmul(x, gamma, branch)  # no drop path: x + γ·branch in one kernel
        return x + self.drop_path(gamma * branch)

    def forward(
        self, x: torch.Tensor, shared_bias: torch.Tensor | None = None, grid: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """``x``: ``[B, L, D]``; ``shared_bias``: ``[H, L, L]`` or ``None`` → ``[B, L, D]``.

        ``grid``: the patch grid of ``x`` when it may differ from the build size (see :class:`Attention`).
        """
        x = self.residual(x, self.gamma_1, self.attn(self.norm1(x), shared_bias, grid))
        return self.residual(x, self.gamma_2, self.mlp(self.norm2(x)))
