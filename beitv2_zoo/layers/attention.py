"""Multi-head self-attention with BEiT's q/v biases and relative position bias."""

import torch
import torch.nn.functional as F
from torch import nn

from .linear import linear
from .rel_pos import gather_bias, num_relative_distances, relative_position_index

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


def _batched_bf16_cpu_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``softmax(q·kᵀ/√d + bias)·v`` as two batched bfloat16 GEMMs: ``[B, H, L, d]`` → ``[B, H, L, d]``.

    For bfloat16 on the CPU at inference. With BEiT's short sequences (L = 197) the fused
    SDPA kernel's blocking costs more than it saves: on 2 AVX-512-BF16 cores, 12 heads, it took
    7.6 ms at batch 8 where ``baddbmm`` + ``softmax`` + ``bmm`` took 3.4 ms (0.97 vs 0.40 ms at
    batch 1, equal at batch 32). The GEMMs accumulate in float32 like the fused kernel; the
    attention weights are rounded to bfloat16 before the second product, which moves the
    output by about one bfloat16 step (max abs error against float32 2.4e-2 vs 1.6e-2).
    """
    batch, heads, length, head_dim = q.shape
    q, k, v = (t.reshape(batch * heads, length, head_dim) for t in (q, k, v))
    logits = torch.bmm(q, k.transpose(1, 2)).view(batch, heads, length, length)
    logits = logits * head_dim**-0.5 if bias is None else torch.add(bias, logits, alpha=head_dim**-0.5)
    weights = logits.softmax(dim=-1).view(batch * heads, length, length)
    return torch.bmm(weights, v).view(batch, heads, length, head_dim)


def _takes_bf16_cpu_path(q: torch.Tensor) -> bool:
    if q.dtype != torch.bfloat16 or q.device.type != "cpu" or torch.is_grad_enabled():
        return False
    return not (torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting())


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
    """Self-attention computed by ``scaled_dot_product_attention``.

    ``qkv`` has no bias of its own: ``q_bias`` and ``v_bias`` are separate parameters
    and the key bias is zero, as in BEiT. Relative position biases (this layer's own
    table and/or a bias shared across layers) enter as the additive attention mask.
    ``attn_impl = 'eager'`` (see :func:`set_attention_impl`) computes the same attention
    in explicit ops instead, for benchmarks.

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

    def _derived(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(qkv_bias, own_bias)``, computed once and reused while no gradient is recorded.

        Both are pure functions of parameters, so at inference they are cached and recomputed
        only when a parameter is replaced or modified in place (its storage or version changes).
        """
        if torch.is_grad_enabled():
            return self.qkv_bias(), self.own_bias()
        sources = [p for p in (self.q_bias, self.v_bias, self.relative_position_bias_table) if p is not None]
        stamp = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in sources)
        if getattr(self, "_derived_stamp", None) != stamp:
            self._derived_cache = (self.qkv_bias(), self.own_bias())
            self._derived_stamp = stamp
        return self._derived_cache

    def _qkv_and_bias(
        self, x: torch.Tensor, shared_bias: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``q, k, v`` as ``[B, H, L, D/H]`` and the total additive bias ``[1, H, L, L]`` (or ``None``).

        The bias is 4-D on purpose: ``scaled_dot_product_attention`` takes its fused (flash)
        CPU kernel only for a 4-D mask and falls back to the slower math path for ``[H, L, L]``.
        """
        batch, length, _ = x.shape
        qkv_bias, own = self._derived()
        qkv = linear(x, self.qkv.weight, qkv_bias)
        q, k, v = qkv.view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        bias = shared_bias if own is None else (own if shared_bias is None else own + shared_bias)
        return q, k, v, None if bias is None else bias.to(q.dtype).unsqueeze(0)

    def attention_probs(self, x: torch.Tensor, shared_bias: torch.Tensor | None = None) -> torch.Tensor:
        """The attention weights ``softmax(q·kᵀ/√d + bias)``, ``[B, H, L, L]`` (for pictures and analysis)."""
        q, k, _, bias = self._qkv_and_bias(x, shared_bias)
        return attention_weights(q, k, bias)

    def forward(self, x: torch.Tensor, shared_bias: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``[B, L, D]``; ``shared_bias``: ``[H, L, L]`` or ``None`` → ``[B, L, D]``."""
        batch, length, dim = x.shape
        q, k, v, bias = self._qkv_and_bias(x, shared_bias)
        dropout_p = self.attn_drop if self.training else 0.0
        if self.attn_impl == "eager":
            x = eager_attention(q, k, v, bias, dropout_p)
        elif _takes_bf16_cpu_path(q) and not dropout_p:
            x = _batched_bf16_cpu_attention(q, k, v, bias)
        else:
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)
        if torch.compiler.is_exporting():  # the ONNX exporter mis-strides a view of the fused kernel's output
            x = torch.cat(x.unbind(1), dim=-1)
        else:
            x = x.transpose(1, 2).reshape(batch, length, dim)
        return self.proj_drop(linear(x, self.proj.weight, self.proj.bias))
