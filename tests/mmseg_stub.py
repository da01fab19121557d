"""Make ``import mmseg.models`` work without mmcv's compiled ops (test-side only).

mmseg 1.2.2 imports a few names from ``mmcv.ops`` at import time (``point_sample``,
``sigmoid_focal_loss``, ``CrissCrossAttention``, ``PSAMask``); the real ``mmcv.ops`` needs the
compiled ``mmcv._ext``, which mmcv-lite lacks. :func:`install` puts a small stand-in module in
``sys.modules`` first: a pure-PyTorch ``point_sample`` (a ``grid_sample`` of ``[0, 1]`` points) and
placeholders that raise if anything ever calls them. BEiT + Feature2Pyramid + UPerHead + FCNHead
with plain ``BN`` never do.
"""

import sys
import types
from typing import Any

import torch
import torch.nn.functional as F

STUB_NAME = "mmcv.ops"


def point_sample(inputs: torch.Tensor, points: torch.Tensor, align_corners: bool = False, **kwargs: Any) -> torch.Tensor:
    """``inputs`` ``[B, C, H, W]`` sampled at ``points`` ``[B, P, 2]`` (or ``[B, h, w, 2]``) in ``[0, 1]``
    → ``[B, C, P]`` (or ``[B, C, h, w]``), bilinear."""
    flat = points.dim() == 3
    grid = points.unsqueeze(2) if flat else points
    out = F.grid_sample(inputs, 2.0 * grid - 1.0, align_corners=align_corners, **kwargs)
    return out.squeeze(3) if flat else out


def _placeholder(name: str) -> type:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"mmcv.ops.{name} is a test stub (mmcv's compiled ops are not installed)")

    return type(name, (torch.nn.Module,), {"__init__": fail, "__call__": fail})


def _sigmoid_focal_loss(*args: Any, **kwargs: Any) -> torch.Tensor:
    raise RuntimeError("mmcv.ops.sigmoid_focal_loss is a test stub (mmcv's compiled ops are not installed)")


def install() -> None:
    """Register the stand-in ``mmcv.ops`` unless a working one is already imported."""
    if STUB_NAME in sys.modules:
        return
    stub = types.ModuleType(STUB_NAME)
    stub.__doc__ = "test stub of mmcv.ops (see tests/mmseg_stub.py)"
    stub.point_sample = point_sample
    stub.sigmoid_focal_loss = _sigmoid_focal_loss
    for name in ("CrissCrossAttention", "PSAMask", "DeformConv2d", "ModulatedDeformConv2d", "SyncBatchNorm"):
        setattr(stub, name, _placeholder(name))
    sys.modules[STUB_NAME] = stub
    import mmcv

    mmcv.ops = stub  # type: ignore[attr-defined]
