"""What the machine can do: its description (CPU model and instruction sets), its measured matrix-multiply
peak, and the GEMM ceiling of a model's own linear-layer shapes."""

import os
import platform
import time
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from ..layers.fast import linear

ISA_FLAGS = ("amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_vnni", "avx512f", "avx2")
"""The instruction-set flags (as ``/proc/cpuinfo`` spells them) that decide which GEMM kernels a CPU can run:
AMX tiles for bf16/int8 (Sapphire Rapids and later), AVX-512 BF16 dot products (e.g. AMD Zen 4), plain AVX-512."""


def _cpuinfo() -> tuple[str | None, set[str] | None]:
    """The first processor's ``model name`` and ``flags`` from ``/proc/cpuinfo`` (``None`` where unreadable)."""
    name = flags = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if name is None and line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                elif flags is None and line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                if name is not None and flags is not None:
                    break
    except OSError:
        pass
    return name, flags


def cpu_isa() -> dict[str, bool | None]:
    """Each of :data:`ISA_FLAGS`: present, absent, or ``None`` (unknown).

    From ``/proc/cpuinfo`` on Linux; elsewhere from torch's own CPU probes where it has one
    (``amx_tile``, ``avx512_bf16``, ``avx512f``, ``avx2``), else ``None``.
    """
    _, flags = _cpuinfo()
    if flags is not None:
        return {flag: flag in flags for flag in ISA_FLAGS}
    probes = {"amx_tile": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported",
              "avx512f": "_is_avx512_supported", "avx2": "_is_avx2_supported"}
    isa: dict[str, bool | None] = {}
    for flag in ISA_FLAGS:
        probe = getattr(torch.cpu, probes.get(flag, ""), None)
        try:
            isa[flag] = bool(probe()) if probe else None
        except Exception:  # private probes: absent or changed in other versions
            isa[flag] = None
    return isa


def describe(device: torch.device | str = "cpu") -> dict:
    """CPU model, its instruction sets (:func:`cpu_isa`), the kernels torch dispatches to, core count, threads,
    torch version; on CUDA also the card, its memory and the CUDA / cuDNN versions."""
    cpu = _cpuinfo()[0] or platform.processor() or platform.machine()
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # older torch
        capability = None
    description: dict = {"cpu": cpu, "cpu_isa": cpu_isa(), "torch_cpu_capability": capability,
                   "logical_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
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


def model_gemm_shapes(settings: dict, batch: int) -> dict[str, tuple[int, int, int]]:
    """The ``(m, k, n)`` of each linear layer of one transformer block at ``batch`` images:
    ``m = batch × tokens`` rows (tokens = patches + the class token, 197 for a /16 model at 224)."""
    dim = settings["embed_dim"]
    tokens = (settings["img_size"] // settings["patch_size"]) ** 2 + 1
    hidden = int(dim * settings.get("mlp_ratio", 4.0))
    rows = batch * tokens
    return {"qkv": (rows, dim, 3 * dim), "proj": (rows, dim, dim), "fc1": (rows, dim, hidden), "fc2": (rows, hidden, dim)}


def _gemm_paths(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    """Every way this build can compute ``x·wᵀ + b`` on the CPU, by name; each one is run once here, and
    those that fail (a build without the op, a dtype it lacks) are left out.

    ``addmm``: ``F.linear`` (BLAS); ``onednn``: oneDNN on the plain weight (our fast path);
    ``onednn prepacked``: oneDNN on a weight reordered once for this batch (what inductor's freezing
    does); ``mkl prepacked``: MKL's packed sgemm (fp32 only; inductor's fp32 choice).
    """
    rows = x.shape[0]
    paths: dict[str, Callable[[], torch.Tensor]] = {"addmm": lambda: F.linear(x, w, b)}
    candidates: dict[str, Callable[[], Callable[[], torch.Tensor]]] = {
        "onednn": lambda: lambda: torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], ""),
    }

    def onednn_packed() -> Callable[[], torch.Tensor]:
        packed = torch.ops.mkldnn._reorder_linear_weight(w, rows)
        return lambda: torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], "")

    def mkl_packed() -> Callable[[], torch.Tensor]:
        if x.dtype != torch.float32:
            raise TypeError("fp32 only")
        packed = torch.ops.mkl._mkl_reorder_linear_weight(w, rows)
        return lambda: torch.ops.mkl._mkl_linear(x, packed, w, b, rows)

    candidates.update({"onednn prepacked": onednn_packed, "mkl prepacked": mkl_packed})
    for name, build in candidates.items():
        try:
            fn = build()
            fn()
        except Exception:  # an op this build or dtype lacks
            continue
        paths[name] = fn
    return paths


def gemm_ceiling(settings: dict, batch_sizes: tuple[int, ...], precisions: tuple[str, ...] = ("fp32", "bf16"),
                 device: torch.device | str = "cpu", repeats: int = 3) -> list[dict]:
    """The machine's GEMM ceiling on the model's own linear-layer shapes, per batch size and dtype.

    Each shape of :func:`model_gemm_shapes` (qkv, proj, fc1, fc2 at ``batch × tokens`` rows) is
    timed (best of ``repeats`` after one warm-up call) through every path of :func:`_gemm_paths`
    on the CPU (``F.linear`` only on CUDA), on random operands of the precision's dtype; a shape's
    rate is its fastest path's. The ceiling is their FLOP-weighted harmonic mean: the rate at
    which a block's four linear layers would run if each ran at its best, so ``model GFLOP/s ÷
    ceiling`` says how close a whole forward pass (attention, norms and copies included) comes
    to the machine's best matrix multiplies.

    Returns:
        One dict per batch size: ``batch``, ``rows`` (of each product: batch × tokens) and per precision
        ``{"gflops": ceiling, "shapes": {name: {"m", "k", "n", "gflops", "best_path", "paths": {path: gflops}}}}``.
    """
    device = torch.device(device)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    rows = []
    for batch in batch_sizes:
        shapes = model_gemm_shapes(settings, batch)
        entry: dict = {"batch": batch, "rows": next(iter(shapes.values()))[0]}
        for precision in precisions:
            measured: dict[str, dict] = {}
            for name, (m, k, n) in shapes.items():
                generator = torch.Generator().manual_seed(m + k + n)
                x = torch.randn(m, k, generator=generator).to(device, dtypes[precision])
                w = torch.randn(n, k, generator=generator).to(device, dtypes[precision])
                b = torch.randn(n, generator=generator).to(device, dtypes[precision])
                with torch.inference_mode():
                    paths = _gemm_paths(x, w, b) if device.type == "cpu" else {"addmm": partial(F.linear, x, w, b)}
                    rates = {path: 2 * m * k * n / _best_seconds(fn, repeats, device) / 1e9 for path, fn in paths.items()}
                best = max(rates, key=rates.__getitem__)
                measured[name] = {"m": m, "k": k, "n": n, "gflops": rates[best], "best_path": best, "paths": rates}
            flops = {name: 2 * s["m"] * s["k"] * s["n"] for name, s in measured.items()}
            ceiling = sum(flops.values()) / sum(flops[name] / measured[name]["gflops"] for name in measured)
            entry[precision] = {"gflops": ceiling, "shapes": measured}
        rows.append(entry)
    return rows


def flops_per_image(settings: dict) -> float:
    """Multiply-add FLOPs (2 per MAC) of one forward pass, from the architecture's shapes."""
    patch, dim, depth = settings["patch_size"], settings["embed_dim"], settings["depth"]
    tokens = (settings["img_size"] // patch) ** 2 + 1
    hidden = int(dim * settings.get("mlp_ratio", 4.0))
    per_block = 2 * tokens * dim * (3 * dim + dim + 2 * hidden) + 2 * 2 * tokens * tokens * dim
    patch_embed = 2 * (tokens - 1) * dim * 3 * patch * patch
    head = 2 * dim * settings.get("num_classes", 0)
    return float(depth * per_block + patch_embed + head)
