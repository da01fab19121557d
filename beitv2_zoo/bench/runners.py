"""The implementations a benchmark compares, all holding the same weights.

Each runner is a callable ``images [B, 3, S, S] float32 → logits [B, C] float32`` on the
model's device; the dtype handling (bf16 weights, autocast) happens inside, so every runner
sees the same input. On CUDA, onnxruntime (CPU provider) is left out.
"""

import copy
import importlib.util
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..checkpoint.keymaps import canonical_to_mmpretrain
from ..models import Beit


@dataclass
class Runner:
    """One implementation at one precision."""

    library: str  # 'beitv2_zoo', 'timm', 'mmpretrain', 'onnxruntime'
    precision: str  # 'fp32' or 'bf16'
    how: str  # e.g. 'bf16 weights', 'bf16 autocast'
    forward: Callable[[torch.Tensor], torch.Tensor]

    @property
    def label(self) -> str:
        return f"{self.library} {self.precision}"


def _ours(model: Beit) -> list[Runner]:
    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    return [
        Runner("beitv2_zoo", "fp32", "fp32", lambda x: model(x)),
        Runner("beitv2_zoo", "bf16", "bf16 weights", lambda x: bf16(x.to(torch.bfloat16)).float()),
    ]


def _autocast_pair(library: str, module: nn.Module) -> list[Runner]:
    device_type = next(module.parameters()).device.type

    def bf16(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type, dtype=torch.bfloat16):
            return module(x).float()

    return [Runner(library, "fp32", "fp32", lambda x: module(x)), Runner(library, "bf16", "bf16 autocast", bf16)]


def _timm(model: Beit, settings: dict) -> list[Runner]:
    from timm.models.beit import Beit as TimmBeit

    keys = ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "use_abs_pos_emb",
            "use_rel_pos_bias", "use_shared_rel_pos_bias", "init_values", "num_classes", "global_pool")
    reference = TimmBeit(**{k: settings[k] for k in keys if k in settings}).eval()
    reference.load_state_dict(model.state_dict())
    reference.to(next(model.parameters()).device)
    return _autocast_pair("timm", reference)


def _mmpretrain(model: Beit, name: str) -> list[Runner]:
    import mmpretrain

    reference = mmpretrain.get_model(name, pretrained=False).eval()
    state = canonical_to_mmpretrain(model.state_dict())
    missing, unexpected = reference.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.endswith("relative_position_index")]:
        raise RuntimeError(f"mmpretrain model does not take our weights: {missing[:5]} {unexpected[:5]}")
    reference.to(next(model.parameters()).device)
    return _autocast_pair("mmpretrain", reference)


def _onnxruntime(model: Beit) -> list[Runner]:
    import onnxruntime

    from ..export import export_onnx

    folder = Path(tempfile.mkdtemp(prefix="beitv2_zoo_bench_"))
    path = export_onnx(model, folder / "model.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [Runner("onnxruntime", "fp32", "fp32", lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0]))]


def build_runners(model: Beit, settings: dict, name: str, peers: tuple[str, ...]) -> tuple[list[Runner], list[str]]:
    """Our runners plus every requested peer that is installed, on ``model``'s device; returns ``(runners, notes on skipped peers)``."""
    runners, notes = _ours(model), []
    for peer in peers:
        if importlib.util.find_spec(peer) is None:
            notes.append(f"{peer}: not installed")
            continue
        try:
            if peer == "timm":
                runners += _timm(model, settings)
            elif peer == "mmpretrain":
                if not name.startswith("beit-base-p16_beit"):
                    notes.append(f"mmpretrain: has no model named {name}")
                    continue
                runners += _mmpretrain(model, name)
            elif peer == "onnxruntime":
                if next(model.parameters()).device.type != "cpu":
                    notes.append("onnxruntime: left out on GPU (the benchmark uses its CPU execution provider)")
                    continue
                runners += _onnxruntime(model)
            else:
                notes.append(f"{peer}: unknown peer")
        except Exception as error:  # a peer that cannot run is reported, not fatal
            notes.append(f"{peer}: {type(error).__name__}: {error}")
    return runners, notes
