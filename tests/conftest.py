"""Shared fixtures: an isolated cache, real photos, and tiny checkpoints in every layout.

The suite runs torch on ONE thread, here and in every subprocess a test starts (they inherit
``OMP_NUM_THREADS``): on a 2-core machine, torch's two OpenMP threads collapse as soon as
anything else runs (a tiny model's forward went from 196 to 3.4 images/s), and the tests'
models are too small to gain from a second thread. ``BEITV2_ZOO_TEST_THREADS=N`` overrides it.
"""

import os

os.environ["OMP_NUM_THREADS"] = os.environ.get("BEITV2_ZOO_TEST_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])

import socket  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_IMAGE = REPO / "examples" / "images" / "chelsea.jpg"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own empty cache and no offline / mirror / progress settings from the
    environment; retries wait 10 ms instead of seconds (the count of retries is unchanged)."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("BEITV2_ZOO_CACHE", str(cache))
    for name in ("BEITV2_ZOO_OFFLINE", "BEITV2_ZOO_URL_MAP", "BEITV2_ZOO_PROGRESS", "BEITV2_ZOO_TIMEOUT",
                 "BEITV2_ZOO_RETRIES", "BEITV2_ZOO_SAFETENSORS_COPY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BEITV2_ZOO_BACKOFF", "0.01")
    return cache


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection fails the test, and the package is told it is offline."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("BEITV2_ZOO_OFFLINE", "1")


@pytest.fixture(scope="session")
def photo_paths(tmp_path_factory) -> dict[str, Path]:
    """scikit-image's sample photos written as PNG and JPEG files."""
    from PIL import Image
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    paths = {}
    for name in ("chelsea", "astronaut", "coffee"):
        image = Image.fromarray(getattr(data, name)())
        paths[f"{name}.png"] = folder / f"{name}.png"
        image.save(paths[f"{name}.png"])
        paths[f"{name}.jpg"] = folder / f"{name}.jpg"
        image.save(paths[f"{name}.jpg"], quality=92)
    return paths


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter non-trivial values so that numeric comparisons are sensitive.

    Layer scales get values around 0.5 and the head a large spread, so that a wrong
    bias, norm or pooling shows up in the logits and the softmax is far from flat.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "gamma" in name:
                parameter.copy_(0.25 + 0.5 * torch.rand(parameter.shape, generator=generator))
            elif name.endswith("norm1.weight") or name.endswith("norm2.weight") or "norm.weight" in name:
                parameter.copy_(1.0 + 0.2 * torch.randn(parameter.shape, generator=generator))
            elif name.startswith("head"):
                parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
            else:
                parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model


def image_batch(batch: int = 2, size: int = 224, seed: int = 0) -> torch.Tensor:
    """Normalised-looking input ``[B, 3, size, size]``."""
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def max_abs_diff(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


@pytest.fixture
def registered():
    """``add(record)`` registers a test-only record; every record added is unregistered afterwards."""
    from beitv2_zoo.weights import register, unregister

    names = []

    def add(record):
        register(record)
        names.append(record.name)
        return record.name

    yield add
    for name in names:
        unregister(name)
