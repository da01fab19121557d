"""Atomic training checkpoints and bit-for-bit resume.

Layout of a work folder::

    recipe.json                  the resolved recipe of the run
    log.jsonl                    one JSON object per logged step
    model.safetensors            the final weights (+ recipe.json beside them)
    checkpoints/step_00001000/   one folder per checkpoint:
        model.safetensors        weights of the model being trained (everything it saves: codebook, EMA stats, …)
        ema.safetensors          the model EMA, when the recipe has one
        training_state.pt        step, optimizer, grad scaler, every rank's RNG states
        recipe.json              the resolved recipe

A checkpoint is written into a hidden temporary folder and renamed into place, so a folder
named ``step_*`` is always complete; a crash mid-write leaves only a ``.tmp`` folder, which
the next save removes. ``training_state.pt`` holds tensors, numbers, strings, lists and
dicts only and is read with ``torch.load(weights_only=True)``.
"""

import os
import random
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import safetensors_io
from ..checkpoint import CANONICAL_FORMAT
from .config import TrainRecipe, save_recipe

STATE_FILE = "training_state.pt"
_STEP_DIR = re.compile(r"^step_(\d{8,})$")


def capture_rng() -> dict[str, Any]:
    """This process's python, numpy, torch (and CUDA) generator states as weights-only-safe values."""
    version, state, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    rng: dict[str, Any] = {
        "python": [version, list(state), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng(rng: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    version, state, gauss = rng["python"]
    random.setstate((version, tuple(state), gauss))
    kind, keys, position, has_gauss, cached = rng["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def weights_metadata(classes: tuple[str, ...] | None = None) -> dict[str, str]:
    """safetensors metadata: our canonical-layout marker, and class names when known."""
    import json

    metadata = {"format": CANONICAL_FORMAT}
    if classes:
        metadata["classes"] = json.dumps(list(classes))
    return metadata


def save_weights(path: Path, state_dict: dict[str, torch.Tensor], classes: tuple[str, ...] | None = None) -> None:
    """Write a state dict as safetensors, atomically."""
    safetensors_io.save(path, {k: v for k, v in state_dict.items()}, metadata=weights_metadata(classes))


@dataclass
class TrainingState:
    """What a resumed run needs besides the weights."""

    step: int
    optimizer: dict[str, Any]
    scaler: dict[str, Any]
    rng: list[dict[str, Any]]  # one per rank
    global_batch: int
    task: str


def save_checkpoint(work_dir: Path, step: int, recipe: TrainRecipe, model_state: dict[str, torch.Tensor],
                    state: TrainingState, ema_state: dict[str, torch.Tensor] | None = None,
                    classes: tuple[str, ...] | None = None, keep_last: int = 3) -> Path:
    """Write ``checkpoints/step_<step>`` atomically and delete all but the ``keep_last`` newest."""
    root = work_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".step_*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"step_{step:08d}"
    temp = root / f".step_{step:08d}.{uuid.uuid4().hex[:8]}.tmp"
    temp.mkdir()
    try:
        save_weights(temp / "model.safetensors", model_state, classes)
        if ema_state is not None:
            save_weights(temp / "ema.safetensors", ema_state, classes)
        torch.save(vars(state), temp / STATE_FILE)
        save_recipe(recipe, temp / "recipe.json")
        _fsync_dir(temp)
        if final.exists():  # the same step saved again (e.g. a resumed run's last step): replace it
            shutil.rmtree(final)
        os.replace(temp, final)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    for old in list_checkpoints(work_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _fsync_dir(folder: Path) -> None:
    for item in folder.iterdir():
        with item.open("rb") as handle:
            os.fsync(handle.fileno())


def list_checkpoints(work_dir: Path) -> list[Path]:
    """Complete checkpoint folders, oldest first."""
    root = work_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))  # type: ignore[union-attr]


def latest_checkpoint(work_dir: Path) -> Path | None:
    found = list_checkpoints(work_dir)
    return found[-1] if found else None


def load_training_state(folder: Path) -> TrainingState:
    """Read ``training_state.pt`` with ``weights_only=True``."""
    values = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
    return TrainingState(**values)
