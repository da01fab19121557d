"""What every task module returns to the training loop: :class:`TaskSetup`, and the :data:`Batch` it reads."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data import ImageDataset
from ..distributed import DistEnv

Batch = dict[str, torch.Tensor]


@dataclass
class TaskSetup:
    """What a task hands to the training loop.

    Attributes:
        objective: ``objective(**inputs) → {'loss': scalar, other scalars…}``; the module DDP wraps.
        saved: the module written as ``model.safetensors`` and restored on resume (it holds
            every trainable parameter and every buffer that training changes).
        train_set, val_set: data sets (``val_set`` may be ``None``).
        param_groups: optimizer groups with ``lr_scale`` (see :mod:`beitv2_zoo.train.optim`).
        prepare: ``(batch on device, generator) → objective inputs`` (e.g. Mixup/CutMix).
        evaluate: ``(module like saved, val loader, env) → metrics``, or ``None``.
        on_epoch_start: called with the epoch number when a new epoch starts.
        stats: extra scalars for each log line (codebook usage).
        classes: class names stored with classifier weights.
    """

    objective: nn.Module
    saved: nn.Module
    train_set: ImageDataset
    val_set: ImageDataset | None
    param_groups: list[dict]
    prepare: Callable[[Batch, torch.Generator], dict[str, Any]]
    evaluate: Callable[[nn.Module, Any, DistEnv], dict[str, float]] | None = None
    on_epoch_start: Callable[[int], None] = field(default=lambda epoch: None)
    stats: Callable[[], dict[str, float]] = field(default=lambda: {})
    classes: tuple[str, ...] | None = None
