"""Weights shipped inside the package (``package:`` sources) work with no network and no cache."""

from pathlib import Path

import pytest

from beitv2_zoo import get_record, inference_model
from beitv2_zoo.errors import HashMismatchError, WeightsDownloadError
from beitv2_zoo.hub import fetch_source, fetch_weights, sha256_of
from beitv2_zoo.weights.schema import Source

DIGITS = sorted((Path(__file__).resolve().parents[1] / "examples" / "reproduction" / "digits").glob("digit*.png"))


def test_digits_classifier_runs_offline_from_the_package(no_network, isolated_cache):
    record = get_record("beitv2_tiny_patch4_32_digits")
    path = fetch_weights(record)
    assert path.name == "beitv2_tiny_patch4_32_digits.safetensors" and path.parent.name == "files" and path.parent.parent.name == "weights"
    assert path.stat().st_size <= 10 * 1024 * 1024
    predictions = inference_model("beitv2_tiny_patch4_32_digits", [str(p) for p in DIGITS])
    assert len(predictions) == 10 and {p["pred_class"] for p in predictions} <= set("0123456789")
    correct = sum(p["pred_class"] == image.name[5] for p, image in zip(predictions, DIGITS))
    assert correct >= 8, [p["pred_class"] for p in predictions]
    assert not any(isolated_cache.rglob("*.safetensors"))  # nothing was copied into the cache


def test_packaged_sources_are_hash_checked(tmp_path):
    labels = "package:beitv2_zoo/weights/labels/imagenet1k.txt"
    import importlib.resources as resources

    actual = sha256_of(Path(str(resources.files("beitv2_zoo").joinpath("weights/labels/imagenet1k.txt"))))
    assert fetch_source(Source(url=labels, sha256=actual, host="package"), cache_dir=tmp_path).name == "imagenet1k.txt"
    with pytest.raises(HashMismatchError, match="reinstall"):
        fetch_source(Source(url=labels, sha256="0" * 64, host="package"), cache_dir=tmp_path)
    with pytest.raises(WeightsDownloadError, match="missing"):
        fetch_source(Source(url="package:beitv2_zoo/weights/files/nothing.safetensors", sha256=actual), cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())
