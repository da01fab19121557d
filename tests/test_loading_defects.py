"""The loading defects of 0.1 (issue 11, item 4), each through the public API or the command line.

Every test here failed on 0.1: a user's head replaced by a random ImageNet head, a missing
``pred_class``, cache entries shared between URLs, a date read as a hash, a live model that
followed edits of its file (or died of SIGBUS when it was truncated), a zip bomb unpacked
before the error, half-precision files that failed at forward, NaN weights loaded silently,
and a 249 KB mismatch report.
"""

import io
import json
import logging
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from beitv2_zoo import get_model, hub, inference_model
from beitv2_zoo.cli import main
from beitv2_zoo.errors import CheckpointError, CheckpointMismatchError
from beitv2_zoo.models import build_beit

from .conftest import EXAMPLE_IMAGE, image_batch, randomize_
from .http_server import LocalServer, _Handler

TINY = "test_beit_tiny"


def tiny_state(num_classes: int = 1000, seed: int = 0) -> dict[str, torch.Tensor]:
    return randomize_(build_beit(TINY, num_classes=num_classes), seed=seed).state_dict()


def save_safetensors(path: Path, state: dict[str, torch.Tensor], classes: list[str] | None = None) -> Path:
    metadata = {"format": "pt", **({"classes": json.dumps(classes)} if classes else {})}
    save_file({k: v.contiguous() for k, v in state.items() if not k.endswith("relative_position_index")},
              str(path), metadata=metadata)
    return path


# ---------------------------------------------------------------- a user's head and class names
def test_a_files_own_head_is_kept_by_name(tmp_path):
    path = tmp_path / "my_10_class.pth"
    state = tiny_state(num_classes=10)
    torch.save(state, path)
    model = get_model(TINY, pretrained=path)
    assert model.num_classes == 10 and torch.equal(model.head.weight, state["head.weight"])
    assert model.class_names is None  # a plain state dict names no classes, and 10 is no ImageNet
    prediction = inference_model(model, EXAMPLE_IMAGE)
    assert prediction["pred_class"] == str(prediction["pred_label"]) and len(prediction["pred_scores"]) == 10


def test_num_classes_given_explicitly_still_replaces_the_head(tmp_path, caplog):
    path = tmp_path / "my_10_class.pth"
    torch.save(tiny_state(num_classes=10), path)
    with caplog.at_level(logging.WARNING):
        model = get_model(TINY, pretrained=path, num_classes=5)
    assert model.num_classes == 5 and "dropped the checkpoint's 10-class head" in caplog.text


def test_class_names_travel_with_a_saved_model(tmp_path):
    from beitv2_zoo.api import save_checkpoint

    model = get_model(TINY, num_classes=3)
    model.class_names = ("cat", "dog", "bird")
    save_checkpoint(model, tmp_path / "pets.safetensors")
    again = get_model(TINY, pretrained=tmp_path / "pets.safetensors")
    assert again.num_classes == 3 and again.class_names == ("cat", "dog", "bird")
    assert inference_model(again, EXAMPLE_IMAGE)["pred_class"] in {"cat", "dog", "bird"}
    assert get_model(tmp_path / "pets.safetensors").class_names == ("cat", "dog", "bird")


def test_predict_with_a_10_class_file_prints_its_labels_and_says_so(tmp_path, capsys):
    path = save_safetensors(tmp_path / "digits.safetensors", tiny_state(num_classes=10), classes=list("0123456789"))
    assert main(["predict", str(EXAMPLE_IMAGE), "--model", TINY, "--weights", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out.splitlines()[-1])
    assert result["pred_class"] in set("0123456789") and len(result["topk"]) == 5
    assert "10-class head" in captured.err and "digits.safetensors" in captured.err


# ---------------------------------------------------------------- cache identity
class _QueryHandler(_Handler):
    """Serves ``files[<path with query>]``."""

    files: dict[str, bytes] = {}

    def find(self, path):
        return (self.files[path], {}) if path in self.files else (404, {})


def _pth_bytes(state) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def test_two_urls_ending_in_the_same_name_never_share_a_cache_entry(isolated_cache):
    first, second = tiny_state(seed=1), tiny_state(seed=2)
    files = {"/a/x/model.pth": _pth_bytes(first), "/b/y/model.pth": _pth_bytes(second)}
    with LocalServer(None, handler=_QueryHandler, files=files) as server:
        one = get_model(TINY, pretrained=f"{server.url}/a/x/model.pth")
        two = get_model(TINY, pretrained=f"{server.url}/b/y/model.pth")
    assert torch.equal(one.cls_token, first["cls_token"]) and torch.equal(two.cls_token, second["cls_token"])


def test_a_url_without_a_file_name_gets_an_entry_and_leaves_the_cache_usable(isolated_cache):
    state = tiny_state(seed=3)
    files = {"/?id=1": _pth_bytes(state), "/other.pth": _pth_bytes(tiny_state(seed=4))}
    with LocalServer(None, handler=_QueryHandler, files=files) as server:
        model = get_model(TINY, pretrained=f"{server.url}/?id=1")
        assert (isolated_cache / "checkpoints").is_dir()
        get_model(TINY, pretrained=f"{server.url}/other.pth")  # later downloads still work
    assert torch.equal(model.cls_token, state["cls_token"])


def test_digits_in_a_file_name_are_not_a_hash(isolated_cache):
    files = {"/beit-finetune-20240101.pth": _pth_bytes(tiny_state(seed=5))}
    with LocalServer(None, handler=_QueryHandler, files=files) as server:
        path = hub.fetch_url(f"{server.url}/beit-finetune-20240101.pth", progress=False)
    assert path.is_file() and torch.equal(torch.load(path, weights_only=True)["cls_token"], tiny_state(seed=5)["cls_token"])


# ---------------------------------------------------------------- user files are never mapped
def test_a_loaded_model_ignores_later_edits_of_its_safetensors_file(tmp_path):
    path = save_safetensors(tmp_path / "mine.safetensors", tiny_state(seed=6))
    model = get_model(TINY, pretrained=path)
    x = image_batch(1)
    with torch.no_grad():
        before = model(x)
    save_safetensors(tmp_path / "other.safetensors", tiny_state(seed=7))
    with path.open("r+b") as file:  # rewritten in place, as cp or rsync --inplace would
        file.write((tmp_path / "other.safetensors").read_bytes())
    with torch.no_grad():
        assert torch.equal(model(x), before)


_TRUNCATE_AFTER_LOAD = """
import sys, torch
from beitv2_zoo import get_model
path = sys.argv[1]
model = get_model('test_beit_tiny', pretrained=path)
with open(path, 'r+b') as f:
    f.truncate(64)
with torch.no_grad():
    print(float(model(torch.zeros(1, 3, 224, 224)).sum()))
"""


def test_truncating_a_loaded_safetensors_file_does_not_kill_the_process(tmp_path):
    path = save_safetensors(tmp_path / "mine.safetensors", tiny_state(seed=8))
    done = subprocess.run([sys.executable, "-c", _TRUNCATE_AFTER_LOAD, str(path)], capture_output=True, text=True,
                          timeout=120, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]


# ---------------------------------------------------------------- a zip bomb is refused unopened
def test_a_compressed_member_larger_than_the_file_is_refused_from_its_declared_size(tmp_path):
    plain = tmp_path / "plain.pth"
    torch.save(tiny_state(), plain)
    bomb = tmp_path / "bomb.pth"
    bomb.write_bytes(plain.read_bytes())
    prefix = zipfile.ZipFile(plain).namelist()[0].split("/")[0]
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as target:
        with target.open(f"{prefix}/data/huge", "w", force_zip64=True) as member:
            chunk = bytes(1 << 20)
            for _ in range(256):  # 256 MiB of zeros: about 250 KB compressed
                member.write(chunk)
    assert bomb.stat().st_size < 8 << 20
    with pytest.raises(CheckpointError, match="declare"):
        get_model(TINY, pretrained=bomb)


# ---------------------------------------------------------------- dtypes and non-finite values
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_a_file_in_another_float_type_gives_a_float32_model(tmp_path, dtype, caplog):
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tiny_state(seed=9).items()}
    path = save_safetensors(tmp_path / f"{dtype}.safetensors", state)
    with caplog.at_level(logging.INFO, logger="beitv2_zoo"):
        model = get_model(TINY, pretrained=path)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert "converting them to float32" in caplog.text
    with torch.no_grad():
        assert torch.isfinite(model(image_batch(1))).all()


def test_a_file_mixing_dtypes_is_converted_and_the_requested_dtype_wins(tmp_path):
    state = tiny_state(seed=10)
    state = {k: v.half() if i % 2 and v.is_floating_point() else v for i, (k, v) in enumerate(state.items())}
    path = save_safetensors(tmp_path / "mixed.safetensors", state)
    assert {p.dtype for p in get_model(TINY, pretrained=path).parameters()} == {torch.float32}
    model = get_model(TINY, pretrained=path, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    with torch.no_grad():
        model(image_batch(1).bfloat16())


def test_non_finite_weights_are_named_at_load(tmp_path):
    state = tiny_state(seed=11)
    state["blocks.1.mlp.fc1.weight"][0, 0] = float("nan")
    state["head.bias"][3] = float("inf")
    path = save_safetensors(tmp_path / "nan.safetensors", state)
    with pytest.raises(CheckpointError, match=r"blocks\.1\.mlp\.fc1\.weight.*|head\.bias") as error:
        get_model(TINY, pretrained=path)
    assert "blocks.1.mlp.fc1.weight" in str(error.value) and "head.bias" in str(error.value)


# ---------------------------------------------------------------- a readable mismatch report
def test_a_mismatch_report_stays_short_for_twenty_thousand_keys(tmp_path):
    state = tiny_state()
    state.update({f"extra.{i}.weight": torch.zeros(1) for i in range(20_000)})
    path = save_safetensors(tmp_path / "noisy.safetensors", state)
    with pytest.raises(CheckpointMismatchError) as error:
        get_model(TINY, pretrained=path)
    message = str(error.value)
    assert "20000 unexpected" in message and "… and 19970 more" in message
    assert len(message) < 4000 and message.count("\n") < 50


def test_large_finite_weights_are_not_taken_for_infinity():
    """The finiteness check screens by sums: a sum that overflows must not make finite tensors an error."""
    from beitv2_zoo.checkpoint import check_finite

    check_finite({"huge": torch.full((8,), 3e38), "half": torch.full((8,), 6e4, dtype=torch.float16)})
    with pytest.raises(CheckpointError, match="nan_here"):
        check_finite({"nan_here": torch.tensor([1.0, float("nan")]), "fine": torch.ones(2)})
