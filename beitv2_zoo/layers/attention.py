"""Multi-head self-attention with BEiT's q/v biases and relative position bias.

This is the reference computation. At CPU inference :class:`Attention` hands its forward pass to
:func:`beitv2_zoo.layers.fast.attention` (the same function through faster kernels).
"""

import torch
import torch.nn.functional as F
from torch import nn

from . import fast
from .rel_pos import bias_for_grid, gather_bias, num_relative_distances, relative_position_index

ATTENTION_IMPLS = ("sdpa", "eager")
"""How :class:`Attention` computes ``softmax(q·kᵀ/√d + bias)·v``: ``'sdpa'`` (the default) calls
``F.scaled_dot_product_attention``, which picks a fused kernel (flash on CPU; on CUDA, with an
additive bias, memory-efficient or cuDNN attention); ``'eager'`` spells it out in separate
matmul / add / softmax / matmul ops that keep the ``[B, H, L, L]`` weights in memory, the
baseline a benchmark compares the fused kernels with."""


def attention_weights(q: torch.Tensor, k: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``softmax(q·kᵀ/√d + bias)``: ``q``, ``k`` ``[B, H, L, d]``, ``bias`` ``[1, H, L, L]`` or ``None`` → ``[B, H, L, L]``."""
    logits = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    return (logits if bias is None else logits + bias).softmax(dim=-1)


def eager_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None, dropout_p: float = 0.0
) -> torch.Tensor:
    """The explicit ``softmax(q·kᵀ/√d + bias)·v`` (attention-weight dropout when ``dropout_p``) → ``[B, H, L, d]``."""
    weights = attention_weights(q, k, bias)
    if dropout_p:
        weights = F.dropout(weights, dropout_p)
    return weights @ v


def set_attention_impl(module: nn.Module, impl: str) -> None:
    """Make every :class:`Attention` inside ``module`` compute with ``impl`` (one of :data:`ATTENTION_IMPLS`).

    Both give the same function (float32 outputs agree to about 1e-6); only speed and memory
    differ. ``set_attention_impl(model, 'sdpa')`` restores the default.
    """
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"impl must be one of {ATTENTION_IMPLS}, got {impl!r}")
    for layer in module.modules():
        if isinstance(layer, Attention):
            layer.attn_impl = impl


class Attention(nn.Module):
    """``proj(softmax(q·kᵀ/√d + bias)·v)`` over ``H`` heads, with ``q, k, v = x·W_qkvᵀ + (q_bias, 0, v_bias)``.

    ``qkv`` has no bias of its own: ``q_bias`` and ``v_bias`` are separate parameters and the
    key bias is zero, as in BEiT. Relative position biases (this layer's own table and/or a
    bias shared across layers) enter as the additive attention mask.

    Args:
        dim: token width ``D``.
        num_heads: heads ``H``; ``D`` must be divisible by it.
        window_size: patch grid ``(Wh, Ww)`` for a per-layer bias table; ``None`` for none.
        qv_bias: learn the q and v biases.
        attn_drop: dropout on attention weights while training.
        proj_drop: dropout after the output projection while training.
    """

    attn_impl: str = "sdpa"
    """``'sdpa'`` or ``'eager'`` (:data:`ATTENTION_IMPLS`); a class default, overridden per layer by :func:`set_attention_impl`."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: tuple[int, int] | None = None,
        qv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        if qv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        if window_size is not None:
            self.window_size = tuple(window_size)
            self.relative_position_bias_table = nn.Parameter(torch.zeros(num_relative_distances(self.window_size), num_heads))
            self.register_buffer("relative_position_index", relative_position_index(self.window_size), persistent=False)
        else:
            self.window_size = None
            self.relative_position_bias_table = None
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def qkv_bias(self) -> torch.Tensor | None:
        """The fused ``[3D]`` bias ``(q_bias, 0, v_bias)``, or ``None``."""
        if self.q_bias is None:
            return None
        return torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])

    def own_bias(self) -> torch.Tensor | None:
        """This layer's relative position bias ``[H, L, L]``, or ``None`` without a table."""
        if self.relative_position_bias_table is None:
            return None
        return gather_bias(self.relative_position_bias_table, self.relative_position_index)

    def resized_bias(self, grid: tuple[int, int] | None) -> torch.Tensor | None:
        """This layer's bias ``[H, L, L]`` for a patch ``grid`` other than its ``window_size``, the table resized
        on the fly (:func:`~beitv2_zoo.layers.rel_pos.bias_for_grid`); ``None`` for its own grid or without a table."""
        if grid is None or self.relative_position_bias_table is None or tuple(grid) == self.window_size:
            return None
        return bias_for_grid(self.relative_position_bias_table, grid)

    def position_bias(
        self, shared_bias: torch.Tensor | None, dtype: torch.dtype, own: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """The additive attention bias ``[1, H, L, L]`` (own table + shared bias, either optional), or ``None``.

        ``own`` is :meth:`own_bias` when given (the fast path gathers it its own way). The result
        is 4-D on purpose: ``scaled_dot_product_attention`` takes its fused (flash) CPU kernel
        only for a 4-D mask and falls back to the slower math path for ``[H, L, L]``.
        """
        own = self.own_bias() if own is None else own
        bias = shared_bias if own is None else (own if shared_bias is None else own + shared_bias)
        return None if bias is None else bias.to(dtype).unsqueeze(0)

    def split_heads(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[B, L, 3D]`` → ``q, k, v``, each ``[B, H, L, D/H]``."""
        batch, length, _ = qkv.shape
        q, k, v = qkv.view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    @staticmethod
    def merge_heads(x: torch.Tensor) -> torch.Tensor:
        """``[B, H, L, d]`` → ``[B, L, H·d]``."""
        if torch.compiler.is_exporting():  # the ONNX exporter mis-strides a view of the fused kernel's output
            return torch.cat(x.unbind(1), dim=-1)
        batch, heads, length, head_dim = x.shape
        return x.transpose(1, 2).reshape(batch, length, heads * head_dim)

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None, dropout_p: float
    ) -> torch.Tensor:
        """``softmax(q·kᵀ/√d + bias)·v`` with :attr:`attn_impl`: ``[B, H, L, d]`` → ``[B, H, L, d]``."""
        if self.attn_impl == "eager":
            return eager_attention(q, k, v, bias, dropout_p)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)

    def attention_probs(
        self, x: torch.Tensor, shared_bias: torch.Tensor | None = None, grid: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """The attention weights ``softmax(q·kᵀ/√d + bias)``, ``[B, H, L, L]`` (for pictures and analysis).

        The projection is the one :meth:`forward` uses (:func:`fast.linear` at CPU inference).
        """
        q, k, _ = self.split_heads(fast.linear(x, self.qkv.weight, self.qkv_bias()))
        return attention_weights(q, k, self.position_bias(shared_bias, q.dtype, self.resized_bias(grid)))

    def forward(
        self, x: torch.Tensor, shared_bias: torch.Tensor | None = None, grid: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """``x``: ``[B, L, D]``; ``shared_bias``: ``[H, L, L]`` or ``None`` → ``[B, L, D]``.

        ``grid``: the patch grid of ``x`` when it may differ from ``window_size`` (dynamic input size).
        """
        own = self.resized_bias(grid)
        if fast.applies(x):  # CPU inference: the same function through faster kernels
            return fast.attention(self, x, shared_bias, own)
        q, k, v = self.split_heads(F.linear(x, self.qkv.weight, self.qkv_bias()))
        dropout_p = self.attn_drop if self.training else 0.0
        out = self.attend(q, k, v, self.position_bias(shared_bias, q.dtype, own), dropout_p)
        return self.proj_drop(self.proj(self.merge_heads(out)))
