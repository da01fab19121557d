"""ONNX export with a dynamic batch, checked against onnxruntime."""

import pytest
from safetensors.torch import save_file

from beitv2_zoo import get_model
from beitv2_zoo.cli import main
from beitv2_zoo.export import check_onnx, export_onnx
from beitv2_zoo.models import build_beit

from .conftest import randomize_

onnxruntime = pytest.importorskip("onnxruntime")


def test_export_matches_pytorch_for_several_batch_sizes(tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_file(randomize_(build_beit("test_beit_tiny")).state_dict(), path)
    model = get_model("test_beit_tiny", pretrained=path)
    onnx_path = export_onnx(model, tmp_path / "tiny.onnx")
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    batch_dim = session.get_inputs()[0].shape[0]
    assert not isinstance(batch_dim, int), "the batch dimension must be dynamic"
    assert check_onnx(model, onnx_path, batch_sizes=(1, 2, 5)) <= 1e-4


def test_export_command(tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert main(["export", "test_beit_tiny", "--random", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and "max abs difference" in printed
    difference = float(printed.rsplit("difference", 1)[1].strip())
    assert difference <= 1e-4
