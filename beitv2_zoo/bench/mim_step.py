"""Throughput of one BEiT v2 pretraining step, with fused (SDPA) against eager attention.

One step is what :mod:`beitv2_zoo.train.engine` does per optimizer step of the MIM recipe
(:data:`RECIPE_NAME`, read with :func:`~beitv2_zoo.train.recipes.get_recipe`: this module holds
no hyperparameter of its own), without the data loader: the frozen VQ-KD tokenizer computes the
targets, the model predicts the codes of the masked patches (both branches), the loss
(:func:`~beitv2_zoo.train.objectives.mim_loss`, the training loop's objective) goes backward,
the global gradient norm is clipped to the recipe's ``clip_grad`` (3.0), and AdamW steps with
the recipe's parameter groups (weight decay 0.05, layer decay), betas (0.9/0.98), eps and peak
lr, scaled linearly from ``base_batch_size`` to the measured batch as the training loop scales
it. Random weights, one fixed batch of random images and the recipe's block masks (75 of 196
patches at 224/16, scaled by area on another grid), bf16 autocast on CUDA (fp32 on CPU unless
told); the recipe's drop path and aggregation depth apply to the model.

Attention variants (:func:`beitv2_zoo.layers.attention.set_attention_impl` on the same model):

* ``'sdpa'``: ``F.scaled_dot_product_attention`` with the kernel PyTorch picks (recorded as
  ``sdpa_kernel``; with BEiT's additive relative position bias, CUDA cannot use the flash
  kernel and takes memory-efficient or cuDNN attention; CPU takes its flash kernel);
* ``'sdpa:efficient'``, ``'sdpa:cudnn'``, ``'sdpa:flash'``, ``'sdpa:math'``: SDPA held to
  one backend (a backend that refuses the inputs is reported with its error);
* ``'eager'``: explicit ``softmax(q·kᵀ/√d + bias)·v``.

Model FLOPs per image (2 per multiply-add, attention's ``q·kᵀ`` and ``·v`` included, no
recomputation counted): ``3 × F_student + F_tokenizer``, where ``F_student`` is the
student's forward pass (patch embedding, ``depth`` blocks and the ``head_layers``
aggregation blocks over all ``1 + N`` tokens, and the LM head on the masked patches of
both branches, ``2 × 2·M·D·V``); backward costs twice the forward; ``F_tokenizer`` is
the frozen tokenizer's forward (its ViT, task layer ``2·N·(D² + D·C)`` and codebook
similarity ``2·N·K·C``), which has no backward. Model FLOP utilisation (MFU) is the
achieved model FLOP/s over the card's datasheet dense bf16 peak where known, and is
also given as a fraction of the GEMM peak measured in the same run.
"""

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..layers.attention import set_attention_impl
from ..train.masking import BlockMaskGenerator
from ..models import BeitV2Pretrain
from ..models.mim import MIM_ARCHITECTURES
from ..train.config import MIMRecipe
from ..train.objectives import mim_loss
from ..train.optim import build_adamw, param_groups
from ..train.recipes import get_recipe
from .machine import flops_per_image, synchronize

DEFAULT_ATTENTIONS = ("sdpa", "eager")
SDPA_BACKENDS = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION", "cudnn": "CUDNN_ATTENTION", "math": "MATH"}
"""The ``'sdpa:<backend>'`` variants and the :class:`torch.nn.attention.SDPBackend` each holds SDPA to."""
RECIPE_NAME = "beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k"
"""The published recipe whose optimizer step is measured."""


def _vit_settings(model: torch.nn.Module, depth: int) -> dict:
    """What :func:`flops_per_image` needs, read from a built ViT (no classifier head)."""
    embed = model.patch_embed
    first = model.blocks[0]
    return {"img_size": embed.img_size, "patch_size": embed.proj.kernel_size[0], "embed_dim": model.embed_dim,
            "depth": depth, "mlp_ratio": first.mlp.fc1.out_features / model.embed_dim, "num_classes": 0}


def training_flops(model: BeitV2Pretrain, masked: int) -> dict[str, float]:
    """Model FLOPs of one image (see the module docstring): ``student_forward``, ``tokenizer_forward``, ``training``."""
    width, vocab = model.embed_dim, model.lm_head.out_features
    student = flops_per_image(_vit_settings(model, len(model.blocks) + len(model.cls_pt_layers)))
    student += 2 * (2 * masked * width * vocab)
    tokenizer = 0.0
    if model.tokenizer is not None:
        encoder = model.tokenizer.encoder
        patches = encoder.patch_embed.num_patches
        code_dim = model.tokenizer.encode_task_layer[2].out_features
        tokenizer = flops_per_image(_vit_settings(encoder, len(encoder.blocks)))
        tokenizer += 2 * patches * (encoder.embed_dim**2 + encoder.embed_dim * code_dim)
        tokenizer += 2 * patches * model.tokenizer.num_codes * code_dim
    return {"student_forward": student, "tokenizer_forward": tokenizer, "training": 3 * student + tokenizer}


@contextlib.contextmanager
def attention_variant(model: torch.nn.Module, variant: str) -> Iterator[None]:
    """Run the block with ``variant`` (``'eager'``, ``'sdpa'`` or ``'sdpa:<backend>'``); restores SDPA after."""
    impl, _, backend = variant.partition(":")
    set_attention_impl(model, impl)
    try:
        if backend:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            with sdpa_kernel(getattr(SDPBackend, SDPA_BACKENDS[backend])):
                yield
        else:
            yield
    finally:
        set_attention_impl(model, "sdpa")


def sdpa_kernel_name(model: BeitV2Pretrain, batch: int, dtype: torch.dtype, device: torch.device) -> str:
    """The SDPA backend PyTorch picks for this model's attention shapes (``'unknown'`` if it cannot tell)."""
    heads = model.blocks[0].attn.num_heads
    length = model.patch_embed.num_patches + 1
    q = torch.zeros(batch, heads, length, model.embed_dim // heads, dtype=dtype, device=device, requires_grad=True)
    bias = torch.zeros(1, heads, length, length, dtype=dtype, device=device, requires_grad=True)
    try:
        from torch.nn.attention import SDPBackend

        choice = torch._fused_sdp_choice(q, q, q, bias)
        return next(n for n in dir(SDPBackend) if n.isupper() and int(getattr(SDPBackend, n)) == choice).lower()
    except Exception:  # a private function: absent or changed in other versions
        return "unknown"


def mask_generator(recipe: MIMRecipe, grid: tuple[int, int], seed: int) -> BlockMaskGenerator:
    """The recipe's block masks on ``grid``: its patch counts as they are on the recipe's own grid,
    scaled by area on another one."""
    patch = recipe.patch_size or MIM_ARCHITECTURES[recipe.model]["patch_size"]
    scale = grid[0] * grid[1] / (recipe.img_size // patch) ** 2

    def scaled(count: int) -> int:
        return max(1, round(count * scale))

    return BlockMaskGenerator(grid, num_masking_patches=scaled(recipe.num_mask_patches),
                              min_num_patches=scaled(recipe.min_mask_patches),
                              max_num_patches=scaled(recipe.max_mask_patches) if recipe.max_mask_patches else None,
                              seed=seed)


def step_lr(recipe: MIMRecipe, batch_size: int) -> float:
    """The recipe's peak lr for ``batch_size`` images per step on one process (the training loop's linear scaling)."""
    return recipe.lr * batch_size / recipe.base_batch_size if recipe.base_batch_size else recipe.lr


def _batch(model: BeitV2Pretrain, recipe: MIMRecipe, batch: int, device: torch.device,
           seed: int) -> dict[str, torch.Tensor]:
    """Random ``image`` (normalised), ``target_image`` (in [0, 1]) ``[B, 3, S, S]`` and block ``mask`` ``[B, h, w]``."""
    grid = tuple(model.patch_embed.grid_size)
    size = model.patch_embed.img_size
    generator = torch.Generator().manual_seed(seed)
    masks = mask_generator(recipe, grid, seed)
    return {"image": torch.randn(batch, 3, size, size, generator=generator).to(device),
            "target_image": torch.rand(batch, 3, size, size, generator=generator).to(device),
            "mask": torch.from_numpy(np.stack([masks() for _ in range(batch)])).to(device)}


def mim_step_throughput(
    architecture: str | None = None,
    batch_size: int = 64,
    steps: int = 5,
    repeats: int = 5,
    device: str | torch.device = "cpu",
    attentions: tuple[str, ...] = DEFAULT_ATTENTIONS,
    precision: str | None = None,
    peak_gflops: dict[str, float] | None = None,
    nominal_peak_tflops: float | None = None,
    seed: int = 0,
    log: Callable[[str], None] = print,
    recipe: str = RECIPE_NAME,
) -> dict:
    """Images/s and model FLOP utilisation of the MIM training step, per attention variant.

    Args:
        architecture: a key of :data:`~beitv2_zoo.models.mim.MIM_ARCHITECTURES` (default: the recipe's model).
        batch_size: images per step (the recipe's per-GPU batch is 256).
        steps: steps per timed run (one synchronisation at each end of the run).
        repeats: timed runs per variant, interleaved across variants (after one warm-up run
            of two steps each); medians are reported.
        device: ``'cpu'`` or ``'cuda'`` (``'cuda:1'``, …).
        attentions: variants to compare (see the module docstring).
        precision: ``'bf16'`` (autocast) or ``'fp32'``; default bf16 on CUDA, fp32 on CPU.
        peak_gflops: the measured GEMM peak per precision (``machine.gemm_peak``), for MFU.
        nominal_peak_tflops: the card's datasheet dense bf16 peak, for MFU (of bf16 runs).
        recipe: the MIM recipe (a name or file, see :func:`~beitv2_zoo.train.recipes.get_recipe`)
            whose optimizer, clipping, masks, drop path and aggregation depth the step uses.

    Returns:
        A JSON-serialisable dict: the setup, ``gflop_per_image`` (with the formula),
        ``sdpa_kernel``, ``logits_max_abs_diff`` (fp32 code logits of each variant against the
        first's, same weights and batch), and ``rows``: per variant ``images_per_s``, ``step_ms``, ``model_tflops``,
        ``mfu`` (``None`` without a nominal peak), ``of_gemm_peak``, ``peak_memory_mb``
        (CUDA) and every run; or ``error`` for a variant that could not run.
    """
    for variant in attentions:
        impl, _, backend = variant.partition(":")
        if impl not in ("sdpa", "eager") or (backend and (impl != "sdpa" or backend not in SDPA_BACKENDS)):
            raise ValueError(f"unknown attention variant {variant!r}: use 'eager', 'sdpa' or 'sdpa:<{'|'.join(SDPA_BACKENDS)}>'")
    device = torch.device(device)
    precision = precision or ("bf16" if device.type == "cuda" else "fp32")
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be 'bf16' or 'fp32', got {precision!r}")
    settings = get_recipe(recipe)
    if not isinstance(settings, MIMRecipe):
        raise ValueError(f"recipe {recipe!r} is a {settings.task} recipe; the step needs a MIM recipe")
    architecture = architecture or settings.model
    torch.manual_seed(seed)
    model = BeitV2Pretrain(**MIM_ARCHITECTURES[architecture], head_layers=settings.head_layers,
                           drop_path_rate=settings.drop_path_rate).to(device).train()
    lr = step_lr(settings, batch_size)
    groups = param_groups(model.named_parameters(), settings.weight_decay, model.no_weight_decay(),
                          settings.layer_decay, len(model.blocks))
    optimizer = build_adamw(groups, lr, settings.betas, settings.eps)
    trainable = [p for p in model.parameters() if p.requires_grad]
    inputs = _batch(model, settings, batch_size, device, seed)
    masked = int(inputs["mask"][0].sum())
    flops = training_flops(model, masked)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step() -> None:
        with autocast:
            loss = mim_loss(model, inputs["image"], inputs["target_image"], inputs["mask"])["loss"]
        loss.backward()
        if settings.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(trainable, settings.clip_grad)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def timed(variant: str, count: int) -> float:
        with attention_variant(model, variant):
            synchronize(device)
            start = time.perf_counter()
            for _ in range(count):
                step()
            synchronize(device)
        return time.perf_counter() - start

    differences: dict[str, float] = {}  # fp32 code logits of both branches against the first variant's
    reference = logits = None
    with torch.no_grad():
        for variant in attentions:
            with contextlib.suppress(RuntimeError), attention_variant(model, variant):
                logits = torch.cat(model.forward_mim(inputs["image"], inputs["mask"])).float()
                reference = logits if reference is None else reference
                differences[variant] = float((logits - reference).abs().max())
    del reference, logits

    step()  # the optimizer's state is created on the first step
    errors: dict[str, str] = {}
    peak_memory: dict[str, float] = {}
    for variant in attentions:  # warm-up: kernels, the optimizer's state, the allocator's pools
        try:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            timed(variant, 2)
            if device.type == "cuda":
                peak_memory[variant] = torch.cuda.max_memory_allocated(device) / 2**20
        except RuntimeError as error:  # e.g. a backend that refuses an additive bias
            errors[variant] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":  # e.g. after running out of memory
                torch.cuda.empty_cache()
    running = [v for v in attentions if v not in errors]
    times: dict[str, list[float]] = {v: [] for v in running}
    for repeat in range(repeats):
        for variant in running if repeat % 2 == 0 else running[::-1]:
            times[variant].append(timed(variant, steps))
        log(f"  mim step batch {batch_size}: repeat {repeat + 1}/{repeats}")

    rows = []
    for variant in attentions:
        if variant in errors:
            rows.append({"attention": variant, "error": errors[variant]})
            continue
        runs = [batch_size * steps / t for t in times[variant]]
        speed = statistics.median(runs)
        achieved = speed * flops["training"]
        peak = (peak_gflops or {}).get(precision)
        rows.append({"attention": variant, "images_per_s": speed, "step_ms": 1000 * batch_size / speed,
                     "model_tflops": achieved / 1e12,
                     "mfu": achieved / (nominal_peak_tflops * 1e12) if nominal_peak_tflops and precision == "bf16" else None,
                     "of_gemm_peak": achieved / (peak * 1e9) if peak else None,
                     "peak_memory_mb": peak_memory.get(variant), "runs": runs})
    sdpa = next((r for r in rows if r["attention"] == "sdpa" and "images_per_s" in r), None)
    for row in rows:
        if sdpa and "images_per_s" in row:
            row["speed_vs_sdpa"] = row["images_per_s"] / sdpa["images_per_s"]
    return {
        "architecture": architecture, "device": str(device), "batch": batch_size, "steps_per_run": steps,
        "repeats": repeats, "precision": "bf16 autocast" if precision == "bf16" else "fp32",
        "recipe": settings.name, "masked_patches": masked,
        "optimizer": (f"AdamW (lr {lr:.3g} = {settings.lr:g} x {batch_size}/{settings.base_batch_size or batch_size}, "
                      f"betas {settings.betas[0]:g}/{settings.betas[1]:g}, eps {settings.eps:g}, "
                      f"wd {settings.weight_decay:g}, layer decay {settings.layer_decay:g}), "
                      f"clip {settings.clip_grad:g}"),
        "gflop_per_image": {k: v / 1e9 for k, v in flops.items()},
        "flop_formula": "3 x student forward (blocks + aggregation blocks + LM head on masked patches) + tokenizer forward",
        "nominal_peak_tflops": nominal_peak_tflops,
        "sdpa_kernel": sdpa_kernel_name(model, batch_size, torch.bfloat16 if precision == "bf16" else torch.float32,
                                        device),
        "logits_max_abs_diff": differences,
        "rows": rows,
    }
