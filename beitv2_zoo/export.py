"""Export a model to ONNX or OpenVINO with a dynamic batch dimension, and check it with their runtimes."""

import importlib.util
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import MissingDependencyError
from .models.protocol import ZooModel

logger = logging.getLogger(__name__)


def export_onnx(model: "nn.Module | ZooModel", path: str | Path, opset: int = 18) -> Path:
    """Write ``model`` (images ``[B, 3, S, S]`` → outputs) to ``path`` as ONNX; ``B`` is dynamic.

    Uses the ``torch.export``-based exporter (needs ``onnxscript``) and falls back to the
    TorchScript exporter when that is not installed. Large models keep their weights in an
    external data file beside ``path`` (:func:`onnx_files` lists what was written).

    Raises:
        MissingDependencyError: the ``onnx`` package is not installed (``pip install 'beitv2-zoo[onnx]'``).
    """
    if importlib.util.find_spec("onnx") is None:
        raise MissingDependencyError("ONNX export needs the onnx package: pip install 'beitv2-zoo[onnx]' "
                                     "(onnx, onnxscript and onnxruntime for the check)")
    path = Path(path)
    size = model.patch_embed.img_size
    example = torch.zeros(2, 3, size, size, device=next(model.parameters()).device)
    model = model.eval()
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)

        batch = torch.export.Dim("batch", min=1, max=4096)
        torch.onnx.export(model, (example,), str(path), dynamo=True, dynamic_shapes={"x": {0: batch}},
                          opset_version=opset, input_names=["images"], output_names=["outputs"], verbose=False)
    except ImportError:
        logger.info("onnxscript is not installed; using the TorchScript ONNX exporter")
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=min(opset, 17),
                          input_names=["images"], output_names=["outputs"],
                          dynamic_axes={"images": {0: "batch"}, "outputs": {0: "batch"}})
    return path


def onnx_files(path: str | Path) -> list[Path]:
    """The ONNX file and the external data files written beside it (``<name>.data`` and the like)."""
    path = Path(path)
    beside = sorted(p for p in path.parent.glob(f"{path.name}.*") if p.is_file() and p != path)
    return [path, *beside]


def check_onnx(model: "nn.Module | ZooModel", path: str | Path, batch_sizes: tuple[int, ...] = (1, 3), seed: int = 0) -> float:
    """Largest absolute difference between onnxruntime and PyTorch outputs on random inputs.

    Raises:
        ImportError: onnxruntime is not installed (``pip install onnxruntime``).
    """
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    size = model.patch_embed.img_size
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for batch in batch_sizes:
        images = torch.randn(batch, 3, size, size, generator=generator)
        with torch.inference_mode():
            expected = model.cpu()(images).float().numpy()
        actual = session.run(None, {input_name: images.numpy()})[0]
        worst = max(worst, float(np.abs(actual - expected).max()))
    return worst


def export_openvino(model: "nn.Module | ZooModel", path: str | Path) -> Path:
    """Write ``model`` as an OpenVINO IR (``path`` ``.xml`` and its ``.bin``), batch dimension dynamic.

    Converted with ``openvino.convert_model`` from a trace on a ``[2, 3, S, S]`` example (after any
    number of earlier forward passes: the model keeps no cached derived tensors); read it back with
    ``openvino.Core().read_model(path)``.

    Raises:
        MissingDependencyError: the ``openvino`` package is not installed (``pip install 'beitv2-zoo[openvino]'``).
    """
    if importlib.util.find_spec("openvino") is None:
        raise MissingDependencyError("OpenVINO export needs the openvino package: pip install 'beitv2-zoo[openvino]'")
    import openvino

    path = Path(path).with_suffix(".xml")
    size = model.patch_embed.img_size
    example = torch.zeros(2, 3, size, size, device=next(model.parameters()).device)
    converted = openvino.convert_model(model.eval(), example_input=example, input=[(-1, 3, size, size)])
    path.parent.mkdir(parents=True, exist_ok=True)
    openvino.save_model(converted, str(path), compress_to_fp16=False)
    return path


def check_openvino(model: "nn.Module | ZooModel", path: str | Path, batch_sizes: tuple[int, ...] = (1, 3),
                   seed: int = 0) -> float:
    """Largest absolute difference between OpenVINO (CPU) and PyTorch outputs on random inputs."""
    import openvino

    # f32 explicitly: on a CPU with bf16 OpenVINO would otherwise infer in bf16 and the check would compare precisions
    compiled = openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    size = model.patch_embed.img_size
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for batch in batch_sizes:
        images = torch.randn(batch, 3, size, size, generator=generator)
        with torch.inference_mode():
            expected = model.cpu()(images).float().numpy()
        actual = compiled(images.numpy())[0]
        worst = max(worst, float(np.abs(actual - expected).max()))
    return worst
