"""CPU fast paths: the reference layers' function through faster kernels, at CPU inference only.

:class:`~beitv2_zoo.layers.Attention` and :class:`~beitv2_zoo.layers.Mlp` hand their forward pass
to this module when :func:`applies` says so: the switch is on, the input is on the CPU, no
gradient is recorded and nothing is tracing, compiling or exporting the model (exporters and
compilers need portable ops). Everything else (training, CUDA, ``torch.jit.trace``, ONNX
export) runs the reference layers alone.

**One switch.** :func:`enabled` reads ``BEITV2_ZOO_FAST_PATHS`` (and the older
``BEITV2_ZOO_ONEDNN``; either ``=0`` turns the fast paths off) through
:func:`beitv2_zoo.settings.fast_paths_enabled` once, at first use; :func:`set_enabled` turns
them on or off for the process (tests and benchmarks compare both).

**oneDNN linear** (:func:`linear`). PyTorch's CPU ``F.linear`` on float32 calls the BLAS
``addmm`` (MKL). On some CPUs, AMD EPYC among them, oneDNN's kernels are about twice as fast on
the transformer's shapes for the same float32 arithmetic (measured max abs difference against
float64 ≈ 2e-6, like ``addmm``), and oneDNN fuses the MLP's exact GELU into the first product.
Taken for float32/bfloat16 inputs whose weight has the same dtype, outside autocast, on builds
where the op runs (probed once per dtype).

**bfloat16 attention** (:func:`batched_bf16_attention`). With BEiT's short sequences (L = 197)
the fused SDPA kernel's blocking costs more than it saves: on 2 AVX-512-BF16 cores, 12 heads, it
took 7.6 ms at batch 8 where ``baddbmm`` + ``softmax`` + ``bmm`` took 3.4 ms (0.97 vs 0.40 ms at
batch 1, equal at batch 32). The GEMMs accumulate in float32 like the fused kernel; the attention
weights are rounded to bfloat16 before the second product, which moves the output by about one
bfloat16 step (max abs error against float32 2.4e-2 vs 1.6e-2). Taken for bfloat16 with the
default ``'sdpa'`` implementation and no attention dropout.

**Relative position bias gather** (:func:`gather_bias`). The reference expands a block's table
``[R, H]`` to ``[H, L, L]`` by gathering rows and transposing the result; on one AMD EPYC core that took
2.2 ms per block in float32 (0.55 ms in bfloat16) at L = 197, 12 heads, and 24 ms at L = 577
(384 px). Gathering the transposed table's rows in float32 gives the same values in 0.30 ms
(0.35 ms bfloat16; 2.5 ms at L = 577).

**No caches.** The fused q/v bias (``cat(q_bias, 0, v_bias)``) and each block's relative position
bias are recomputed on every call, as in training. A cache of them cannot see a parameter changed
through ``.data`` (the EMA idiom: it bumps no version counter), and what it saved is now under
4 ms of a 1.5-2.9 s BEiT-B/16 forward at batch 8 (12 gathers of 0.3 ms, and 12 concatenations of
3 µs).
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..settings import fast_paths_enabled

_enabled: bool | None = None
"""The switch; ``None`` until first use, then the environment's answer or :func:`set_enabled`'s."""

_onednn_dtypes: frozenset[torch.dtype] | None = None
"""Dtypes the oneDNN linear runs in on this build; probed at first use."""


def enabled() -> bool:
    """Whether the fast paths are on (the environment is read once, at the first call)."""
    global _enabled
    if _enabled is None:
        _enabled = fast_paths_enabled()
    return _enabled


def set_enabled(value: bool | None) -> None:
    """Turn the fast paths on (``True``) or off (``False``) for this process; ``None`` re-reads the environment."""
    global _enabled
    _enabled = value


def applies(x: torch.Tensor) -> bool:
    """Whether a layer given ``x`` takes its fast path: switch on, CPU, no gradient, no tracing/compiling/exporting."""
    if not enabled() or x.device.type != "cpu" or torch.is_grad_enabled():
        return False
    return not (torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting())


def _onednn_linear_dtypes() -> frozenset[torch.dtype]:
    global _onednn_dtypes
    if _onednn_dtypes is None:
        _onednn_dtypes = frozenset(dtype for dtype in (torch.float32, torch.bfloat16) if _onednn_linear_runs(dtype))
    return _onednn_dtypes


def _onednn_linear_runs(dtype: torch.dtype) -> bool:
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    x, weight, bias = torch.ones(1, 2, 4, dtype=dtype), torch.ones(3, 4, dtype=dtype), torch.zeros(3, dtype=dtype)
    try:
        with torch.inference_mode():
            torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
            torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "none")
    except (RuntimeError, NotImplementedError):  # a build without the op's kernels: F.linear it is
        return False
    return True


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, gelu: bool = False) -> torch.Tensor:
    """``x·Wᵀ + b``, then exact GELU when ``gelu``.

    ``x``: ``[..., in]``, ``weight``: ``[out, in]``, ``bias``: ``[out]`` or ``None`` → ``[..., out]``.

    Through oneDNN when :func:`applies` and the dtypes allow it (see the module docstring),
    otherwise ``F.linear`` (and ``F.gelu``).
    """
    if (
        applies(x)
        and weight.dtype == x.dtype
        and x.dtype in _onednn_linear_dtypes()
        and not torch.is_autocast_enabled("cpu")
    ):
        if gelu:
            return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "none")
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    y = F.linear(x, weight, bias)
    return F.gelu(y) if gelu else y


def batched_bf16_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """``softmax(q·kᵀ/√d + bias)·v`` as two batched bfloat16 GEMMs.

    Args:
        q, k, v: ``[B, H, L, d]``, bfloat16.
        bias: ``[1, H, L, L]`` or ``None``.

    Returns:
        ``[B, H, L, d]``.
    """
    batch, heads, length, head_dim = q.shape
    q, k, v = (t.reshape(batch * heads, length, head_dim) for t in (q, k, v))
    logits = torch.bmm(q, k.transpose(1, 2)).view(batch, heads, length, length)
    logits = logits * head_dim**-0.5 if bias is None else torch.add(bias, logits, alpha=head_dim**-0.5)
    weights = logits.softmax(dim=-1).view(batch * heads, length, length)
    return torch.bmm(weights, v).view(batch, heads, length, head_dim)


def gather_bias(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """:func:`beitv2_zoo.layers.rel_pos.gather_bias`, bit for bit: table ``[R, H]``, index ``[L, L]`` → ``[H, L, L]``.

    Gathers along the rows of the transposed table, so no ``[L, L, H] → [H, L, L]`` transposition
    of the result is needed; in at least float32 (an exact cast both ways), where ``index_select``
    is fast.
    """
    length = index.shape[0]
    wide = table.to(torch.promote_types(table.dtype, torch.float32))
    return wide.t().contiguous().index_select(1, index.view(-1)).view(-1, length, length).to(table.dtype)


def attention(
    layer: nn.Module, x: torch.Tensor, shared_bias: torch.Tensor | None, own: torch.Tensor | None = None
) -> torch.Tensor:
    """:meth:`Attention.forward <beitv2_zoo.layers.Attention.forward>` of ``layer`` with oneDNN projections
    and, in bfloat16, :func:`batched_bf16_attention`.

    ``x``: ``[B, L, D]``; ``shared_bias``: ``[H, L, L]`` or ``None`` → ``[B, L, D]``. (``layer`` is typed
    ``nn.Module`` because the layers import this module, not the other way round.)
    """
    q, k, v = layer.split_heads(linear(x, layer.qkv.weight, layer.qkv_bias()))
    table = layer.relative_position_bias_table
    if own is None:  # ``own``: the layer's bias resized for another grid (dynamic input size)
        own = None if table is None else gather_bias(table, layer.relative_position_index)
    bias = layer.position_bias(shared_bias, q.dtype, own)
    dropout_p = layer.attn_drop if layer.training else 0.0
    if q.dtype == torch.bfloat16 and layer.attn_impl == "sdpa" and not dropout_p:
        out = batched_bf16_attention(q, k, v, bias)
    else:
        out = layer.attend(q, k, v, bias, dropout_p)
    return layer.proj_drop(linear(layer.merge_heads(out), layer.proj.weight, layer.proj.bias))


def mlp(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """:meth:`Mlp.forward <beitv2_zoo.layers.Mlp.forward>` of ``layer`` through oneDNN, GELU fused into the
    first product: ``[B, N, D]`` → ``[B, N, D]``."""
    hidden = linear(x, layer.fc1.weight, layer.fc1.bias, gelu=True)
    return layer.drop(linear(hidden, layer.fc2.weight, layer.fc2.bias))
