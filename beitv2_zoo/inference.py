"""``inference_model``: images in, mmpretrain-style predictions out."""

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import ImageLoadError, ModelConfigError
from .factory import get_model
from .labels import class_names as label_set_names
from .registry import get_record, is_model
from .transforms import ImageInput, create_transform

logger = logging.getLogger(__name__)

Prediction = dict[str, Any]


def inference_model(
    model: nn.Module | str,
    inputs: ImageInput | Sequence[ImageInput],
    *,
    topk: int | None = None,
    batch_size: int = 8,
    num_workers: int | None = None,
    on_error: str = "raise",
    **kwargs: Any,
) -> Prediction | list[Prediction | None]:
    """Classify one image or a list of images, as mmpretrain's ``inference_model`` does.

    Args:
        model: a model from :func:`get_model`, or a registered name (then built with
            ``pretrained=True`` unless ``pretrained=`` is given in ``kwargs``).
        inputs: a path, a PIL image, an RGB ``uint8`` HWC array, a CHW tensor, or a list of them.
        topk: also return the ``topk`` best classes under ``'pred_topk'``.
        batch_size: images per forward pass when ``inputs`` is a list.
        num_workers: threads that decode and preprocess the next batch while the model
            computes the current one (``0``: all in the calling thread). ``None`` (the
            default) chooses: 2, or 0 when the model runs on the CPU and torch's intra-op
            threads already use every core this process may run on (see :func:`auto_workers`).
        on_error: ``'raise'`` (an unreadable image raises :class:`ImageLoadError`) or
            ``'skip'`` (it is logged and its result is ``None``).
        **kwargs: passed to :func:`get_model` (``pretrained=``, ``device=``, …) when ``model`` is a name.

    Returns:
        Per image, a dict with mmpretrain's keys: ``pred_scores`` (float32 numpy
        ``[num_classes]``, softmax), ``pred_label`` (int), ``pred_score`` (float) and
        ``pred_class`` (str, when class names are known); plus ``pred_topk`` (a list of
        ``(label, class, score)``) when ``topk`` is given. A list of inputs gives a list.
    """
    if isinstance(model, str):
        if is_model(model):
            _require_classifier(model, get_record(model).task)  # before any download
        kwargs.setdefault("pretrained", True)
        model = get_model(model, **kwargs)
    elif kwargs:
        raise TypeError(f"unexpected keyword arguments for an already-built model: {sorted(kwargs)}")
    if not getattr(model, "num_classes", 0):
        record = getattr(model, "weights_info", None)
        _require_classifier(getattr(record, "name", type(model).__name__), getattr(record, "task", "feature extraction"))
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")

    single = not isinstance(inputs, (list, tuple))
    items = [inputs] if single else list(inputs)
    transform = create_transform(model)
    names = _class_names(model)
    parameter = next(model.parameters())
    device, dtype = parameter.device, parameter.dtype

    workers = auto_workers(device) if num_workers is None else num_workers
    results: list[Prediction | None] = []
    for tensors in _preprocessed_batches(items, transform, batch_size, workers, on_error):
        good = [t for t in tensors if t is not None]
        probabilities = iter(())
        if good:
            with torch.inference_mode():
                probabilities = iter(model(torch.stack(good).to(device, dtype)).float().softmax(dim=-1).cpu().numpy())
        results.extend(None if t is None else _prediction(next(probabilities), names, topk) for t in tensors)
    return results[0] if single else results


def auto_workers(device: torch.device, threads: int = 2) -> int:
    """Background decoding threads for a model on ``device``: ``threads``, or 0 where no core is free.

    A background thread overlaps decoding with the forward pass only if a core is free to run
    it. When the model runs on the CPU with torch's intra-op threads on every core, it can only
    preempt one of them, and the others wait for it at the next synchronisation point, so
    decoding in the calling thread between forward passes costs the same or less. Measured on 2
    cores (BEiT-B/16, fp32, 3.2 ms to decode and preprocess a 500×375 JPEG against about 100 ms
    of forward pass per image), images/s of a folder relative to the model alone: batch 1, 0.87
    with 2 threads and 0.96 without; batch 2, 0.92 and 0.96; batches 4 and 8, equal (0.95–0.97).
    """
    if device.type != "cpu":
        return threads
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return threads if torch.get_num_threads() < cores else 0


def _preprocessed_batches(
    items: list[ImageInput], transform: Callable[[ImageInput], torch.Tensor], batch_size: int, workers: int, on_error: str
) -> Iterator[list[torch.Tensor | None]]:
    """Yield the transformed images batch by batch; the next batch is prepared in threads meanwhile.

    Pillow releases the GIL while decoding and resizing, so threads overlap with the model.
    At most two batches are held at once. Failed images are ``None`` when ``on_error='skip'``.
    """

    def prepare(item: ImageInput) -> torch.Tensor | None:
        try:
            return transform(item)
        except ImageLoadError as error:
            if on_error == "raise":
                raise
            logger.warning("skipped: %s", error)
            return None

    chunks = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    if workers == 0 or len(chunks) == 1:
        for chunk in chunks:
            yield [prepare(item) for item in chunk]
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = [pool.submit(prepare, item) for item in chunks[0]]
        for following in chunks[1:] + [None]:
            current = pending
            pending = [pool.submit(prepare, item) for item in following] if following else []
            yield [future.result() for future in current]


def _require_classifier(name: str, task: str) -> None:
    """Like mmpretrain, which has no inferencer for its pretraining models, refuse what has no class head."""
    if task == "image-classification":
        return
    hint = {
        "masked-image-modeling": "model(x) / model.extract_feat(x) give its block outputs and "
        "model.tokenizer.encode(images) its visual tokens",
        "visual-tokenizer": "model.encode(images) gives the code ids (or `beitv2-zoo tokens IMAGE`)",
    }.get(task, "use model.extract_feat(x)")
    raise ModelConfigError(f"inference_model classifies images, but {name!r} ({task}) has no classification head; {hint}")


def _class_names(model: nn.Module) -> tuple[str, ...] | None:
    names = getattr(model, "class_names", None)
    if names is not None:
        return names
    num_classes = getattr(model, "num_classes", None)
    return {1000: label_set_names("imagenet-1k"), 21841: label_set_names("imagenet-21k")}.get(num_classes)


def _prediction(scores: np.ndarray, names: tuple[str, ...] | None, topk: int | None) -> Prediction:
    scores = scores.astype(np.float32)
    label = int(scores.argmax())
    prediction: Prediction = {"pred_scores": scores, "pred_label": label, "pred_score": float(scores[label])}
    if names is not None:
        prediction["pred_class"] = names[label]
    if topk:
        best = np.argsort(-scores, kind="stable")[:topk]
        prediction["pred_topk"] = [(int(i), names[i] if names else str(int(i)), float(scores[i])) for i in best]
    return prediction
