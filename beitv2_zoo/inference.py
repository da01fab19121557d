"""Images in, mmpretrain-style predictions out, for a model that is already built
(``beitv2_zoo.inference_model`` builds it by name, then calls :func:`predict`).

``pred_class`` is always present: the model's class name, or the label index as a string
(``'7'``) when the model carries no class names (a head of a size no label set has, loaded
from a file that stores none).
"""

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypedDict, overload

import numpy as np
import torch
from torch import nn

from .errors import ImageLoadError, InvalidInputError, ModelConfigError, NonFiniteOutputError
from .weights.labels import class_names as label_set_names
from .transforms import ImageInput, create_transform

logger = logging.getLogger(__name__)

class _PredictionKeys(TypedDict):
    pred_scores: np.ndarray  # float32 [num_classes], softmax
    pred_label: int
    pred_score: float
    pred_class: str


class Prediction(_PredictionKeys, total=False):
    """One image's result: mmpretrain's keys, plus ``pred_topk`` (``(label, class, score)`` rows) when ``topk`` is given."""

    pred_topk: list[tuple[int, str, float]]


@overload
def predict(model: nn.Module, inputs: ImageInput, *, topk: int | None = ..., batch_size: int = ...,
            num_workers: int | None = ..., on_error: str = ...) -> Prediction: ...
@overload
def predict(model: nn.Module, inputs: list[ImageInput] | tuple[ImageInput, ...], *, topk: int | None = ...,
            batch_size: int = ..., num_workers: int | None = ..., on_error: str = ...) -> list[Prediction | None]: ...


def predict(
    model: nn.Module,
    inputs: ImageInput | Sequence[ImageInput],
    *,
    topk: int | None = None,
    batch_size: int = 8,
    num_workers: int | None = None,
    on_error: str = "raise",
) -> Prediction | list[Prediction | None]:
    """Classify images with a built classifier (``beitv2_zoo.inference_model`` documents the arguments and results).

    ``num_workers=None`` chooses 2 background decoding threads, or 0 when the model runs on
    the CPU and torch's intra-op threads already use every core (see :func:`auto_workers`).
    """
    if getattr(model, "task", None) == "semantic-segmentation":
        raise ModelConfigError(f"predict() classifies images and {type(model).__name__} is a semantic segmenter; "
                               "use beitv2_zoo.inference_model (or beitv2_zoo.segment.segment) for its label maps")
    if not getattr(model, "num_classes", 0):
        record = getattr(model, "weights_info", None)
        require_classifier(getattr(record, "name", type(model).__name__), getattr(record, "task", "feature extraction"))
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if topk is not None and (not isinstance(topk, int) or isinstance(topk, bool) or topk < 1):
        raise ValueError(f"topk must be a positive int (or None), got {topk!r}")
    if num_workers is not None and num_workers < 0:
        raise ValueError(f"num_workers must be 0 or more (or None), got {num_workers}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")

    single = not isinstance(inputs, (list, tuple))
    items = [inputs] if single else list(inputs)
    if not items:
        return []
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
                logits = model(torch.stack(good).to(device, dtype)).float()
            if not bool(torch.isfinite(logits).all()):
                raise NonFiniteOutputError("the model produced NaN or infinite scores, so no class can be trusted; its "
                                           "weights hold non-finite values (check them with torch.isfinite)")
            probabilities = iter(logits.softmax(dim=-1).cpu().numpy())
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
        except (ImageLoadError, InvalidInputError) as error:
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


def require_classifier(name: str, task: str) -> None:
    """Like mmpretrain, which has no inferencer for its pretraining models, refuse what has no class head.

    Classifiers and semantic segmenters pass (``inference_model`` sends a segmenter to
    :func:`beitv2_zoo.segment.segment`); pretraining models and tokenizers raise :class:`ModelConfigError`.
    """
    if task in ("image-classification", "semantic-segmentation"):
        return
    hint = {
        "masked-image-modeling": "model(x) / model.extract_feat(x) give its block outputs and "
        "model.tokenizer.encode(images) its visual tokens",
        "visual-tokenizer": "model.encode(images) gives the code ids (or `beitv2-zoo tokens IMAGE`)",
    }.get(task, "use model.extract_feat(x)")
    raise ModelConfigError(f"inference_model classifies images, but {name!r} ({task}) has no classification head; {hint}")


def _class_names(model: nn.Module) -> tuple[str, ...] | None:
    """``model.class_names`` as ``get_model`` set it (``None``: unknown); for a model built by hand,
    without that attribute, ImageNet's names when the head has 1000 or 21,841 classes."""
    if hasattr(model, "class_names"):
        return model.class_names
    num_classes = getattr(model, "num_classes", None)
    return {1000: label_set_names("imagenet-1k"), 21841: label_set_names("imagenet-21k")}.get(num_classes)


def _prediction(scores: np.ndarray, names: tuple[str, ...] | None, topk: int | None) -> Prediction:
    scores = scores.astype(np.float32)
    label = int(scores.argmax())
    prediction: Prediction = {"pred_scores": scores, "pred_label": label, "pred_score": float(scores[label]),
                              "pred_class": names[label] if names is not None else str(label)}
    if topk:
        best = np.argsort(-scores, kind="stable")[:topk]
        prediction["pred_topk"] = [(int(i), names[i] if names else str(int(i)), float(scores[i])) for i in best]
    return prediction
