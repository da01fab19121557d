"""End-to-end folder inference (decode, preprocess, forward, softmax) against the model alone.

``beitv2-zoo predict DIR`` lists the folder and hands the files to :func:`inference_model`,
which decodes and preprocesses the next batch in background threads while the model
computes the current one. This measures that path on a folder of JPEG photos the size of
ImageNet's (short side 400–500 px), and the model-only forward of the same number of
images in the same batch sizes (random tensors already in memory, on the model's device),
with the same model object, interleaved repeat by repeat. The ratio
``folder images/s ÷ model images/s`` is what the pipeline keeps of the model's speed
(the issue's target: at least 0.90).
"""

import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance
from torch import nn

from ..api import inference_model
from ..inference import auto_workers
from ..transforms import create_transform, expand_images
from .machine import synchronize

EXAMPLE_PHOTOS = tuple(Path(__file__).resolve().parents[2] / "examples" / "images" / name
                       for name in ("chelsea.jpg", "coffee.jpg"))
ASPECTS = (4 / 3, 3 / 2, 1.0, 5 / 4)
"""Long side ÷ short side of the written photos (ImageNet's are mostly 4:3)."""


def _sources() -> list[Image.Image]:
    """The example photos; smooth random images where the package was installed without ``examples/``."""
    found = [Image.open(path).convert("RGB") for path in EXAMPLE_PHOTOS if path.is_file()]
    if found:
        return found
    generator = np.random.default_rng(0)
    pictures = []
    for _ in range(2):
        small = generator.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
        pictures.append(Image.fromarray(small).resize((600, 450), Image.Resampling.BICUBIC))
    return pictures


def write_photo_folder(folder: Path, count: int = 64, seed: int = 0) -> list[Path]:
    """Write ``count`` different JPEG photos into ``folder``; returns their paths, sorted.

    Each is a random crop (55–100 % of each side) of one of the example photos, flipped at
    random, with its brightness changed by up to ±15 %, resized (bicubic) so that its short
    side is 400–500 px at an aspect of 1, 5:4, 4:3 or 3:2 in either orientation, and saved at
    JPEG quality 85–95. No two files have the same bytes, so nothing is decoded only once.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    sources = _sources()
    paths = []
    for index in range(count):
        source = sources[index % len(sources)]
        width, height = source.size
        crop_w, crop_h = int(width * rng.uniform(0.55, 1.0)), int(height * rng.uniform(0.55, 1.0))
        left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
        photo = source.crop((left, top, left + crop_w, top + crop_h))
        if rng.random() < 0.5:
            photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        photo = ImageEnhance.Brightness(photo).enhance(rng.uniform(0.85, 1.15))
        short = rng.randint(400, 500)
        long = int(short * rng.choice(ASPECTS))
        size = (long, short) if rng.random() < 0.75 else (short, long)
        path = folder / f"photo_{index:04d}.jpg"
        photo.resize(size, Image.Resampling.BICUBIC).save(path, quality=rng.randint(85, 95))
        paths.append(path)
    return paths


def preprocess_ms_per_image(model: nn.Module, paths: list[Path]) -> float:
    """Milliseconds to decode and preprocess one image in the calling thread (one pass, no model)."""
    transform = create_transform(model)
    start = time.perf_counter()
    for path in paths:
        transform(path)
    return 1000 * (time.perf_counter() - start) / len(paths)


def folder_throughput(
    model: nn.Module,
    folder: Path,
    batch_size: int = 8,
    repeats: int = 5,
    num_workers: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Images/s of ``inference_model`` on every image in ``folder`` and of the bare forward pass.

    Args:
        model: a classifier from ``get_model`` (on its device, in its dtype: fp32, or bf16 from
            ``get_model(..., dtype=torch.bfloat16)``; both paths use this object, and
            ``inference_model`` casts the preprocessed images to the model's dtype).
        folder: a folder of image files (e.g. from :func:`write_photo_folder`).
        batch_size: images per forward pass, for both measurements.
        repeats: timed runs of each (after one warm-up run of each); medians are reported.
        num_workers: ``inference_model``'s decoding threads; ``None`` lets it choose, as it
            does by default (:func:`~beitv2_zoo.inference.auto_workers`).

    Returns:
        ``images``, ``batch``, ``workers`` (the threads used), ``precision`` (the model's dtype), ``folder_images_per_s`` and ``model_images_per_s``
        (medians), ``ratio`` (their quotient), ``ratio_paired`` (the median of each repeat's
        own ratio; steadier on a shared machine, where load drifts between repeats), the
        single-thread ``preprocess_ms_per_image``, and every run under ``runs``. The model-only runs feed random ``[b, 3, S, S]`` tensors
        already on the model's device, in the same batch sizes ``b`` as the folder run.
    """
    paths = expand_images([folder])
    if not paths:
        raise ValueError(f"no images in {folder}")
    parameter = next(model.parameters())
    workers = auto_workers(parameter.device) if num_workers is None else num_workers
    size = create_transform(model).preprocessing.crop_size
    chunks = [min(batch_size, len(paths) - start) for start in range(0, len(paths), batch_size)]
    generator = torch.Generator().manual_seed(len(paths))
    inputs = {b: torch.randn(b, 3, size, size, generator=generator).to(parameter.device, parameter.dtype)
              for b in set(chunks)}

    def run_folder() -> float:
        synchronize(parameter.device)
        start = time.perf_counter()
        inference_model(model, expand_images([folder]), batch_size=batch_size, num_workers=workers)
        synchronize(parameter.device)
        return time.perf_counter() - start

    def run_model() -> float:
        synchronize(parameter.device)
        start = time.perf_counter()
        with torch.inference_mode():
            for b in chunks:
                model(inputs[b])
        synchronize(parameter.device)
        return time.perf_counter() - start

    preprocess_ms = preprocess_ms_per_image(model, paths)
    run_folder(), run_model()  # warm-up: kernels, caches, the files in the page cache
    times: dict[str, list[float]] = {"folder": [], "model": []}
    for repeat in range(repeats):
        order = (("folder", run_folder), ("model", run_model))
        for label, run in order if repeat % 2 == 0 else order[::-1]:  # alternate who goes first
            times[label].append(run())
        log(f"  folder batch {batch_size}: repeat {repeat + 1}/{repeats}")
    folder_runs = [len(paths) / t for t in times["folder"]]
    model_runs = [len(paths) / t for t in times["model"]]
    folder_speed, model_speed = statistics.median(folder_runs), statistics.median(model_runs)
    paired = [f / m for f, m in zip(folder_runs, model_runs)]
    return {"images": len(paths), "batch": batch_size, "workers": workers,
            "workers_chosen_by": "auto" if num_workers is None else "caller",
            "precision": {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(parameter.dtype, "fp32"),
            "folder_images_per_s": folder_speed, "model_images_per_s": model_speed,
            "ratio": folder_speed / model_speed, "ratio_paired": statistics.median(paired),
            "preprocess_ms_per_image": preprocess_ms,
            "runs": {"folder_images_per_s": folder_runs, "model_images_per_s": model_runs, "ratio": paired}}
