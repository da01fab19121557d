"""pretrained=True against a real HTTP server on 127.0.0.1 (no mocks of requests)."""

import dataclasses
import hashlib

import pytest
import torch

from beitv2_zoo import get_model
from beitv2_zoo.errors import HashMismatchError, WeightsDownloadError
from beitv2_zoo.hub import cached_file
from beitv2_zoo.models import build_beit
from beitv2_zoo.weights import get_record
from beitv2_zoo.weights.schema import Source

from .conftest import image_batch, max_abs_diff, randomize_
from .http_server import LocalServer

UPSTREAM = "https://download.example.invalid/weights"


@pytest.fixture
def served(tmp_path):
    """A tiny checkpoint named like an mmpretrain release (``-<sha8>.pth``), served locally."""
    folder = tmp_path / "served"
    folder.mkdir()
    model = randomize_(build_beit("test_beit_tiny")).eval()
    staging = tmp_path / "tiny.pth"
    torch.save({"state_dict": {("backbone." + k if not k.startswith("head") else k): v
                               for k, v in model.state_dict().items()}}, staging)
    digest = hashlib.sha256(staging.read_bytes()).hexdigest()
    name = f"tiny_20260101-{digest[:8]}.pth"
    (folder / name).write_bytes(staging.read_bytes())
    with LocalServer(folder) as server:
        yield server, name, digest, model


def _record(name: str, url: str, **source_fields):
    base = get_record("test_beit_tiny")
    return dataclasses.replace(base, name=name, aliases=(), sources=(Source(url=url, host="openmmlab", **source_fields),))


def test_download_verify_cache_and_reuse(served, registered, monkeypatch):
    server, name, digest, model = served
    monkeypatch.setenv("BEITV2_ZOO_URL_MAP", f"{UPSTREAM}={server.url}")
    record_name = registered(_record("test_download_tiny", f"{UPSTREAM}/{name}", sha256_prefix=digest[:8]))
    loaded = get_model(record_name, pretrained=True)
    assert server.state.requests == [f"/{name}"]
    target = cached_file(get_record(record_name).sources[0])
    assert target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == digest
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".incomplete")]
    x = image_batch(1)
    with torch.no_grad():
        assert max_abs_diff(loaded(x), model(x)) == 0.0
    get_model(record_name, pretrained=True)
    assert len(server.state.requests) == 1, "the second call must be served from the cache"


def test_wrong_hash_leaves_nothing_behind(served, registered, monkeypatch):
    server, name, digest, _ = served
    monkeypatch.setenv("BEITV2_ZOO_URL_MAP", f"{UPSTREAM}={server.url}")
    record_name = registered(_record("test_download_badhash", f"{UPSTREAM}/{name}", sha256="0" * 64))
    with pytest.raises(HashMismatchError, match=digest):
        get_model(record_name, pretrained=True)
    folder = cached_file(get_record(record_name).sources[0]).parent
    assert not folder.exists() or list(folder.iterdir()) == []


def test_http_error_names_url_cache_path_and_alternative(served, registered, monkeypatch):
    server, name, digest, _ = served
    server.state.fail_with = 503
    monkeypatch.setenv("BEITV2_ZOO_URL_MAP", f"{UPSTREAM}={server.url}")
    record_name = registered(_record("test_download_503", f"{UPSTREAM}/{name}", sha256_prefix=digest[:8]))
    with pytest.raises(WeightsDownloadError) as error:
        get_model(record_name, pretrained=True)
    message = str(error.value)
    assert "\n" not in message
    assert f"{server.url}/{name}: HTTP 503" in message
    assert str(cached_file(get_record(record_name).sources[0])) in message
    assert "--weights PATH" in message


def test_offline_mode_makes_no_request(served, registered, monkeypatch):
    server, name, digest, _ = served
    monkeypatch.setenv("BEITV2_ZOO_URL_MAP", f"{UPSTREAM}={server.url}")
    monkeypatch.setenv("BEITV2_ZOO_OFFLINE", "1")
    record_name = registered(_record("test_download_offline", f"{UPSTREAM}/{name}", sha256_prefix=digest[:8]))
    with pytest.raises(WeightsDownloadError, match="offline"):
        get_model(record_name, pretrained=True)
    assert server.state.requests == []


def test_pretrained_url_downloads_into_the_cache(served):
    server, name, digest, model = served
    loaded = get_model("test_beit_tiny", pretrained=f"{server.url}/{name}")
    x = image_batch(1)
    with torch.no_grad():
        assert max_abs_diff(loaded(x), model(x)) == 0.0
    assert server.state.requests == [f"/{name}"]


def test_pretrained_url_checks_the_hash_in_the_file_name(served):
    server, name, digest, _ = served
    wrong = name.replace(digest[:8], "deadbeef")
    (server.state.root / wrong).write_bytes((server.state.root / name).read_bytes())
    with pytest.raises(HashMismatchError, match="deadbeef"):
        get_model("test_beit_tiny", pretrained=f"{server.url}/{wrong}")


def test_record_without_weights_says_so():
    with pytest.raises(WeightsDownloadError, match="no published weights"):
        get_model("test_beit_tiny", pretrained=True)


def test_hub_source_offline_fails_without_network(monkeypatch, tmp_path):
    """timm's Hub weights go through huggingface_hub; offline, a missing file is a clear error."""
    monkeypatch.setenv("BEITV2_ZOO_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(WeightsDownloadError, match="hf-hub:timm/beitv2_base_patch16_224.in1k_ft_in1k"):
        get_model("beitv2_base_patch16_224.in1k_ft_in1k", pretrained=True)
