"""Class names of the label sets our checkpoints were trained with.

* ``imagenet-1k``: mmpretrain's ``IMAGENET_CATEGORIES`` strings (``'tench, Tinca tinca'``), in
  the usual sorted-synset order.
* ``imagenet-21k``: the 21,841 synsets of ImageNet-21k (fall 2011) in sorted WordNet-id
  order, the order an ``ImageFolder`` gives and the one the official BEiT 21k heads use;
  names are the WordNet lemmas as shipped with timm (``timm/data/_info``).
* ``digits``: ``'0'`` … ``'9'``, scikit-learn's handwritten digits (the CPU reproduction's classifier).
* ``ade20k``: the 150 ADE20K (SceneParsing) classes as mmsegmentation names them (``'wall'``, …,
  ``'bed '`` with its trailing space), in label order after ``reduce_zero_label``; :func:`palette`
  gives mmsegmentation's colour for each.
* ``digits-canvas``: ``'background'``, then ``'0'`` … ``'9'``: the segmentation reproduction's pixel labels.
"""

import json
from functools import lru_cache
from importlib import resources

LABEL_SETS = ("imagenet-1k", "imagenet-21k", "digits", "ade20k", "digits-canvas")


def _read(file: str) -> str:
    return resources.files(__name__).joinpath(file).read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def imagenet1k_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class strings, index 0 = ``'tench, Tinca tinca'``."""
    return tuple(_read("imagenet1k.txt").splitlines())


@lru_cache(maxsize=None)
def _imagenet21k_rows() -> tuple[tuple[str, str], ...]:
    return tuple(tuple(line.split("\t", 1)) for line in _read("imagenet21k.tsv").splitlines())  # type: ignore[misc]


def imagenet21k_classes() -> tuple[str, ...]:
    """The 21,841 ImageNet-21k class names (WordNet lemmas), sorted by WordNet id."""
    return tuple(name for _, name in _imagenet21k_rows())


def imagenet21k_wnids() -> tuple[str, ...]:
    """The 21,841 WordNet ids (``'n00004475'``, …) in head order."""
    return tuple(wnid for wnid, _ in _imagenet21k_rows())


def class_names(label_set: str) -> tuple[str, ...]:
    """Names for ``label_set`` (one of :data:`LABEL_SETS`)."""
    if label_set == "imagenet-1k":
        return imagenet1k_classes()
    if label_set == "imagenet-21k":
        return imagenet21k_classes()
    if label_set == "digits":
        return tuple(str(digit) for digit in range(10))
    if label_set == "ade20k":
        return tuple(_ade20k()["classes"])
    if label_set == "digits-canvas":
        return ("background", *(str(digit) for digit in range(10)))
    raise ValueError(f"unknown label set {label_set!r}; known: {', '.join(LABEL_SETS)}")


@lru_cache(maxsize=None)
def _ade20k() -> dict:
    return json.loads(_read("ade20k.json"))


def palette(label_set: str) -> tuple[tuple[int, int, int], ...]:
    """One RGB colour per class of a segmentation label set: mmsegmentation's ADE20K palette, or, for
    another set, a fixed, well-spread palette (class 0 grey)."""
    if label_set == "ade20k":
        return tuple(tuple(rgb) for rgb in _ade20k()["palette"])  # type: ignore[misc]
    return default_palette(len(class_names(label_set)))


def default_palette(num_classes: int) -> tuple[tuple[int, int, int], ...]:
    """``num_classes`` distinct colours: grey for class 0, then hues spread by the golden angle."""
    import colorsys

    colours = [(120, 120, 120)]
    for index in range(1, num_classes):
        r, g, b = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.75, 0.95)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return tuple(colours[:num_classes])
