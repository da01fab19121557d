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


def test_export_without_onnx_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    """Issue 12 item 17: 0.1 died with three chained tracebacks when onnx was not installed."""
    import importlib.util

    from beitv2_zoo.cli import main

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real_find_spec(name, *a))
    code = main(["export", "test_beit_tiny", "--random", "--out", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "pip install 'beitv2-zoo[onnx]'" in err
    assert not (tmp_path / "m.onnx").exists()


def test_export_reports_every_file_it_wrote(tmp_path, capsys):
    from beitv2_zoo.cli import main

    out = tmp_path / "m.onnx"
    assert main(["export", "test_beit_tiny", "--random", "--out", str(out), "--no-check"]) == 0
    printed = capsys.readouterr().out
    for path in out.parent.iterdir():
        assert str(path) in printed


def test_openvino_export_after_inference_matches_pytorch(tmp_path, capsys):
    """Issue 15 item 7 (and issue 12 item 5): an OpenVINO IR converted after a no-grad forward, with a
    dynamic batch, computes what PyTorch computes (0.1's caches made the conversion fail here)."""
    pytest.importorskip("openvino")
    import torch

    from beitv2_zoo import get_model
    from beitv2_zoo.cli import main
    from beitv2_zoo.export import check_openvino, export_openvino

    model = get_model("test_beit_tiny")
    with torch.no_grad():
        model(torch.rand(1, 3, 224, 224))
    xml = export_openvino(model, tmp_path / "tiny.xml")
    assert xml.is_file() and xml.with_suffix(".bin").is_file()
    assert check_openvino(model, xml, batch_sizes=(1, 3)) < 1e-4
    assert main(["export", "test_beit_tiny", "--random", "--format", "openvino", "--out", str(tmp_path / "cli.xml")]) == 0
    assert "OpenVINO vs PyTorch" in capsys.readouterr().out
