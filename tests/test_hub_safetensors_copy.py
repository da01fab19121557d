"""The canonical safetensors copy the cache keeps beside a downloaded ``.pth`` (``hub/copies.py``, ``checkpoint/cache_copy.py``).

Tiny checkpoints are served by a real HTTP server on 127.0.0.1 (``tests/http_server.py``)
under a registered record whose URL is rewritten to it (``BEITV2_ZOO_URL_MAP``). Each test
loads through ``get_model`` and compares with a load of the same ``.pth`` with copies off.
"""

import dataclasses
import errno
import hashlib
import json
import logging
import os
import stat
import threading
from pathlib import Path

import pytest
import torch

from beitv2_zoo.checkpoint import cache_copy
from beitv2_zoo.checkpoint import reading as checkpoint_module
from beitv2_zoo.resolve import DownloadOptions, source_file, weights_file
from beitv2_zoo import get_model, hub
from beitv2_zoo.checkpoint import read_checkpoint
from beitv2_zoo.cli import main
from beitv2_zoo.checkpoint.keymaps import canonical_to_mmpretrain
from beitv2_zoo.checkpoint.keymaps_pretrain import canonical_to_mmpretrain_pretrain, canonical_to_official_vqkd
from beitv2_zoo.hub import copies, list_cache, verify_entry
from beitv2_zoo.models import build_beit
from beitv2_zoo.weights import get_record
from beitv2_zoo.checkpoint.safetensors_io import read_header, save
from beitv2_zoo.weights.schema import Source

from .conftest import image_batch, randomize_
from .http_server import LocalServer

UPSTREAM = "https://weights.example.invalid/copies"


@dataclasses.dataclass
class Published:
    """A ``.pth`` served over HTTP under a registered record."""

    name: str  # the registered name
    file: str  # the served (and cached) file name
    digest: str
    server: LocalServer
    cache: Path

    @property
    def pth(self) -> Path:
        return self.cache / "checkpoints" / self.file

    @property
    def copy(self) -> Path:
        return copies.copy_path(self.pth)

    def load(self, **kwargs) -> torch.nn.Module:
        return get_model(self.name, pretrained=True, progress=False, **kwargs)


@pytest.fixture
def publish(tmp_path, registered, isolated_cache, monkeypatch):
    """``publish(raw, base='test_beit_tiny')`` serves ``torch.save(raw)`` as ``<stem>-<hash8>.pth`` and registers it."""
    folder = tmp_path / "served"
    folder.mkdir()
    with LocalServer(folder) as server:
        monkeypatch.setenv("BEITV2_ZOO_URL_MAP", f"{UPSTREAM}={server.url}")

        def add(raw: dict, base: str = "test_beit_tiny") -> Published:
            staging = folder / "staging.pth"
            torch.save(raw, staging)
            digest = hashlib.sha256(staging.read_bytes()).hexdigest()
            file = f"{base}-{digest[:8]}.pth"
            staging.rename(folder / file)
            record = dataclasses.replace(get_record(base), name=f"test_copy_{base}_{digest[:6]}", aliases=(),
                                         sources=(Source(url=f"{UPSTREAM}/{file}", sha256=digest, host="openmmlab"),))
            return Published(registered(record), file, digest, server, isolated_cache)

        yield add


CLASSES = [f"class {i}" for i in range(1000)]


@pytest.fixture
def mm(publish):
    """A tiny classifier as an mmpretrain ``.pth`` with class names in its ``meta``."""
    model = randomize_(build_beit("test_beit_tiny")).eval()
    raw = {"meta": {"dataset_meta": {"classes": CLASSES}}, "state_dict": canonical_to_mmpretrain(model.state_dict())}
    return publish(raw)


def assert_identical(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key
    assert a.class_names == b.class_names


def rewrite_copy(published: Published, **metadata_changes: str) -> None:
    """Rewrite the copy with changed metadata and a matching ``.sha256`` file (a sound but different copy)."""
    header = read_header(published.copy)
    tensors = {k: v.clone() for k, v in read_checkpoint(published.copy).state_dict.items()}
    save(published.copy, tensors, {**header.metadata, **metadata_changes})
    digest = hashlib.sha256(published.copy.read_bytes()).hexdigest()
    copies.hash_path(published.copy).write_text(f"{digest}  {published.copy.name}\n")


# ---------------------------------------------------------------- made once, then used instead of the .pth
def test_a_copy_is_written_after_download_and_loads_bit_identical(mm):
    via_copy = mm.load()
    assert mm.pth.is_file() and mm.copy.is_file()
    recorded = copies.hash_path(mm.copy).read_text().split()
    assert recorded == [hashlib.sha256(mm.copy.read_bytes()).hexdigest(), mm.copy.name]
    meta = read_header(mm.copy).metadata
    assert meta["cache_copy_of"] == mm.file and meta["source_sha256"] == mm.digest
    assert meta["source_layout"] == "mmpretrain" and meta["layout"] == "canonical"
    assert meta["source"] == f"{UPSTREAM}/{mm.file}" and meta["source_size"] == str(mm.pth.stat().st_size)
    assert meta["written_by"].startswith("beitv2_zoo ") and json.loads(meta["classes"]) == CLASSES
    assert stat.S_IMODE(mm.copy.stat().st_mode) == stat.S_IMODE(mm.pth.stat().st_mode)  # as readable as the .pth

    from_pth = mm.load(safetensors_copy=False)
    assert_identical(via_copy, from_pth)
    with torch.no_grad():  # the copy's tensors are 64-byte aligned: the mapped model computes the same bits
        assert torch.equal(via_copy(image_batch(1)), from_pth(image_batch(1)))
    assert via_copy.class_names == tuple(CLASSES)
    assert_identical(mm.load(), from_pth)  # the second load reads the copy only
    assert_identical(get_model(mm.name, pretrained=mm.pth), from_pth)  # the file itself, outside the hub


@pytest.fixture
def spies(monkeypatch):
    """Paths hashed by the hub and pickles opened by the loader."""
    seen = {"hashed": [], "unpickled": []}
    real_hash, real_unpickle = hub.cache.sha256_of, checkpoint_module.load_pickle_checkpoint

    def hashing(path):
        seen["hashed"].append(Path(path))
        return real_hash(path)

    def unpickling(path):
        seen["unpickled"].append(Path(path))
        return real_unpickle(path)

    for module in (hub.download, hub.copies, cache_copy):
        monkeypatch.setattr(module, "sha256_of", hashing)
    monkeypatch.setattr(checkpoint_module, "load_pickle_checkpoint", unpickling)
    return seen


def test_a_second_load_neither_hashes_nor_opens_the_pth(mm, spies):
    first = mm.load()
    assert mm.pth in spies["hashed"] and spies["unpickled"] == [mm.pth]  # verified, then converted once
    spies["hashed"].clear()
    spies["unpickled"].clear()
    requests = len(mm.server.state.log)

    second = mm.load()
    assert spies["hashed"] == [mm.copy], "only the copy is verified"
    assert spies["unpickled"] == []
    assert len(mm.server.state.log) == requests
    assert_identical(first, second)


def test_switched_off_by_the_environment_and_on_by_the_keyword(mm, monkeypatch, spies):
    monkeypatch.setenv("BEITV2_ZOO_SAFETENSORS_COPY", "0")
    mm.load()
    assert not mm.copy.exists() and spies["unpickled"] == [mm.pth]
    assert not copies.hash_path(mm.copy).exists()
    mm.load(safetensors_copy=True)  # the keyword wins over the variable
    assert mm.copy.is_file()
    spies["unpickled"].clear()
    mm.load()  # off again: an existing copy is ignored, the .pth is loaded as before
    assert spies["unpickled"] == [mm.pth]


def test_download_and_convert_do_not_return_the_copy(mm, capsys):
    mm.load()
    assert hub.fetch_weights(get_record(mm.name)) == mm.pth
    assert main(["download", mm.name]) == 0
    assert f"{mm.pth} (" in capsys.readouterr().out


# ---------------------------------------------------------------- damaged or stale copies are replaced
def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "no hash file", "garbage"])
def test_a_damaged_copy_is_rebuilt_with_a_warning(mm, damage, caplog):
    reference = mm.load(safetensors_copy=False)
    mm.load()
    if damage == "flipped byte":
        _flip_a_byte(mm.copy)
    elif damage == "truncated":
        mm.copy.write_bytes(mm.copy.read_bytes()[:-100])
    elif damage == "no hash file":
        copies.hash_path(mm.copy).unlink()
    else:
        mm.copy.write_bytes(b"not a safetensors file at all")
    with caplog.at_level(logging.WARNING, logger="beitv2_zoo.hub"):
        again = mm.load()
    assert "deleting it and converting" in caplog.text and mm.copy.name in caplog.text
    assert_identical(again, reference)
    assert copies.inspect_copy(mm.pth).usable


@pytest.mark.parametrize("change", ["source hash", "version", "source name"])
def test_a_copy_of_another_file_or_version_is_rebuilt(mm, change, caplog):
    reference = mm.load(safetensors_copy=False)
    mm.load()
    metadata = {"source hash": {"source_sha256": "0" * 64}, "version": {"written_by": "beitv2_zoo 0.0.0"},
                "source name": {"cache_copy_of": "another.pth"}}[change]
    rewrite_copy(mm, **metadata)
    assert not copies.inspect_copy(mm.pth, get_record(mm.name).sources).usable
    with caplog.at_level(logging.WARNING, logger="beitv2_zoo.hub"):
        again = mm.load()
    assert "deleting it and converting" in caplog.text
    assert_identical(again, reference)
    assert read_header(mm.copy).metadata["source_sha256"] == mm.digest


def test_a_copy_whose_pth_was_replaced_is_not_used(mm, caplog):
    """A .pth that no longer matches (its size changed) is re-verified, downloaded again, and converted again."""
    mm.load()
    mm.pth.write_bytes(mm.pth.read_bytes() + b"extra")
    with caplog.at_level(logging.WARNING, logger="beitv2_zoo.hub"):
        again = mm.load()
    assert "downloading it again" in caplog.text  # the .pth check of today
    assert hashlib.sha256(mm.pth.read_bytes()).hexdigest() == mm.digest
    assert_identical(again, mm.load(safetensors_copy=False))
    assert copies.inspect_copy(mm.pth).usable


# ---------------------------------------------------------------- a copy that cannot be written never fails a load
def test_a_failing_writer_falls_back_to_the_pth(mm, monkeypatch, caplog):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    real_save = cache_copy.save_aligned
    monkeypatch.setattr(cache_copy, "save_aligned", full_disk)
    with caplog.at_level(logging.WARNING, logger="beitv2_zoo"):
        model = mm.load()
    assert "could not keep a safetensors copy" in caplog.text and "no space left" in caplog.text
    assert sorted(p.name for p in mm.pth.parent.iterdir()) == [mm.file]
    monkeypatch.setattr(cache_copy, "save_aligned", real_save)
    assert_identical(model, mm.load(safetensors_copy=False))
    mm.load()  # the next load, with room again, makes the copy
    assert copies.inspect_copy(mm.pth).usable


def test_too_little_free_space_for_the_copy_falls_back(mm, monkeypatch, caplog):
    mm.load(safetensors_copy=False)  # the .pth is cached
    monkeypatch.setattr(hub.disk, "_free_bytes", lambda folder: 1000)
    with caplog.at_level(logging.WARNING, logger="beitv2_zoo.hub"):
        model = mm.load()
    assert "could not keep a safetensors copy" in caplog.text
    assert not mm.copy.exists() and model.class_names == tuple(CLASSES)


_READ_ONLY_LOADER = """
import json, logging, os, sys
from beitv2_zoo.checkpoint import read_checkpoint
from beitv2_zoo.resolve import DownloadOptions, source_file
from beitv2_zoo.weights.schema import Source

url, digest, warm, caches = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
for _ in range(2):  # convert, then reuse, in a writable cache: every lazy import is done before rights are dropped
    read_checkpoint(source_file(Source(url=url, sha256=digest), DownloadOptions(cache_dir=warm, offline=True)))
if os.geteuid() == 0:  # root may write anywhere: become nobody, for whom the cache is read-only
    os.setgid(65534)
    os.setuid(65534)
warnings = []
handler = logging.Handler(logging.WARNING)
handler.emit = lambda record: warnings.append(record.getMessage())
logging.getLogger("beitv2_zoo").addHandler(handler)
report = []
for cache in caches:
    warnings.clear()
    path = source_file(Source(url=url, sha256=digest), DownloadOptions(cache_dir=cache, offline=True))
    checkpoint = read_checkpoint(path)
    report.append(dict(name=path.name, warnings=list(warnings), tensors=len(checkpoint.state_dict),
                       classes=len(checkpoint.classes or ())))
print(json.dumps(report))
"""


@pytest.mark.skipif(os.name != "posix", reason="uses POSIX permissions")
def test_a_read_only_cache_uses_its_copy_or_falls_back_to_the_pth(mm):
    """A real read-only cache (another user's, in another process): a cached copy is used; without
    one, the .pth loads with a warning and nothing is written."""
    import shutil
    import subprocess
    import sys
    import tempfile

    mm.load()
    base = Path(tempfile.mkdtemp(prefix="beitv2-ro-copy-"))  # outside pytest's private tmp, so another user can enter
    with_copy, without_copy, warm = base / "with-copy", base / "without-copy", base / "warm"
    try:
        base.chmod(0o755)
        shutil.copytree(mm.cache, with_copy)
        for folder in (without_copy, warm):
            shutil.copytree(mm.cache, folder)
            copies.remove_copy(folder / "checkpoints" / mm.file)
        for folder in (with_copy, without_copy):
            for path in sorted(folder.rglob("*"), reverse=True) + [folder]:
                path.chmod(0o555 if path.is_dir() else 0o444)
        out = subprocess.run([sys.executable, "-c", _READ_ONLY_LOADER, f"{UPSTREAM}/{mm.file}", mm.digest,
                              str(warm), str(with_copy), str(without_copy)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        used_copy, fell_back = json.loads(out.stdout.strip().splitlines()[-1])
        assert used_copy == dict(name=mm.copy.name, warnings=[], tensors=used_copy["tensors"], classes=1000)
        assert fell_back["name"] == mm.file and fell_back["classes"] == 1000
        assert fell_back["tensors"] == used_copy["tensors"]
        assert len(fell_back["warnings"]) == 1 and "could not keep a safetensors copy" in fell_back["warnings"][0]
        assert "permission denied" in fell_back["warnings"][0]
        assert sorted(p.name for p in (without_copy / "checkpoints").iterdir()) == [mm.file]
    finally:
        for path in base.rglob("*"):
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------- concurrency, other layouts
def test_threads_loading_at_once_convert_once(mm, monkeypatch):
    writes = []
    real_write = cache_copy.write_copy

    def counting(*args, **kwargs):
        writes.append(threading.get_ident())
        return real_write(*args, **kwargs)

    monkeypatch.setattr(cache_copy, "write_copy", counting)
    paths, errors = [], []

    def fetch():
        try:
            paths.append(weights_file(True, get_record(mm.name), DownloadOptions(progress=False)).path)
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and paths == [mm.copy] * 3 and len(writes) == 1


def _mim_raw() -> dict:
    model = randomize_(get_model("test_beitv2_mim_tiny"))
    return {"meta": {}, "state_dict": canonical_to_mmpretrain_pretrain(model.state_dict())}


def _tokenizer_raw() -> dict:
    return {"model": canonical_to_official_vqkd(randomize_(get_model("test_vqkd_tiny")).state_dict())}


@pytest.mark.parametrize(("base", "make"), [("test_beitv2_mim_tiny", _mim_raw), ("test_vqkd_tiny", _tokenizer_raw)])
def test_pretraining_and_tokenizer_files_load_the_same_through_the_copy(publish, base, make):
    published = publish(make(), base=base)
    via_copy = published.load()
    assert published.copy.is_file()
    assert_identical(via_copy, published.load(safetensors_copy=False))


def test_a_safetensors_download_gets_no_copy(tmp_path):
    model = randomize_(build_beit("test_beit_tiny"))
    staging = tmp_path / "tiny.safetensors"
    save(staging, model.state_dict())
    data = staging.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    folder = tmp_path / "st"
    folder.mkdir()
    (folder / "tiny.safetensors").write_bytes(data)
    source = Source(url=f"{UPSTREAM}/tiny.safetensors", sha256=digest, host="openmmlab")
    with LocalServer(folder) as server:
        path = source_file(source, DownloadOptions(url_map={UPSTREAM: server.url}, progress=False))
    assert path.name == "tiny.safetensors"
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.safetensors"]


# ---------------------------------------------------------------- beitv2-zoo cache list | verify | clean
def test_cache_commands_list_verify_and_clean_copies(mm, capsys):
    mm.load()
    entries = {e.path.name: e for e in list_cache()}
    assert set(entries) == {mm.file, mm.copy.name}  # the .sha256 file belongs to the copy's entry
    copy_entry = entries[mm.copy.name]
    assert copy_entry.copy_of == mm.file and copy_entry.names == (mm.name,) and not copy_entry.partial
    assert copy_entry.size == mm.copy.stat().st_size
    assert verify_entry(copy_entry)[0] == "ok"

    assert main(["cache", "list"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if mm.copy.name in line)
    assert " copy " in line and f"safetensors copy of {mm.file}" in line
    assert f"{mm.copy.stat().st_size / 1024**2:.1f} MiB" in line

    assert main(["cache", "verify"]) == 0
    assert sum(line.startswith("OK") for line in capsys.readouterr().out.splitlines()) == 2
    _flip_a_byte(mm.copy)
    assert main(["cache", "verify"]) == 1
    assert any(line.startswith("BAD") and mm.copy.name in line for line in capsys.readouterr().out.splitlines())

    assert main(["cache", "clean"]) == 0  # a copy with its .pth is not a leftover
    assert mm.copy.exists()
    mm.pth.unlink()
    assert verify_entry(next(e for e in list_cache() if e.copy_of))[0] == "stale"
    assert main(["cache", "clean"]) == 0  # ... but once the .pth is gone, it is
    assert "removed" in capsys.readouterr().out
    assert list(mm.pth.parent.iterdir()) == []

    mm.load()
    (mm.pth.parent / f"{mm.copy.name}.tmp-0000abcd.incomplete").write_bytes(b"half")
    assert [e.partial for e in list_cache() if e.path.name.endswith(".incomplete")] == [True]
    assert main(["cache", "clean", "--all"]) == 0
    assert list(mm.pth.parent.iterdir()) == []
