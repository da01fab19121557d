"""The segmentation reproduction's segmenter ships inside the package: ``inference_model`` labels a digit
canvas with no network and no cache, at the canvas's size, with the ``digits-canvas`` names."""

from pathlib import Path

import numpy as np
from PIL import Image

from beitv2_zoo import get_model, get_record, inference_model, list_models
from beitv2_zoo.hub import fetch_weights

NAME = "beitv2_tiny_patch4_64_canvas_upernet"
SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "reproduction" / "segmentation" / "samples"
CANVASES = sorted(p for p in SAMPLES.glob("canvas_*.png") if not p.stem.endswith("_label"))


def _label(canvas: Path) -> np.ndarray:
    return np.asarray(Image.open(canvas.with_name(f"{canvas.stem}_label.png")))


def test_the_record_is_a_segmenter_of_the_canvas_classes():
    record = get_record(NAME)
    assert record.task == "semantic-segmentation" and record.num_classes == 11
    assert NAME in list_models(task="semantic-segmentation")
    assert record.metrics[0].miou is not None and 0.0 < record.metrics[0].miou <= 100.0


def test_segmenter_labels_held_out_canvases_offline(no_network, isolated_cache):
    path = fetch_weights(get_record(NAME))
    assert path.parent.name == "files" and path.stat().st_size <= 10 * 1024 * 1024
    assert len(CANVASES) == 4
    correct = ink = 0
    for canvas in CANVASES:
        result = inference_model(NAME, str(canvas))
        label = _label(canvas)
        predicted = result["pred_sem_seg"]
        assert predicted.shape == label.shape == (64, 64) and predicted.dtype == np.int64
        assert result["classes"][0] == "background" and list(result["classes"][1:]) == [str(d) for d in range(10)]
        assert (predicted[label == 0] == 0).mean() > 0.95  # background stays background
        digits = label > 0
        correct += int((predicted[digits] == label[digits]).sum())
        ink += int(digits.sum())
    # measured 0.73 (1,332 of 1,824 ink pixels) on these four held-out canvases; digits the MIM stage never saw
    assert correct / ink > 0.6, correct / ink
    assert not any(isolated_cache.rglob("*.safetensors"))


def test_model_returns_logits_at_a_quarter_of_the_input():
    import torch

    model = get_model(NAME, pretrained=True)
    logits = model(torch.zeros(2, 3, 64, 64))
    assert logits.shape == (2, 11, 16, 16)
