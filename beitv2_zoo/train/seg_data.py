"""Semantic-segmentation data: image / label-map pairs in the ADE20K layout, and their data set.

Layout (``ADEChallengeData2016``, as mmsegmentation's ``ADE20KDataset`` reads it)::

    ROOT/images/<split>/<name>.jpg        any suffix of beitv2_zoo.transforms.IMAGE_SUFFIXES
    ROOT/annotations/<split>/<name>.png   one 8-bit label map per image, same size

``split`` is ``training`` or ``validation`` (any folder name works). Images and labels are paired
by their path below the split folder without the suffix; sub-folders are allowed. A label map is
a single-channel PNG of class indices: mode ``L`` (grey values are the indices) or ``P`` (the
palette indices are the classes, the palette only colours them). It is never converted to RGB;
an RGB label map (a colour visualisation, not indices) is refused.

:class:`SegmentationDataset` is indexed like :class:`beitv2_zoo.train.data.ImageDataset`: the
samplers of :mod:`beitv2_zoo.train.data` yield ``(epoch, index)`` pairs, every random choice of a
sample's transform comes from ``sample_seed(seed, epoch, index)`` (and torch's global CPU generator,
seeded from it for that sample only), and a pair that cannot be decoded is logged once and replaced
by the next readable one.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import ImageLoadError
from ..transforms import IMAGE_SUFFIXES, load_image
from .data import SeededDataset
from .errors import DataError

logger = logging.getLogger(__name__)

ADE_FOLDER = "ADEChallengeData2016"
LABEL_SUFFIX = ".png"
LABEL_MODES = ("L", "P")
SegTransform = Callable[[Image.Image, np.ndarray, int], dict[str, torch.Tensor]]
"""``(RGB image, uint8 label map [H, W], seed) → tensors``; all randomness must come from ``seed``
(or torch's global generator, which the data set seeds from it)."""


@dataclass(frozen=True)
class SegSampleList:
    """Image files and their label maps, pair by pair (same length, same order)."""

    images: tuple[Path, ...]
    labels: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.images)


def _files(folder: Path, suffixes: set[str] | tuple[str, ...]) -> dict[str, Path]:
    """``{relative path without suffix: file}`` for the files below ``folder`` with one of ``suffixes``."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in suffixes or not path.is_file() or path.name.startswith("."):
            continue
        key = path.relative_to(folder).with_suffix("").as_posix()
        if key in found:
            raise DataError(f"{found[key]} and {path} have the same name; keep one image per name in {folder}")
        found[key] = path
    return found


def _check_layout(root: Path, split: str) -> None:
    expected = (f"expected {root}/images/{split}/*.jpg with label maps {root}/annotations/{split}/*.png "
                f"(the {ADE_FOLDER} layout)")
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist; {expected}")
    if (root / ADE_FOLDER).is_dir() and not (root / "images").is_dir():
        raise DataError(f"{root} holds {ADE_FOLDER}: pass --data {root / ADE_FOLDER}")
    if root.name in ("images", "annotations") and (root / split).is_dir():
        raise DataError(f"{root} is the {root.name} folder itself: pass --data {root.parent}; {expected}")
    for kind in ("images", "annotations"):
        if not (root / kind / split).is_dir():
            splits = sorted(p.name for p in (root / kind).iterdir() if p.is_dir()) if (root / kind).is_dir() else []
            hint = f" ({root / kind} has {', '.join(splits)})" if splits else ""
            raise DataError(f"{root / kind / split} does not exist{hint}; {expected}")


def segmentation_samples(root: str | Path, split: str) -> SegSampleList:
    """The image / label-map pairs of ``root/images/<split>`` and ``root/annotations/<split>``.

    Raises:
        DataError: a missing folder (the message names the expected layout, and the right root
            when ``root`` is the folder above ``ADEChallengeData2016``), no images, or images
            without a label map (the first few are listed). Label maps without an image are
            ignored, with a log line.
    """
    root = Path(root)
    _check_layout(root, split)
    images = _files(root / "images" / split, IMAGE_SUFFIXES)
    labels = _files(root / "annotations" / split, (LABEL_SUFFIX,))
    if not images:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {root / 'images' / split}")
    missing = [key for key in images if key not in labels]
    if missing:
        shown = ", ".join(images[key].name for key in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise DataError(f"{len(missing)} of {len(images)} images under {root / 'images' / split} have no label map "
                        f"{root / 'annotations' / split}/<name>{LABEL_SUFFIX}: {shown}{more}")
    extra = len(labels) - len(images)
    if extra > 0:
        logger.info("%d label maps under %s have no image; ignored", extra, root / "annotations" / split)
    keys = sorted(images)
    return SegSampleList(tuple(images[k] for k in keys), tuple(labels[k] for k in keys))


def load_label(path: str | Path) -> np.ndarray:
    """A label map as class indices, ``uint8 [H, W]`` (mode ``L`` values or ``P`` palette indices).

    Raises:
        ImageLoadError: the file is missing, not an image, or truncated.
        DataError: the file decodes but is not a single-channel 8-bit map (e.g. an RGB colour
            visualisation), or it holds indices above 255.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"label map {path} does not exist")
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            values = np.array(image)
    except UnidentifiedImageError:
        raise ImageLoadError(f"{path} is not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(f"label map {path} cannot be decoded ({error}); the file is probably truncated") from None
    if mode in LABEL_MODES:
        return values.astype(np.uint8, copy=False)
    if (mode == "I" or mode.startswith("I;16")) and values.size and 0 <= values.min() and values.max() <= 255:
        return values.astype(np.uint8)
    raise DataError(f"label map {path} is a {mode} image; label maps must be single-channel 8-bit PNGs of class "
                    "indices (mode L or P), not colour pictures. Convert a colour-coded map to indices first.")


def load_pair(image_path: Path, label_path: Path) -> tuple[Image.Image, np.ndarray]:
    """``(RGB image, uint8 label map [H, W])`` of one sample, checked to be the same size."""
    image = load_image(image_path)
    label = load_label(label_path)
    if label.shape != (image.height, image.width):
        raise DataError(f"label map {label_path} is {label.shape[1]}x{label.shape[0]} but its image {image_path} "
                        f"is {image.width}x{image.height}; they must be the same size")
    return image, label


class SegmentationDataset(SeededDataset):
    """Decodes image / label pairs (a :class:`SegSampleList`, checked by :func:`load_pair`) and applies a
    seeded ``(image, label, seed)`` transform; indexed by ``(epoch, index)`` pairs, an unreadable pair
    replaced by the next readable one (see :class:`~beitv2_zoo.train.data.SeededDataset`)."""

    def __init__(self, samples: SegSampleList, transform: SegTransform, seed: int = 0) -> None:
        super().__init__(samples, transform, seed)

    def _read(self, source: int) -> tuple[Image.Image, np.ndarray]:
        return load_pair(self.samples.images[source], self.samples.labels[source])

    def _path(self, source: int) -> Path:
        return self.samples.images[source]

    def _transform(self, loaded: tuple[Image.Image, np.ndarray], source: int, seed: int) -> dict[str, torch.Tensor]:
        image, label = loaded
        return self.transform(image, label, seed)
