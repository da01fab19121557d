"""The training loop shared by all tasks (VQ-KD, MIM, fine-tuning, linear probing, segmentation).

One process::

    beitv2-zoo train beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k --data data/imagenet

One machine with 8 GPUs (NCCL), and two machines (run on each, ``--node_rank`` 0 and 1)::

    torchrun --nproc_per_node=8 -m beitv2_zoo train RECIPE --data data/imagenet
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --master_addr=10.0.0.1 --master_port=29500 \\
        -m beitv2_zoo train RECIPE --data data/imagenet

The order of operations in one optimizer step, top to bottom in :func:`_train`:

1. set the lr of every parameter group from the recipe's schedule, cosine or poly
   (``lr(step) × group lr_scale``);
2. for each of ``accum_steps`` micro-batches: forward under autocast, backward of
   ``loss / accum_steps``; DDP all-reduces gradients only on the last micro-batch (``no_sync``);
3. stop with :class:`NonFiniteLossError` if the loss of any rank is NaN/inf (before the
   optimizer touches the weights);
4. unscale (fp16), clip the global gradient norm, optimizer step through the grad scaler;
5. update the EMA, log on rank 0, evaluate, and write a checkpoint every ``save_interval`` steps.
"""

import contextlib
import copy
import json
import logging
import math
import os
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from . import distributed
from .checkpointing import (TrainingState, capture_rng, load_training_state, restore_rng, save_checkpoint, save_weights,
                            verified_checkpoint, verify_checkpoint)
from .config import TrainRecipe, recipe_to_dict, save_recipe
from .data import eval_loader, sample_seed, to_device, train_loader
from .distributed import DistEnv
from .errors import DataError, NonFiniteLossError, ResumeError
from .log import RunLogger
from .optim import ModelEma, build_adamw
from .schedule import learning_rate
from .tasks import TaskSetup, setup_task

logger = logging.getLogger(__name__)
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def train(recipe: TrainRecipe, work_dir: str | Path, resume: bool = False, resume_from: str | Path | None = None,
          stop_at: int = 0, device: str | None = None, progress: bool = True) -> Path:
    """Run ``recipe`` in this process (one of ``torchrun``'s, or alone); returns the final weights' path.

    Args:
        work_dir: where ``recipe.json``, ``log.jsonl``, ``checkpoints/`` and the final
            ``model.safetensors`` go.
        resume: continue from the newest complete checkpoint in ``work_dir`` (start fresh if none).
        resume_from: continue from this checkpoint folder instead.
        stop_at: stop (with a checkpoint) after this optimizer step, e.g. to fit a job's time
            slot; the next ``resume`` continues exactly where it stopped. 0: run to the end.
        device: ``'cpu'`` or ``'cuda'`` (default: CUDA when available).
        progress: show the progress bar on rank 0.
    """
    env = distributed.setup(device)
    try:
        return _train(recipe, Path(work_dir), env, resume, resume_from, stop_at, progress)
    finally:
        distributed.teardown(env)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _train(recipe: TrainRecipe, work_dir: Path, env: DistEnv, resume: bool, resume_from: str | Path | None,
           stop_at: int, progress: bool) -> Path:
    if env.device.type == "cpu":
        torch.set_flush_denormal(True)  # tiny weights and gradients as denormals slow CPU kernels down many times
    _seed_everything(recipe.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    task = setup_task(recipe, env)
    _seed_everything(recipe.seed + env.rank)  # then each rank its own dropout / drop-path stream
    model = task.objective.to(env.device)
    if recipe.grad_checkpointing and hasattr(task.saved, "set_grad_checkpointing"):
        task.saved.set_grad_checkpointing(True)

    # ---- data and schedule lengths
    accum, world = recipe.accum_steps, env.world_size
    workers = min(recipe.num_workers, os.cpu_count() or 1)
    loader, sampler = train_loader(task.train_set, recipe.batch_size, workers, env.rank, world,
                                   recipe.seed, pin_memory=env.device.type == "cuda")
    batches_per_epoch = len(task.train_set) // (recipe.batch_size * world)  # micro-batches per rank
    if batches_per_epoch == 0:
        raise DataError(f"{len(task.train_set)} training images cannot fill one batch of {recipe.batch_size} × "
                        f"{world} processes; lower batch_size")
    global_batch = recipe.batch_size * world * accum
    steps_per_epoch = batches_per_epoch / accum
    total_steps = recipe.max_steps or math.ceil(recipe.epochs * steps_per_epoch)
    warmup_steps = min(recipe.warmup_steps or round(recipe.warmup_epochs * steps_per_epoch), total_steps)
    lr_scale = global_batch / recipe.base_batch_size if recipe.base_batch_size else 1.0
    peak_lr, min_lr = recipe.lr * lr_scale, recipe.min_lr * lr_scale

    # ---- optimizer, AMP, EMA
    amp_dtype = AMP_DTYPES.get(recipe.amp)
    optimizer = build_adamw(task.param_groups, peak_lr, recipe.betas, recipe.eps)
    scaler = torch.amp.GradScaler(env.device.type, enabled=recipe.amp == "fp16")
    ema = ModelEma(task.saved, recipe.ema_decay) if recipe.ema_decay else None
    trainable = [p for group in optimizer.param_groups for p in group["params"]]

    # ---- resume: weights, optimizer, scaler, EMA, RNG, step (the data position follows from the step)
    start_step = 0
    if resume_from:
        source: Path | None = Path(resume_from)
        verify_checkpoint(source)  # a folder the user named: no fallback, a clear error
    else:
        source = verified_checkpoint(work_dir) if resume else None
    if resume and source is None and env.is_main:
        logger.warning("--resume: no checkpoint in %s yet; starting from step 0", work_dir / "checkpoints")
    if source is not None:
        start_step = _restore(source, recipe, task, optimizer, scaler, ema, env, global_batch)

    ddp = DistributedDataParallel(model, device_ids=[env.local_rank] if env.device.type == "cuda" else None,
                                  broadcast_buffers=False) if env.distributed else model
    if env.is_main:
        work_dir.mkdir(parents=True, exist_ok=True)
        save_recipe(recipe, work_dir / "recipe.json")
    run_log = RunLogger(work_dir / "log.jsonl", total_steps, start_step, env.is_main, progress)
    run_log.write({"step": start_step, "event": "resume" if start_step else "start",  # nested: plot-log skips it
                   "run": {"task": recipe.task, "world_size": world, "global_batch": global_batch,
                           "total_steps": total_steps, "warmup_steps": warmup_steps, "peak_lr": peak_lr,
                           "train_images": len(task.train_set), "trainable_params": sum(p.numel() for p in trainable)}})

    stream = _micro_batches(loader, sampler, batches_per_epoch, recipe.batch_size, start_step * accum, task)
    model.train()
    sums: dict[str, float] = defaultdict(float)
    logged_steps, replaced, tick = 0, 0, time.perf_counter()
    last_eval: dict[str, float] = {}
    end = min(total_steps, stop_at) if stop_at else total_steps
    step = start_step
    for step in range(start_step, end):
        lr = learning_rate(recipe.schedule, step, total_steps, peak_lr, warmup_steps, min_lr,
                           recipe.warmup_start_factor, recipe.warmup_style, recipe.poly_power)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]

        # ---- forward / backward over the micro-batches
        step_values: dict[str, torch.Tensor] = {}
        for micro in range(accum):
            epoch, batch = next(stream)
            replaced += int(batch.pop("replaced").sum())
            generator = torch.Generator().manual_seed(sample_seed(recipe.seed, step, micro * world + env.rank))
            inputs = task.prepare(to_device(batch, env.device), generator)
            last_micro = micro == accum - 1
            sync = contextlib.nullcontext() if (last_micro or not env.distributed) else ddp.no_sync()
            with sync:
                with torch.autocast(env.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    out = ddp(**inputs)
                scaler.scale(out["loss"] / accum).backward()
            for key, value in out.items():
                step_values[key] = step_values.get(key, 0.0) + value.detach().float() / accum

        # ---- NaN / inf guard: every rank sees the same verdict, so all stop together
        keys = sorted(step_values)
        values = distributed.all_reduce_mean(torch.stack([step_values[k] for k in keys]), env)
        if not bool(torch.isfinite(values).all()):
            _stop_on_nonfinite(step, lr, dict(zip(keys, values.tolist())), work_dir, recipe)

        # ---- clip, step, EMA
        grad_norm = None
        if recipe.clip_grad > 0 or (step + 1) % recipe.log_interval == 0:
            scaler.unscale_(optimizer)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, recipe.clip_grad or float("inf")))
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(task.saved)

        # ---- logging
        for key, value in zip(keys, values.tolist()):
            sums[key] += value
        logged_steps += 1
        run_log.step({"loss": values[keys.index("loss")].item(), "lr": lr})
        if (step + 1) % recipe.log_interval == 0 or step + 1 == end:
            elapsed = time.perf_counter() - tick
            row = {"step": step + 1, "epoch": round(epoch, 4), "lr": lr,
                   **{k: v / logged_steps for k, v in sums.items()},
                   "images_per_s": global_batch * logged_steps / max(elapsed, 1e-9),
                   "skipped_images": int(distributed.all_reduce_sum(torch.tensor(float(replaced)), env))}
            if grad_norm is not None:
                row["grad_norm"] = grad_norm
            if scaler.is_enabled():
                row["loss_scale"] = scaler.get_scale()
            row.update(task.stats())
            run_log.write(row)
            sums.clear()
            logged_steps, tick = 0, time.perf_counter()

        # ---- evaluation and checkpoints
        done = step + 1 == end
        if task.evaluate is not None and task.val_set is not None and (
                step + 1 == total_steps or (recipe.eval_interval and (step + 1) % recipe.eval_interval == 0)):
            last_eval = _evaluate(task, ema, recipe, env, step + 1, run_log)
        if (step + 1) % recipe.save_interval == 0 or done:
            _save(work_dir, step + 1, recipe, task, optimizer, scaler, ema, env, global_batch)
    run_log.close()

    final = work_dir / "model.safetensors"
    if step + 1 >= total_steps and env.is_main:
        save_weights(final, task.saved.state_dict(), task.classes)
        if ema is not None:
            save_weights(work_dir / "ema.safetensors", ema.state_dict(), task.classes)
        summary = {"recipe": recipe.name, "steps": total_steps, "global_batch": global_batch, **last_eval, **task.stats()}
        (work_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    distributed.barrier(env)
    return final


def _micro_batches(loader: Any, sampler: Any, batches_per_epoch: int, batch_size: int, start: int,
                   task: TaskSetup) -> Iterator[tuple[float, dict[str, torch.Tensor]]]:
    """Yield ``(fractional epoch, batch)`` forever, starting at micro-batch ``start`` of the run."""
    epoch, position = divmod(start, batches_per_epoch)
    while True:
        sampler.set_position(epoch, position * batch_size)
        if position == 0:
            task.on_epoch_start(epoch)
        for index, batch in enumerate(loader, start=position):
            if index >= batches_per_epoch:
                break
            yield epoch + index / batches_per_epoch, batch
        epoch, position = epoch + 1, 0


def _evaluate(task: TaskSetup, ema: ModelEma | None, recipe: TrainRecipe, env: DistEnv, step: int,
              run_log: RunLogger) -> dict[str, float]:
    assert task.evaluate is not None and task.val_set is not None
    loader = eval_loader(task.val_set, recipe.batch_size, min(recipe.num_workers, os.cpu_count() or 1), env.rank,
                         env.world_size,
                         pin_memory=env.device.type == "cuda")
    metrics = task.evaluate(task.saved, loader, env)
    if ema is not None:
        shadow = copy.deepcopy(task.saved)
        shadow.load_state_dict(ema.state_dict())
        metrics.update({f"ema_{k}": v for k, v in task.evaluate(shadow, loader, env).items()})
    run_log.write({"step": step, **metrics})
    return metrics


def _save(work_dir: Path, step: int, recipe: TrainRecipe, task: TaskSetup, optimizer: torch.optim.Optimizer,
          scaler: torch.amp.GradScaler, ema: ModelEma | None, env: DistEnv, global_batch: int) -> None:
    rng = distributed.gather_objects(capture_rng(), env)  # every rank's generators, for a bit-for-bit resume
    if env.is_main:
        state = TrainingState(step=step, optimizer=optimizer.state_dict(), scaler=scaler.state_dict(), rng=rng,
                              global_batch=global_batch, task=recipe.task)
        save_checkpoint(work_dir, step, recipe, task.saved.state_dict(), state,
                        ema.state_dict() if ema is not None else None, task.classes, recipe.keep_last)
    distributed.barrier(env)


def _restore(folder: Path, recipe: TrainRecipe, task: TaskSetup, optimizer: torch.optim.Optimizer,
             scaler: torch.amp.GradScaler, ema: ModelEma | None, env: DistEnv, global_batch: int) -> int:
    from ..checkpoint.safetensors_io import load_mmap
    from .config import load_recipe_file

    state = load_training_state(folder)
    if state.task != recipe.task:
        raise ResumeError(f"{folder} is a {state.task} checkpoint; this is a {recipe.task} recipe")
    if state.global_batch != global_batch:
        raise ResumeError(f"{folder} was trained with a global batch of {state.global_batch} images per step, this run "
                          f"has {global_batch} (batch_size × processes × accum_steps); resume with the same global batch")
    saved_recipe = recipe_to_dict(load_recipe_file(folder / "recipe.json"))
    changed = sorted(k for k, v in recipe_to_dict(recipe).items()
                     if saved_recipe.get(k) != v and k not in recipe.RESUMABLE_CHANGES)
    if changed and env.is_main:
        logger.warning("resuming %s with changed recipe fields: %s", folder, ", ".join(changed))
    task.saved.load_state_dict(load_mmap(folder / "model.safetensors"))
    if ema is not None and (folder / "ema.safetensors").is_file():
        ema.load_state_dict(load_mmap(folder / "ema.safetensors"))
    optimizer.load_state_dict(state.optimizer)
    scaler.load_state_dict(state.scaler)
    if len(state.rng) == env.world_size:
        restore_rng(state.rng[env.rank])
    elif env.is_main:
        logger.warning("the checkpoint was written by %d processes, this run has %d: random streams start afresh",
                       len(state.rng), env.world_size)
    if env.is_main:
        logger.info("resumed from %s at step %d", folder, state.step)
    return state.step


def _stop_on_nonfinite(step: int, lr: float, values: dict[str, float], work_dir: Path, recipe: TrainRecipe) -> None:
    last = verified_checkpoint(work_dir)
    where = f"the last good weights are in {last}" if last else "no checkpoint was written yet"
    terms = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
    raise NonFiniteLossError(
        f"step {step + 1}: the loss is not finite ({terms}) at lr {lr:.3g}; stopped before the optimizer step, "
        f"{where}. Try a lower lr or a longer warmup, clip_grad=3.0, amp=bf16 instead of fp16, or check the data; "
        f"then run again with --resume."
    )
