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
        manifest.json            the size and sha256 of each file above, written last

A checkpoint is written into a hidden temporary folder and renamed into place, so a folder
named ``step_*`` is always complete; a crash mid-write leaves only a ``.tmp`` folder, which
the next save removes. ``training_state.pt`` holds tensors, numbers, strings, lists and
dicts only and is read with ``torch.load(weights_only=True)``.

``--resume`` trusts no folder by its name: :func:`verified_checkpoint` checks every file
against the manifest (size, then sha256), newest first, and falls back to the previous
checkpoint that verifies, saying which one it skipped and why. A folder written before
manifests existed (0.1) is accepted when its files load, with a warning that it could not be
verified.
"""

import json
import logging
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
from ..checkpoint.reading import format_metadata
from ..checkpoint.safetensors_io import write_error
from ..errors import CheckpointWriteError
from ..hub.cache import sha256_of
from .config import TrainRecipe, save_recipe
from .errors import ResumeError

logger = logging.getLogger(__name__)

STATE_FILE = "training_state.pt"
MANIFEST = "manifest.json"
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
    """safetensors metadata: ``format: pt`` with our canonical-layout marker, and class names when known."""
    metadata = format_metadata()
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
    try:
        temp.mkdir()
        save_weights(temp / "model.safetensors", model_state, classes)
        if ema_state is not None:
            save_weights(temp / "ema.safetensors", ema_state, classes)
        torch.save(vars(state), temp / STATE_FILE)
        save_recipe(recipe, temp / "recipe.json")
        write_manifest(temp)
        _fsync_dir(temp)
        if final.exists():  # the same step saved again (e.g. a resumed run's last step): replace it
            shutil.rmtree(final)
        os.replace(temp, final)
    except CheckpointWriteError:
        raise
    except (OSError, RuntimeError) as error:  # torch.save reports a full disk as a RuntimeError of its zip writer
        raise write_error(final, error) from None
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    for old in list_checkpoints(work_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def write_manifest(folder: Path) -> None:
    """``manifest.json``: the size and sha256 of every other file in ``folder``."""
    files = {item.name: {"bytes": item.stat().st_size, "sha256": sha256_of(item)}
             for item in sorted(folder.iterdir()) if item.is_file() and item.name != MANIFEST}
    (folder / MANIFEST).write_text(json.dumps({"files": files}, indent=1), encoding="utf-8")


def verify_checkpoint(folder: Path) -> None:
    """Check a checkpoint folder against its manifest (a 0.1 folder without one: that its files load).

    Raises:
        ResumeError: a file is missing, has another size or sha256, or (without a manifest) cannot be read.
    """
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        _check_legacy(folder)
        return
    try:
        files = json.loads(manifest_path.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ResumeError(f"{folder}: its {MANIFEST} cannot be read ({error})") from None
    for required in ("model.safetensors", STATE_FILE):
        if required not in files:
            raise ResumeError(f"{folder}: its manifest lists no {required}")
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise ResumeError(f"{folder}: {name} is missing")
        if path.stat().st_size != expected["bytes"]:
            raise ResumeError(f"{folder}: {name} has {path.stat().st_size} bytes, {expected['bytes']} were written")
        if sha256_of(path) != expected["sha256"]:
            raise ResumeError(f"{folder}: {name} is not the file that was written (sha256 differs): damaged")


def _check_legacy(folder: Path) -> None:
    try:
        safetensors_io.read_header(folder / "model.safetensors")
        load_training_state(folder)
    except Exception as error:  # any unreadable part makes the folder unusable
        raise ResumeError(f"{folder}: no {MANIFEST}, and its files cannot be read ({' '.join(str(error).split())[:200]})") from None
    logger.warning("%s has no %s (written before 0.2): resuming from it unverified", folder, MANIFEST)


def verified_checkpoint(work_dir: Path) -> Path | None:
    """The newest checkpoint folder that verifies; each newer one that does not is named in a warning."""
    for folder in reversed(list_checkpoints(work_dir)):
        try:
            verify_checkpoint(folder)
        except ResumeError as error:
            logger.warning("skipping %s: %s; falling back to the previous checkpoint", folder.name, error)
            continue
        return folder
    return None


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
    """Read ``training_state.pt`` with ``weights_only=True``.

    Raises:
        ResumeError: the file is missing, truncated or not a training state.
    """
    try:
        values = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
        return TrainingState(**values)
    except Exception as error:  # torch raises many types for a damaged file
        raise ResumeError(f"{folder / STATE_FILE} cannot be read ({' '.join(str(error).split())[:200]})") from None
