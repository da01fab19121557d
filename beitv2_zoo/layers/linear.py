"""``y = x·Wᵀ + b`` (optionally followed by exact GELU) through oneDNN at CPU inference.

PyTorch's CPU ``F.linear`` on float32 calls the BLAS ``addmm`` (MKL). On some CPUs, AMD EPYC
among them, oneDNN's kernels are about twice as fast on the transformer's shapes for the same
float32 arithmetic (measured max abs difference against float64 ≈ 2e-6, like ``addmm``), and
oneDNN can fuse the GELU. The fast path is taken only when no gradient is recorded, on CPU
tensors of float32/bfloat16, outside autocast, tracing and compilation; everything else, and any failure of the
internal op, falls back to ``F.linear``. ``BEITV2_ZOO_ONEDNN=0`` turns the fast path off.
"""

import os

import torch
import torch.nn.functional as F

_ONEDNN_DTYPES = (torch.float32, torch.bfloat16)
_onednn_broken = False


def _onednn_usable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    if _onednn_broken or torch.is_grad_enabled():
        return False
    if x.device.type != "cpu" or x.dtype not in _ONEDNN_DTYPES or weight.dtype != x.dtype:
        return False
    if torch.is_autocast_enabled("cpu") or os.environ.get("BEITV2_ZOO_ONEDNN", "1") == "0":
        return False
    if torch.jit.is_tracing() or torch.compiler.is_compiling():  # exporters and compilers need portable ops
        return False
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, gelu: bool = False) -> torch.Tensor:
    """``x``: ``[..., in]``, ``weight``: ``[out, in]``, ``bias``: ``[out]`` → ``[..., out]``, GELU'd when ``gelu``."""
    global _onednn_broken
    if _onednn_usable(x, weight):
        try:
            if gelu:
                return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "none")
            return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
        except (RuntimeError, NotImplementedError):  # an unsupported build: use the portable path from now on
            _onednn_broken = True
    y = F.linear(x, weight, bias)
    return F.gelu(y) if gelu else y
