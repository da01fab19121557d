"""The implementations a benchmark compares, all holding the same weights.

Each runner is a callable ``images [B, 3, S, S] float32 → logits [B, C] float32`` on the
model's device; the dtype handling (bf16 weights, autocast, a runtime's precision hint)
happens inside, so every runner sees the same input. Peers (``--peers``), each optional and
noted with the reason when it cannot run:

- ``timm``: eager, fp32, and bf16 two ways, weights cast to bf16 (``.to(torch.bfloat16)``) and
  fp32 weights under bf16 autocast; the faster of the two is the peer the ratios use.
- ``timm-inductor``: the same timm modules under ``torch.compile`` (inductor, static shapes) with
  ``torch._inductor.config.freezing`` on, so weights are folded in and prepacked for oneDNN/MKL;
  fp32 and bf16 weights. Compilation happens at the first call of each batch size; the
  benchmark reports that time apart from the steady state. Left out without a C++ compiler.
- ``openvino``: our model converted with :func:`~beitv2_zoo.export.export_openvino` (the
  ``beitv2-zoo export --format openvino`` path), compiled for the CPU with the f32 and the bf16
  ``INFERENCE_PRECISION_HINT``, latency hint, torch's thread count. Where the CPU lacks bf16
  (no ``BF16`` in ``OPTIMIZATION_CAPABILITIES``) OpenVINO runs the bf16 request in f32; the
  runner says so. (On CPUs with bf16, OpenVINO's *default* is bf16, so the fp32 runner sets f32.)
- ``onnxruntime``: our model exported with :func:`~beitv2_zoo.export.export_onnx`, CPU provider,
  torch's thread count, fp32.
- ``mmpretrain``: its own model of the same name, fp32 and bf16 autocast.

On CUDA, onnxruntime and OpenVINO (CPU runtimes here) are left out.
"""

import copy
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..checkpoint.keymaps import canonical_to_mmpretrain
from ..models import Beit

PEER_MODULES = {"timm": "timm", "timm-inductor": "timm", "mmpretrain": "mmpretrain", "onnxruntime": "onnxruntime",
                "openvino": "openvino"}
"""Each peer's name (``--peers``) and the module it needs."""

DEFAULT_PEERS = ("timm", "timm-inductor", "mmpretrain", "onnxruntime", "openvino")


@dataclass
class Runner:
    """One implementation at one precision."""

    library: str  # 'beitv2_zoo', 'timm', 'timm-inductor', 'mmpretrain', 'onnxruntime', 'openvino'
    precision: str  # 'fp32' or 'bf16'
    how: str  # e.g. 'bf16 weights', 'bf16 autocast'
    forward: Callable[[torch.Tensor], torch.Tensor]
    name: str | None = None  # the label where a library has several runners at one precision
    compiled: bool = False  # its first call at each batch size compiles (reported apart)

    @property
    def label(self) -> str:
        return self.name or f"{self.library} {self.precision}"


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


def _timm_modules(model: Beit, settings: dict, cache: dict) -> tuple[nn.Module, nn.Module]:
    """timm's BEiT holding ``model``'s weights, in fp32 and as a bf16 copy (built once per ``cache``)."""
    if "timm" not in cache:
        from timm.models.beit import Beit as TimmBeit

        keys = ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "use_abs_pos_emb",
                "use_rel_pos_bias", "use_shared_rel_pos_bias", "init_values", "num_classes", "global_pool")
        reference = TimmBeit(**{k: settings[k] for k in keys if k in settings}).eval()
        reference.load_state_dict(model.state_dict())
        reference.to(next(model.parameters()).device)
        cache["timm"] = reference, copy.deepcopy(reference).to(torch.bfloat16)
    return cache["timm"]


def _timm(model: Beit, settings: dict, cache: dict) -> list[Runner]:
    reference, bf16 = _timm_modules(model, settings, cache)
    fp32, autocast = _autocast_pair("timm", reference)
    autocast.name = "timm bf16 autocast"
    weights = Runner("timm", "bf16", "bf16 weights", lambda x: bf16(x.to(torch.bfloat16)).float(), name="timm bf16 weights")
    return [fp32, weights, autocast]


def cxx_compiler() -> str | None:
    """The C++ compiler inductor's CPU backend would use (``$CXX``, else g++, c++ or clang++ on the PATH)."""
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++", "clang++"]
    return next((found for c in candidates if (found := shutil.which(c))), None)


def _frozen(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``module`` under ``torch.compile`` (inductor, static shapes) with freezing, which inductor reads when it
    compiles: at the first call of each new input shape, so every call runs inside the setting."""
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    # one graph per batch size and module; past the limit dynamo would silently run the module eagerly
    name = "recompile_limit" if hasattr(dynamo_config, "recompile_limit") else "cache_size_limit"
    setattr(dynamo_config, name, max(getattr(dynamo_config, name), 64))
    compiled = torch.compile(module, backend="inductor", dynamic=False)

    def forward(x: torch.Tensor) -> torch.Tensor:
        with inductor_config.patch(freezing=True):
            return compiled(x)

    return forward


def _timm_inductor(model: Beit, settings: dict, cache: dict) -> list[Runner]:
    if next(model.parameters()).device.type == "cpu" and cxx_compiler() is None:
        raise _Skip("no C++ compiler found (inductor's CPU backend needs one: install g++ or set CXX)")
    reference, bf16 = _timm_modules(model, settings, cache)
    fp32_forward, bf16_forward = _frozen(reference), _frozen(bf16)
    return [
        Runner("timm-inductor", "fp32", "fp32, inductor + freezing", lambda x: fp32_forward(x), compiled=True),
        Runner("timm-inductor", "bf16", "bf16 weights, inductor + freezing",
               lambda x: bf16_forward(x.to(torch.bfloat16)).float(), compiled=True),
    ]


class _Skip(Exception):
    """A peer that cannot run here, with the reason."""


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
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # as many threads as torch's runners
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [Runner("onnxruntime", "fp32", "fp32", lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0]))]


def _openvino(model: Beit, notes: list[str]) -> list[Runner]:
    import openvino

    from ..export import export_openvino

    folder = Path(tempfile.mkdtemp(prefix="beitv2_zoo_bench_"))
    core = openvino.Core()
    converted = core.read_model(str(export_openvino(model, folder / "model.xml")))
    capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    runners = []
    for precision, hint in (("fp32", "f32"), ("bf16", "bf16")):
        compiled = core.compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
                                                         "INFERENCE_NUM_THREADS": torch.get_num_threads()})
        effective = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
        ran = "bf16" if "bf16" in effective or "bfloat16" in effective else "f32" if "f32" in effective or "float32" in effective else effective
        if "BF16" not in capabilities:
            ran = "f32"
        how = f"{hint} hint"
        if precision == "bf16" and ran != "bf16":
            how += f", ran {ran}: CPU lacks bf16"
            notes.append(f"openvino: this CPU lacks bf16 (OPTIMIZATION_CAPABILITIES {capabilities}); "
                         f"its bf16 request ran in {ran}")
        request = compiled.create_infer_request()

        def forward(x: torch.Tensor, request=request) -> torch.Tensor:
            return torch.from_numpy(request.infer({0: x.numpy()})[0].copy())

        runners.append(Runner("openvino", precision, how, forward))
    return runners


def build_runners(model: Beit, settings: dict, name: str, peers: tuple[str, ...]) -> tuple[list[Runner], list[str]]:
    """Our runners plus every requested peer that can run, on ``model``'s device; returns
    ``(runners, notes)``, a note for each peer left out (with the reason) or each caveat."""
    runners, notes = _ours(model), []
    on_cpu = next(model.parameters()).device.type == "cpu"
    cache: dict = {}
    for peer in peers:
        module = PEER_MODULES.get(peer)
        if module is None:
            notes.append(f"{peer}: unknown peer (choose from {', '.join(PEER_MODULES)})")
            continue
        if importlib.util.find_spec(module) is None:
            notes.append(f"{peer}: not installed" + (f" (needs {module})" if module != peer else ""))
            continue
        try:
            if peer == "timm":
                runners += _timm(model, settings, cache)
            elif peer == "timm-inductor":
                runners += _timm_inductor(model, settings, cache)
            elif peer == "mmpretrain":
                if not name.startswith("beit-base-p16_beit"):
                    notes.append(f"mmpretrain: has no model named {name}")
                    continue
                runners += _mmpretrain(model, name)
            elif peer in ("onnxruntime", "openvino"):
                if not on_cpu:
                    notes.append(f"{peer}: left out on GPU (the benchmark uses its CPU runtime)")
                    continue
                runners += _onnxruntime(model) if peer == "onnxruntime" else _openvino(model, notes)
        except _Skip as reason:
            notes.append(f"{peer}: skipped: {reason}")
        except Exception as error:  # a peer that cannot run is reported, not fatal
            notes.append(f"{peer}: {type(error).__name__}: {error}")
    return runners, notes
