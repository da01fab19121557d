"""Features-only models: a backbone that returns feature maps of chosen blocks, timm's way.

Segmentation and detection code written for timm backbones
(``timm.create_model(name, features_only=True, out_indices=...)``) calls ``model(x)`` for a list
of ``NCHW`` maps and reads ``model.feature_info.channels()`` / ``.reduction()`` to size its
neck. :func:`features_only` gives the same thing for a :class:`~beitv2_zoo.models.beit.Beit`
(or a model that wraps one): for ``beitv2_base_patch16_224`` with ``out_indices=(3, 5, 7, 11)``,
four ``[B, 768, 14, 14]`` maps, channels ``[768] * 4``, reduction ``[16] * 4``, module names
``blocks.3 … blocks.11``, exactly what timm's ``FeatureGetterNet`` reports. The wrapped model
is stored as ``.model`` (state-dict keys ``model.*``, as in timm).
"""

from collections.abc import Sequence
from copy import deepcopy
from typing import Any

import torch
from torch import nn

OutIndices = int | Sequence[int]
"""An int ``n`` (the last ``n`` blocks) or block indices (negative counts from the end)."""


class FeatureInfo:
    """Per-block feature metadata with timm's accessors (``timm.models.FeatureInfo``).

    Args:
        info: one dict per block with ``module``, ``num_chs``, ``reduction`` (an ``index`` is added).
        out_indices: the blocks a features-only model returns (an int ``n``: the last ``n``).

    Accessors without ``idx`` answer for ``out_indices``; with an int or a list they answer for
    those block indices, as timm's do.
    """

    def __init__(self, info: list[dict[str, Any]], out_indices: OutIndices) -> None:
        self.info = [{**entry, "index": entry.get("index", i)} for i, entry in enumerate(deepcopy(info))]
        self.out_indices: tuple[int, ...] = (
            tuple(range(-out_indices, 0)) if isinstance(out_indices, int) else tuple(out_indices)
        )

    def get(self, key: str, idx: int | Sequence[int] | None = None) -> Any:
        """The value of ``key`` for each output block, for the block ``idx``, or for each of the blocks ``idx``."""
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, int):
            return self.info[idx][key]
        return [self.info[i][key] for i in idx]

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        """Channels ``D`` of each map."""
        return self.get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        """Output stride of each map (the patch size)."""
        return self.get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        """Name of the module each map comes from (``'blocks.{i}'``)."""
        return self.get("module", idx)

    def get_dicts(self, keys: Sequence[str] | None = None, idx: int | Sequence[int] | None = None) -> Any:
        """The info dicts (restricted to ``keys``) of the output blocks, or of ``idx``."""
        indices = self.out_indices if idx is None else idx
        pick = (lambda d: d) if keys is None else (lambda d: {k: d[k] for k in keys})
        if isinstance(indices, int):
            return pick(self.info[indices])
        return [pick(self.info[i]) for i in indices]

    def __getitem__(self, item: int) -> dict[str, Any]:
        return self.info[item]

    def __len__(self) -> int:
        return len(self.info)


class FeatureExtractor(nn.Module):
    """``forward(x)`` → one feature map per index of ``out_indices`` (timm's ``FeatureGetterNet``).

    Args:
        model: a model with ``forward_intermediates`` and ``feature_info`` (a :class:`Beit`).
        out_indices: blocks to return; an int ``n`` for the last ``n`` (timm's BEiT default is 3).
        output_fmt: ``'NCHW'`` maps ``[B, D, H/p, W/p]`` or ``'NLC'`` patch tokens ``[B, N, D]``.
        norm: apply the model's final ``norm`` to every map.
        prune: drop the blocks after the last one asked for, the head, and (without ``norm``) the
            final norm, in place, as timm does; ``out_indices`` become indices from 0.
    """

    def __init__(
        self,
        model: nn.Module,
        out_indices: OutIndices = 3,
        output_fmt: str = "NCHW",
        norm: bool = False,
        prune: bool = True,
    ) -> None:
        super().__init__()
        if prune and hasattr(model, "prune_intermediate_layers"):
            out_indices = model.prune_intermediate_layers(out_indices, prune_norm=not norm)
        self.feature_info = FeatureInfo(model.feature_info, out_indices)
        self.model = model
        self.out_indices = out_indices
        self.output_fmt = output_fmt
        self.norm = norm
        self.pretrained_cfg = getattr(model, "pretrained_cfg", None)
        self.weights_info = getattr(model, "weights_info", None)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Images ``[B, C, H, W]`` → ``[B, D, H/p, W/p]`` per output block (or ``[B, N, D]`` for ``'NLC'``)."""
        return self.model.forward_intermediates(
            x, indices=self.out_indices, norm=self.norm, output_fmt=self.output_fmt, intermediates_only=True
        )


def features_only(model: nn.Module, out_indices: OutIndices = 3, **kwargs: Any) -> FeatureExtractor:
    """``model`` as a features-only backbone: ``features_only(model, (3, 5, 7, 11))(x)`` → four NCHW maps.

    Changes ``model`` in place (see :class:`FeatureExtractor`'s ``prune``); ``kwargs`` go to
    :class:`FeatureExtractor` (``output_fmt``, ``norm``, ``prune``).
    """
    if not hasattr(model, "forward_intermediates") or not hasattr(model, "feature_info"):
        raise TypeError(f"{type(model).__name__} has no forward_intermediates/feature_info; features_only needs a Beit")
    return FeatureExtractor(model, out_indices, **kwargs)
