"""``beitv2-zoo download | cache | convert`` and the canonical safetensors files ``convert`` writes."""

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from beitv2_zoo import get_model
from beitv2_zoo.checkpoint import read_checkpoint
from beitv2_zoo.cli import main
from beitv2_zoo.checkpoint.keymaps import canonical_to_mmpretrain
from beitv2_zoo.api import convert_checkpoint
from beitv2_zoo.errors import UnsafeCheckpointError
from beitv2_zoo.hub import list_cache
from beitv2_zoo.models import build_beit
from beitv2_zoo.weights import get_record, register, unregister
from beitv2_zoo.checkpoint.safetensors_io import read_header
from beitv2_zoo.weights.schema import Source

from .conftest import image_batch, max_abs_diff, randomize_
from .http_server import LocalServer

UPSTREAM = "https://weights.example.invalid/releases"
CLASSES = [f"class {i}" for i in range(1000)]


@pytest.fixture(scope="module")
def tiny():
    return randomize_(build_beit("test_beit_tiny")).eval()


@pytest.fixture(scope="module")
def sources(tiny, tmp_path_factory):
    """The same tiny weights in the three layouts: mmpretrain and official ``.pth``, timm ``.safetensors``."""
    folder = tmp_path_factory.mktemp("layouts")
    state = tiny.state_dict()
    paths = {"mmpretrain": folder / "mm-tiny.pth", "official": folder / "official-tiny.pth",
             "timm": folder / "timm-tiny.safetensors"}
    torch.save({"meta": {"dataset_meta": {"classes": CLASSES}}, "state_dict": canonical_to_mmpretrain(state)},
               paths["mmpretrain"])
    index = {f"blocks.{i}.attn.relative_position_index": torch.zeros(1, dtype=torch.long) for i in range(len(tiny.blocks))}
    torch.save({"model": {**state, **index}}, paths["official"])
    save_file(state, paths["timm"])
    return paths


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> float:
    x = image_batch(1)
    with torch.no_grad():
        return max_abs_diff(a(x), b(x))


@pytest.mark.parametrize("layout", ["mmpretrain", "official", "timm"])
def test_convert_writes_canonical_safetensors_that_get_model_loads(sources, tiny, tmp_path, layout, capsys):
    dst = tmp_path / f"{layout}.safetensors"
    assert main(["convert", str(sources[layout]), str(dst)]) == 0
    assert f"wrote {dst}" in capsys.readouterr().out
    header = read_header(dst)
    meta = header.metadata
    assert meta["format"] == "pt" and meta["beitv2_zoo_format"] == "1" and meta["format_version"] == "1" and meta["layout"] == "canonical"
    assert meta["source"] == sources[layout].name and meta["source_layout"] == layout
    assert meta["source_sha256"] == hashlib.sha256(sources[layout].read_bytes()).hexdigest()
    assert json.loads(meta["model_settings"])["embed_dim"] == tiny.embed_dim
    assert set(header.tensors) == set(tiny.state_dict())

    checkpoint = read_checkpoint(dst)
    assert checkpoint.layout == "canonical"
    by_name = get_model("test_beit_tiny", pretrained=dst)
    by_path = get_model(dst)
    assert _same_outputs(by_name, tiny) < 1e-5 and _same_outputs(by_path, tiny) < 1e-5
    if layout == "mmpretrain":  # class names in the mmpretrain meta travel in the metadata
        assert json.loads(meta["classes"]) == CLASSES and by_path.class_names == tuple(CLASSES)


def test_convert_a_registered_name_fetches_its_weights(sources, tmp_path):
    digest = hashlib.sha256(sources["mmpretrain"].read_bytes()).hexdigest()
    name = f"tiny-{digest[:8]}.pth"
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / name).write_bytes(sources["mmpretrain"].read_bytes())
    record = dataclasses.replace(get_record("test_beit_tiny"), name="test_convert_named", aliases=(),
                                 sources=(Source(url=f"{UPSTREAM}/{name}", sha256=digest, host="openmmlab"),))
    register(record)
    try:
        with LocalServer(folder) as server:
            result = convert_checkpoint(record.name, tmp_path / "named.safetensors", url_map={UPSTREAM: server.url})
        assert result.metadata["model_name"] == record.name and result.metadata["architecture"] == record.architecture
        assert result.metadata["source_sha256"] == digest and result.metadata["source_layout"] == "mmpretrain"
        assert result.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest()
    finally:
        unregister(record.name)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_convert_refuses_a_pickle_that_would_run_code(tmp_path, capsys):
    marker, evil, dst = tmp_path / "pwned", tmp_path / "evil.pth", tmp_path / "out.safetensors"
    torch.save({"state_dict": {"x": torch.ones(1)}, "payload": _RunsCode(marker)}, evil)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        convert_checkpoint(evil, dst)
    assert main(["convert", str(evil), str(dst)]) == 1
    assert "refusing to load" in capsys.readouterr().err
    assert not marker.exists() and not dst.exists()


def test_convert_errors(tmp_path, sources, capsys):
    assert main(["convert", str(tmp_path / "nothing.pth"), str(tmp_path / "x.safetensors")]) == 1
    assert "neither a checkpoint file nor a registered name" in capsys.readouterr().err
    timm_file = sources["timm"]
    assert main(["convert", str(timm_file), str(timm_file)]) == 1
    assert "is the source file itself" in capsys.readouterr().err


# ---------------------------------------------------------------- download and cache
@pytest.fixture
def served_record(tmp_path, sources, monkeypatch):
    """A registered record whose single source is served locally (through BEITV2_ZOO_URL_MAP)."""
    data = sources["official"].read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    name = f"official-tiny-{digest[:8]}.pth"
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / name).write_bytes(data)
    record = dataclasses.replace(get_record("test_beit_tiny"), name="test_cli_download", aliases=(),
                                 sources=(Source(url=f"{UPSTREAM}/{name}", sha256=digest, host="official"),))
    register(record)
    with LocalServer(folder) as server:
        monkeypatch.setenv("BEITV2_ZOO_URL_MAP", f"{UPSTREAM}={server.url}")
        yield record, name, digest, data
    unregister(record.name)


def test_download_prints_path_size_and_hash(served_record, isolated_cache, capsys):
    record, name, digest, data = served_record
    assert main(["download", record.name, "--source", "official"]) == 0
    out = capsys.readouterr().out
    assert f"{record.name}: {isolated_cache / 'checkpoints' / name} ({len(data):,} bytes" in out
    assert f"sha256 {digest}" in out
    assert main(["download", record.name, "--source", "hf-hub"]) == 1
    assert main(["download", "no_such_model"]) == 1
    err = capsys.readouterr().err
    assert "has no source 'hf-hub'" in err and "unknown model name" in err


def test_cache_list_verify_and_clean(served_record, isolated_cache, capsys):
    record, name, digest, data = served_record
    assert main(["download", record.name]) == 0
    folder = isolated_cache / "checkpoints"
    (folder / f"{name}.tmp-0000abcd.incomplete").write_bytes(b"half")
    (folder / f"other_20240101-{'0' * 8}.pth").write_bytes(b"not the file its name promises")
    capsys.readouterr()

    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert f"cache: {folder}" in out and record.name in out and "partial" in out and "3 files" in out

    assert main(["cache", "verify"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("OK") and name in line for line in lines)
    assert any(line.startswith("BAD") and "other_20240101-00000000.pth" in line for line in lines)
    assert any(line.startswith("PARTIAL") for line in lines)

    assert main(["cache", "clean"]) == 0
    assert "removed" in capsys.readouterr().out
    assert sorted(e.path.name for e in list_cache()) == sorted([name, f"other_20240101-{'0' * 8}.pth"])
    assert main(["cache", "clean", "--all"]) == 0
    assert list_cache() == []


def test_every_result_printing_hub_command_has_json(served_record, isolated_cache, tmp_path, capsys):
    """Issue 15 item 5: --json on download, cache list / verify / clean and convert."""
    import json

    record, name, digest, data = served_record
    assert main(["download", record.name, "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["name"] == record.name and row["sha256"] == hashlib.sha256(data).hexdigest()
    assert main(["cache", "list", "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(r["path"]).name for r in listed] == [name] and listed[0]["names"] == [record.name]
    assert main(["cache", "verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "ok"
    assert main(["convert", row["path"], str(tmp_path / "out.safetensors"), "--json"]) == 0
    converted = json.loads(capsys.readouterr().out)
    assert converted["metadata"]["format"] == "pt" and Path(converted["path"]).is_file()
    assert main(["cache", "clean", "--all", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["removed"].endswith(name)
