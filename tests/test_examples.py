"""Every script in examples/ runs as shipped, on the tiny architecture with local weights."""

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import save_file

from beitv2_zoo.models import build_beit

from .conftest import randomize_

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("examples") / "tiny.safetensors"
    save_file(randomize_(build_beit("test_beit_tiny")).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory, photo_paths):
    """Two classes, three crops each, cut from real photos."""
    root = tmp_path_factory.mktemp("imagefolder")
    for class_name, photo in (("cat", "chelsea.png"), ("cup", "coffee.png")):
        (root / class_name).mkdir()
        image = Image.open(photo_paths[photo]).convert("RGB")
        for i in range(3):
            box = (i * 20, i * 10, image.width - 40 + i * 20, image.height - 30 + i * 10)
            image.crop(box).save(root / class_name / f"{class_name}{i}.jpg")
    return root


def run(script: str, *args: str, cwd: Path | None = None) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                            timeout=300, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_example_is_tested():
    tested = {name[len("test_"):] + ".py" for name in globals() if name.startswith("test_")} - {"every_example_is_tested.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_export_onnx(tiny_weights, tmp_path):
    pytest.importorskip("onnxruntime")
    out = run("export_onnx.py", "--model", "test_beit_tiny", "--weights", str(tiny_weights),
              "--image", str(EXAMPLES / "images" / "chelsea.jpg"), "--out", str(tmp_path / "tiny.onnx"))
    assert "tiny.onnx:" in out and "%" in out


def test_visual_tokens(tmp_path):
    from beitv2_zoo import get_model

    weights = tmp_path / "tokenizer.safetensors"
    save_file(get_model("test_vqkd_tiny").state_dict(), weights)
    out = tmp_path / "tokens.png"
    printed = run("visual_tokens.py", str(EXAMPLES / "images" / "coffee.jpg"), "--tokenizer", "test_vqkd_tiny",
                  "--weights", str(weights), "--out", str(out))
    grid = [line.split() for line in printed.splitlines()[:14]]
    assert len(grid) == 14 and all(len(row) == 14 and all(v.isdigit() for v in row) for row in grid)
    assert out.is_file() and Image.open(out).size[0] > 300


def test_classify(tiny_weights):
    out = run("classify.py", str(EXAMPLES / "images"), "--model", "test_beit_tiny", "--weights", str(tiny_weights))
    assert "chelsea.jpg" in out and "coffee.jpg" in out
    assert out.count("%") == 10


def test_knn_retrieval(tiny_weights, image_folder):
    out = run("knn_retrieval.py", str(image_folder), "--k", "2", "--model", "test_beit_tiny", "--weights", str(tiny_weights))
    lines = out.strip().splitlines()
    assert len(lines) == 6 and all(line.count("(") == 2 for line in lines)


def test_finetune_folder(tiny_weights, image_folder, tmp_path):
    out = run("finetune_folder.py", str(image_folder), "--epochs", "2", "--batch-size", "3", "--lr", "1e-3",
              "--model", "test_beit_tiny", "--weights", str(tiny_weights), "--out", str(tmp_path / "out" / "mine.safetensors"),
              cwd=tmp_path)
    assert out.count("epoch ") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing written into the working directory
    from beitv2_zoo import get_model, inference_model

    model = get_model(tmp_path / "out" / "mine.safetensors")
    assert model.num_classes == 2 and model.class_names == tuple(sorted(p.name for p in image_folder.iterdir()))
    assert inference_model(model, next(image_folder.rglob("*.jpg")))["pred_class"] in model.class_names
