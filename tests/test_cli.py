"""The ``beitv2-zoo`` command."""

import json
import os
import subprocess
import sys

import pytest
from safetensors.torch import save_file

from beitv2_zoo.cli import DEFAULT_MODEL, main
from beitv2_zoo.weights.labels import imagenet1k_classes
from beitv2_zoo.models import build_beit
from beitv2_zoo.version import __version__

from .conftest import EXAMPLE_IMAGE, randomize_


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "tiny.safetensors"
    save_file(randomize_(build_beit("test_beit_tiny")).state_dict(), path)
    return path


def test_list_and_pattern(capsys):
    assert main(["list", "*beitv2_large*"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]  # a name, then its marks
    assert "beitv2_large_patch16_224_pt1k_ft21kto1k" in names
    assert all("beitv2_large" in name for name in names)


def test_info(capsys):
    assert main(["info", DEFAULT_MODEL]) == 0
    out = capsys.readouterr().out
    assert "86,530,984 params" in out and "73e11905" in out and "86.47" in out
    assert main(["info", DEFAULT_MODEL, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["num_classes"] == 1000 and record["preprocessing"]["resize_size"] == 256


def test_unknown_name_is_one_error_line(capsys):
    assert main(["info", "beit-base-p16_beitv2-in21k-pre_3rdparty"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model name") and DEFAULT_MODEL in err


def test_predict_prints_top5(capsys, tiny_weights):
    assert main(["predict", str(EXAMPLE_IMAGE), "--model", "test_beit_tiny", "--weights", str(tiny_weights)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(str(EXAMPLE_IMAGE))
    assert len(lines) == 6 and lines[1].lstrip().startswith("1.")
    assert any(name in lines[1] for name in imagenet1k_classes())


def test_predict_folder_as_json(capsys, tiny_weights, photo_paths):
    folder = photo_paths["chelsea.png"].parent
    assert main(["predict", str(folder), "--model", "test_beit_tiny", "--weights", str(tiny_weights),
                 "--json", "--topk", "3", "--batch-size", "4"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == len(photo_paths)
    assert all(len(row["topk"]) == 3 and row["topk"][0]["label"] == row["pred_label"] for row in rows)


def _run(*args, **env):
    return subprocess.run([sys.executable, "-m", "beitv2_zoo", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_version_and_module_entry_point():
    result = _run("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_predict_without_reachable_weights_fails_in_one_clear_line(tmp_path):
    result = _run("predict", str(EXAMPLE_IMAGE), BEITV2_ZOO_CACHE=str(tmp_path), BEITV2_ZOO_OFFLINE="1")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert "https://download.openmmlab.com/mmclassification/v0/beit/beitv2-base_3rdparty_in1k_20221114-73e11905.pth" in line
    assert str(tmp_path / "checkpoints" / "beitv2-base_3rdparty_in1k_20221114-73e11905.pth") in line
    assert "--weights PATH" in line


def test_predict_folder_skips_unreadable_images(capsys, tiny_weights, photo_paths, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.png").write_bytes(photo_paths["coffee.png"].read_bytes())
    (folder / "bad.jpg").write_bytes(b"not a jpeg at all")
    assert main(["predict", str(folder), "--model", "test_beit_tiny", "--weights", str(tiny_weights), "--json"]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [row["image"].endswith("good.png") for row in rows] == [True]
    assert "skipped 1 unreadable image(s) of 2" in captured.err
