"""What the machine can do: its description and its measured matrix-multiply peak."""

import os
import platform
import time

import torch
import torch.nn.functional as F

from ..layers.fast import linear


def describe(device: torch.device | str = "cpu") -> dict:
    """CPU model, core count, threads, torch version; on CUDA also the card, its memory and the CUDA / cuDNN versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    description = {"cpu": cpu, "logical_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                   "torch": torch.__version__, "python": platform.python_version()}
    device = torch.device(device)
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        description.update(gpu=properties.name, gpu_memory_gb=round(properties.total_memory / 2**30, 1),
                           cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                           fp32_matmul_precision=torch.get_float32_matmul_precision(),
                           nominal_bf16_tflops=nominal_bf16_tflops(properties.name))
    return description


NOMINAL_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0),
                       ("A100", 312.0), ("L40S", 362.0), ("A10G", 70.0))
"""Datasheet dense (no sparsity) bf16 tensor-core TFLOP/s, matched in order against the card's name
(``'NVIDIA H100 80GB HBM3'`` is the SXM card); the denominator of model FLOP utilisation."""


def nominal_bf16_tflops(gpu_name: str) -> float | None:
    """The datasheet dense bf16 peak of a card, or ``None`` when it is not in :data:`NOMINAL_BF16_TFLOPS`."""
    return next((tflops for key, tflops in NOMINAL_BF16_TFLOPS if key in gpu_name), None)


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA kernels run asynchronously); nothing to do on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_seconds(fn, repeats: int, device: torch.device) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def gemm_peak(repeats: int = 5, device: torch.device | str = "cpu") -> dict[str, float]:
    """Best GFLOP/s of a matrix multiply per dtype (``'fp32'``, ``'bf16'``).

    CPU: a ViT-B-sized multiply (1576×768 · 768×3072) through both the BLAS path
    (``F.linear``) and the oneDNN path; the faster counts as the machine's peak, so a model
    using either is compared with the best. CUDA: the better of a large square multiply
    (8192³) and the ViT-B MLP shape at batch 256 (50432×768 · 768×3072), timed between
    synchronisations; fp32 runs at torch's matmul precision (``'highest'`` unless changed:
    no TF32).
    """
    device = torch.device(device)
    shapes = [(1576, 768, 3072)] if device.type == "cpu" else [(8192, 8192, 8192), (50432, 768, 3072)]
    peaks = {}
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        peaks[label] = max(2 * m * k * n / _gemm_seconds(m, k, n, dtype, device, repeats) / 1e9 for m, k, n in shapes)
    return peaks


def _gemm_seconds(m: int, k: int, n: int, dtype: torch.dtype, device: torch.device, repeats: int) -> float:
    """Best time of ``[m, k] · [k, n] + bias``; on CPU the faster of ``F.linear`` and the oneDNN path."""
    x, w = torch.randn(m, k, dtype=dtype, device=device), torch.randn(n, k, dtype=dtype, device=device)
    b = torch.randn(n, dtype=dtype, device=device)
    paths = [lambda: F.linear(x, w, b)] + ([lambda: linear(x, w, b)] if device.type == "cpu" else [])
    with torch.inference_mode():
        return min(_best_seconds(path, repeats, device) for path in paths)


def flops_per_image(settings: dict) -> float:
    """Multiply-add FLOPs (2 per MAC) of one forward pass, from the architecture's shapes."""
    patch, dim, depth = settings["patch_size"], settings["embed_dim"], settings["depth"]
    tokens = (settings["img_size"] // patch) ** 2 + 1
    hidden = int(dim * settings.get("mlp_ratio", 4.0))
    per_block = 2 * tokens * dim * (3 * dim + dim + 2 * hidden) + 2 * 2 * tokens * tokens * dim
    patch_embed = 2 * (tokens - 1) * dim * 3 * patch * patch
    head = 2 * dim * settings.get("num_classes", 0)
    return float(depth * per_block + patch_embed + head)
