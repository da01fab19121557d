"""What the machine can do: its description and its measured matrix-multiply peak."""

import os
import platform
import time

import torch
import torch.nn.functional as F

from ..layers.linear import linear


def describe() -> dict:
    """CPU model, core count, threads, torch version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "logical_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}


def _best_seconds(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def gemm_peak(repeats: int = 5) -> dict[str, float]:
    """Best GFLOP/s of a ViT-B-sized matrix multiply (1576×768 · 768×3072), per dtype.

    Both the BLAS path (``F.linear``) and the oneDNN path are measured and the faster
    counts as the machine's peak, so a model using either is compared with the best.
    """
    m, k, n = 1576, 768, 3072
    flops = 2 * m * k * n
    peaks = {}
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x, w, b = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype), torch.randn(n, dtype=dtype)
        with torch.inference_mode():
            seconds = min(_best_seconds(lambda: F.linear(x, w, b), repeats), _best_seconds(lambda: linear(x, w, b), repeats))
        peaks[label] = flops / seconds / 1e9
    return peaks


def flops_per_image(settings: dict) -> float:
    """Multiply-add FLOPs (2 per MAC) of one forward pass, from the architecture's shapes."""
    patch, dim, depth = settings["patch_size"], settings["embed_dim"], settings["depth"]
    tokens = (settings["img_size"] // patch) ** 2 + 1
    hidden = int(dim * settings.get("mlp_ratio", 4.0))
    per_block = 2 * tokens * dim * (3 * dim + dim + 2 * hidden) + 2 * 2 * tokens * tokens * dim
    patch_embed = 2 * (tokens - 1) * dim * 3 * patch * patch
    head = 2 * dim * settings.get("num_classes", 0)
    return float(depth * per_block + patch_embed + head)
