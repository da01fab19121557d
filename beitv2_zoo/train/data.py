"""Data sets, samplers and loaders for training and evaluation.

Layouts:

* ``ImageFolder``: ``ROOT/<class>/<image>``; classes are the sorted folder names (the order
  torchvision and ImageNet's ``train/`` / ``val/`` folders use). A folder of images with no
  class folders is one unlabelled class (enough for VQ-KD and MIM).
* mmpretrain's list format (``ann_file``): one ``relative/path.JPEG label`` per line, paths
  relative to the split folder; a line without a label is unlabelled (-1). Class names come
  from a ``classes.txt`` beside the list file when there is one.

Robustness: an image that cannot be decoded is logged (once per file, with the reason) and
replaced by the next readable image of the data set, so batches keep their size and a
multi-day run never stops for one bad file; every batch reports how many it replaced.

Determinism: the sampler yields ``(epoch, index)`` pairs, and every random choice of a
sample's augmentation (crop, flip, RandAugment, erasing, the MIM mask) is drawn from a
generator seeded with ``(seed, epoch, index)``. A sample therefore looks the same whatever
the number of workers, processes, or where a resumed run starts, and ``--resume`` only
has to restart the sampler at the right position.
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ..errors import ImageLoadError
from ..transforms import IMAGE_SUFFIXES, load_image
from .errors import DataError

logger = logging.getLogger(__name__)

MAX_REPLACEMENTS = 32
SampleTransform = Callable[[Image.Image, int], dict[str, torch.Tensor]]
"""``(RGB image, seed) → tensors``; all randomness must come from ``seed`` (or torch's global
generator, which the data set seeds from it)."""


@dataclass(frozen=True)
class SampleList:
    """Image files with integer labels (-1: unlabelled) and the class names."""

    paths: tuple[Path, ...]
    labels: tuple[int, ...]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one sample of one epoch, independent of rank, worker and resume point."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32).astype(np.uint64)
               .dot(np.array([1 << 31, 1], dtype=np.uint64)))


def scan_image_folder(root: str | Path) -> SampleList:
    """``root/<class>/<image>`` (sorted classes and files), or ``root/<image>`` as one unlabelled class."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist; pass --data DIR with DIR/train (and DIR/val) inside")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths: list[Path] = []
    labels: list[int] = []
    if classes:
        for label, name in enumerate(classes):
            files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            paths.extend(files)
            labels.extend([label] * len(files))
    else:
        paths = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        labels = [-1] * len(paths)
    if not paths:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {root}")
    return SampleList(tuple(paths), tuple(labels), tuple(classes) or ("unlabelled",))


def read_ann_file(ann_file: str | Path, prefix: str | Path) -> SampleList:
    """mmpretrain's list format: ``path [label]`` per line, ``path`` relative to ``prefix``."""
    ann_file, prefix = Path(ann_file), Path(prefix)
    try:
        lines = ann_file.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise DataError(f"cannot read the annotation file {ann_file}: {error}") from None
    paths, labels = [], []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        name, _, label = line.rpartition(" ")
        if not name or not label.lstrip("-").isdigit():
            name, label = line, "-1"
        paths.append(prefix / name)
        labels.append(int(label))
    if not paths:
        raise DataError(f"{ann_file} lists no images")
    classes_file = ann_file.with_name("classes.txt")
    if classes_file.is_file():
        classes = tuple(c.strip() for c in classes_file.read_text(encoding="utf-8").splitlines() if c.strip())
    else:
        classes = tuple(str(i) for i in range(max(labels) + 1)) or ("unlabelled",)
    return SampleList(tuple(paths), tuple(labels), classes)


def split_samples(data_root: str, split: str, ann_file: str = "") -> SampleList:
    """The samples of one split: ``data_root/ann_file`` over ``data_root/split``, or the
    ImageFolder ``data_root/split`` (``data_root`` itself when it has no ``split`` folder)."""
    root = Path(data_root)
    if ann_file:
        return read_ann_file(root / ann_file, root / split)
    folder = root / split if (root / split).is_dir() else root
    return scan_image_folder(folder)


class SeededDataset(Dataset):
    """What every training data set shares: items indexed by ``(epoch, index)`` pairs, the transform run
    with torch's CPU generator seeded for that sample only (:func:`sample_seed`), and an unreadable
    sample replaced by the next readable one (logged once per file). Subclasses say how to read a
    sample (:meth:`_read`), where it lives (:meth:`_path`) and how to transform it (:meth:`_transform`).

    Each item is the transform's dict plus ``replaced`` (int64: 1 when the sample was replaced).
    """

    noun = "sample"
    """What a sample is called in the log and in errors."""

    def __init__(self, samples: Any, transform: Callable[..., dict[str, torch.Tensor]], seed: int = 0) -> None:
        self.samples = samples
        self.transform = transform
        self.seed = seed
        self._reported: set[int] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        loaded, source, replaced = self._first_readable(index)
        with torch.random.fork_rng(devices=[]):  # seed torch's global CPU generator for this sample only
            seed = sample_seed(self.seed, epoch, index)
            torch.default_generator.manual_seed(seed)  # not torch.manual_seed, which would reseed CUDA too
            item = self._transform(loaded, source, seed)
        item["replaced"] = torch.tensor(int(replaced), dtype=torch.int64)
        return item

    def _read(self, source: int) -> Any:
        raise NotImplementedError

    def _path(self, source: int) -> Path:
        raise NotImplementedError

    def _transform(self, loaded: Any, source: int, seed: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _first_readable(self, index: int) -> tuple[Any, int, bool]:
        """``(what _read gave, the sample it came from, whether it is not sample index itself)``."""
        for attempt in range(min(MAX_REPLACEMENTS, len(self.samples))):
            source = (index + attempt) % len(self.samples)
            try:
                return self._read(source), source, attempt > 0
            except ImageLoadError as error:
                if source not in self._reported:
                    self._reported.add(source)
                    logger.warning("skipping an unreadable %s (replaced by the next one): %s", self.noun, error)
        raise DataError(f"{MAX_REPLACEMENTS} {self.noun}s in a row from {self._path(index)} on are unreadable; "
                        "check the data folder")


class ImageDataset(SeededDataset):
    """Decodes ``samples`` (a :class:`SampleList`) and applies a seeded ``(image, seed)`` transform (see
    :class:`SeededDataset`); each item also has ``label`` (int64)."""

    noun = "image"

    def __init__(self, samples: SampleList, transform: SampleTransform, seed: int = 0) -> None:
        super().__init__(samples, transform, seed)

    def _read(self, source: int) -> Image.Image:
        return load_image(self.samples.paths[source])

    def _path(self, source: int) -> Path:
        return self.samples.paths[source]

    def _transform(self, loaded: Image.Image, source: int, seed: int) -> dict[str, torch.Tensor]:
        item = self.transform(loaded, seed)
        item["label"] = torch.tensor(self.samples.labels[source], dtype=torch.int64)
        return item


class ResumableSampler(DistributedSampler):
    """torch's :class:`DistributedSampler` (same permutation per ``set_epoch``, same split over
    ranks) that yields ``(epoch, index)`` pairs and can start part-way into an epoch.

    ``set_position(epoch, skip)`` makes the next iteration the ``epoch``'s, without its
    first ``skip`` samples of this rank (those a resumed run has already trained on).
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
        self.skip = 0

    def set_position(self, epoch: int, skip: int = 0) -> None:
        self.set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = list(super().__iter__())[self.skip:]
        return iter([(self.epoch, i) for i in indices])

    def __len__(self) -> int:
        return self.num_samples - self.skip


class ShardSampler(Sampler):
    """Evaluation order: rank ``r`` of ``n`` takes indices ``r, r + n, …``; no padding, so no
    image is counted twice (results are summed over ranks)."""

    def __init__(self, size: int, num_replicas: int = 1, rank: int = 0) -> None:
        self.indices = list(range(rank, size, num_replicas))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(0, i) for i in self.indices])

    def __len__(self) -> int:
        return len(self.indices)


def train_loader(dataset: ImageDataset, batch_size: int, num_workers: int, rank: int, world_size: int,
                 seed: int, pin_memory: bool = False) -> tuple[DataLoader, ResumableSampler]:
    """A shuffling loader over complete batches and its (resumable) sampler."""
    sampler = ResumableSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True,
                        pin_memory=pin_memory, persistent_workers=num_workers > 0,
                        generator=torch.Generator().manual_seed(seed))  # never draws from the global generator
    return loader, sampler


def eval_loader(dataset: ImageDataset, batch_size: int, num_workers: int, rank: int, world_size: int,
                pin_memory: bool = False) -> DataLoader:
    """A loader over this rank's shard of ``dataset``, in order."""
    return DataLoader(dataset, batch_size=batch_size, sampler=ShardSampler(len(dataset), world_size, rank),
                      num_workers=num_workers, pin_memory=pin_memory, generator=torch.Generator().manual_seed(0))


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move every tensor of a batch to ``device`` (non-blocking)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
