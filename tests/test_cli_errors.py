"""The command line under bad arguments and odd files (issue 12, items 12–15): one line on stderr,
exit status 2 for a bad argument and 1 for a failure, and output written only where the user said."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from beitv2_zoo import get_model
from beitv2_zoo.cli import main

from .conftest import EXAMPLE_IMAGE

TINY = "test_beit_tiny"


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "tiny.pth"
    torch.save(get_model(TINY).state_dict(), path)
    return str(path)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def predict(*extra: str, weights: str) -> list[str]:
    return ["predict", str(EXAMPLE_IMAGE), "--model", TINY, "--weights", weights, *extra]


@pytest.mark.parametrize("extra", [["--topk", "0"], ["--topk", "-3"], ["--batch-size", "0"], ["--batch-size", "-1"],
                                   ["--workers", "-1"], ["--topk", "three"]])
def test_bad_numbers_are_one_line_and_exit_2(extra, tiny_weights, capsys):
    code, out, err = run(predict(*extra, weights=tiny_weights), capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error:"), err


@pytest.mark.parametrize("device", ["nonsense", "meta", "cuda:7", "cuda"])
def test_a_device_this_machine_lacks_is_one_line_and_exit_2(device, tiny_weights, capsys):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run(predict("--device", device, weights=tiny_weights), capsys)
    assert code == 2 and err.count("\n") == 1 and "--device" in err, err


def test_train_with_a_missing_device_is_one_line(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    recipe = Path(__file__).parent / "train" / "recipes" / "tiny_finetune.py"
    code, _, err = run(["train", str(recipe), "--data", str(tmp_path), "--device", "cuda"], capsys)
    assert code == 2 and err.count("\n") == 1 and "CUDA" in err, err


def test_attention_layer_out_of_range(tiny_weights, tmp_path, capsys):
    code, _, err = run(["attention", str(EXAMPLE_IMAGE), "--model", TINY, "--weights", tiny_weights, "--layer", "99",
                        "--out", str(tmp_path / "a.png")], capsys)
    assert code == 2 and "--layer 99" in err and err.count("\n") == 1


def test_plot_log_of_a_missing_file(tmp_path, capsys):
    code, _, err = run(["plot-log", str(tmp_path / "nothing.jsonl")], capsys)
    assert code == 2 and "does not exist" in err and err.count("\n") == 1


def test_show_onto_a_file_with_several_images_or_into_an_input_folder(tmp_path, tiny_weights, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        Image.open(EXAMPLE_IMAGE).save(folder / name)
    args = ["predict", str(folder), "--model", TINY, "--weights", tiny_weights]
    code, _, err = run([*args, "--show", str(tmp_path / "x.png")], capsys)
    assert code == 2 and "takes a folder" in err and not (tmp_path / "x.png").exists()
    code, _, err = run([*args, "--show", str(folder)], capsys)
    assert code == 2 and "input images" in err
    assert sorted(p.name for p in folder.iterdir()) == ["a.jpg", "b.jpg"]


def test_show_of_an_existing_folder_for_one_image_writes_inside(tmp_path, tiny_weights, capsys):
    out = tmp_path / "pictures"
    out.mkdir()
    code, _, _ = run(predict("--show", str(out), weights=tiny_weights), capsys)
    assert code == 0 and [p.name for p in out.iterdir()] == ["chelsea_top5.png"]


def test_two_inputs_with_one_name_get_two_pictures(tmp_path, tiny_weights, capsys):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.open(EXAMPLE_IMAGE).save(tmp_path / sub / "x.png")
    out = tmp_path / "shown"
    code, _, _ = run(["predict", str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png"), "--model", TINY,
                      "--weights", tiny_weights, "--show", str(out)], capsys)
    assert code == 0 and sorted(p.name for p in out.iterdir()) == ["a_x_top5.png", "b_x_top5.png"]


def test_attention_and_tokens_write_nothing_beside_the_input(tmp_path, tiny_weights, capsys):
    image = tmp_path / "in" / "cat.jpg"
    image.parent.mkdir()
    Image.open(EXAMPLE_IMAGE).save(image)
    code, _, err = run(["attention", str(image), "--model", TINY, "--weights", tiny_weights], capsys)
    assert code == 2 and "--out" in err
    assert [p.name for p in image.parent.iterdir()] == ["cat.jpg"]


def test_tokens_with_an_untrained_codebook_is_one_line(tmp_path, capsys):
    weights = tmp_path / "vqkd.pth"
    torch.save(get_model("test_vqkd_tiny").state_dict(), weights)  # kmeans_init=False: but mark it uninitialised
    state = torch.load(weights, weights_only=True)
    state["quantize.embedding.initted"] = torch.zeros(1)
    torch.save(state, weights)
    code, out, err = run(["tokens", str(EXAMPLE_IMAGE), "--tokenizer", "test_vqkd_tiny", "--weights", str(weights)], capsys)
    assert code == 1 and "never trained" in err and err.count("\n") == 1


@pytest.mark.parametrize("target", ["missing/folder/out.safetensors", "existing_dir"])
def test_convert_into_a_missing_folder_or_onto_a_folder(tmp_path, tiny_weights, target, capsys):
    (tmp_path / "existing_dir").mkdir()
    dst = tmp_path / target
    code, _, err = run(["convert", tiny_weights, str(dst)], capsys)
    if target == "existing_dir":
        assert code == 2 and "is a folder" in err and err.count("\n") == 1
    else:
        assert code == 0 and dst.is_file()


@pytest.mark.skipif(os.geteuid() != 0 and sys.platform != "linux", reason="needs a user that can drop rights")
def test_cache_clean_on_a_read_only_cache_says_so():
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="beitv2-ro-"))  # outside pytest's 0700 folders: nobody must reach it
    cache = base / "cache"
    (cache / "checkpoints").mkdir(parents=True)
    (cache / "checkpoints" / "x.pth.tmp-0000abcd.incomplete").write_bytes(b"half")
    script = ("import os, sys, filelock, beitv2_zoo.hub\n"  # every import before rights are dropped
              "from beitv2_zoo.cli import main\n"
              "main(['cache', 'list', '--cache-dir', sys.argv[1]])\n"
              "if os.geteuid() == 0:\n    os.setgid(65534); os.setuid(65534)\n"
              "sys.exit(main(['cache', 'clean', '--all', '--cache-dir', sys.argv[1]]))\n")
    os.chmod(base, 0o755)
    for path in (cache, cache / "checkpoints"):
        os.chmod(path, 0o555)
    try:
        done = subprocess.run([sys.executable, "-c", script, str(cache)], capture_output=True, text=True, timeout=60)
    finally:
        for path in (cache, cache / "checkpoints"):
            os.chmod(path, 0o755)
        shutil.rmtree(base, ignore_errors=True)
    assert done.returncode == 1, done.stderr
    assert "cannot remove" in done.stderr and "another process" not in done.stderr


def test_a_file_name_that_is_not_utf8_is_printed_escaped(tmp_path, tiny_weights):
    folder = tmp_path / "photos"
    folder.mkdir()
    odd = os.fsencode(folder) + b"/caf\xe9.jpg"
    Image.open(EXAMPLE_IMAGE).save(os.fsdecode(odd))
    Image.open(EXAMPLE_IMAGE).save(folder / "plain.jpg")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    done = subprocess.run([sys.executable, "-m", "beitv2_zoo", "predict", str(folder), "--model", TINY, "--weights",
                           tiny_weights, "--topk", "1"], capture_output=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout.decode("utf-8")
    assert "plain.jpg" in out and "caf\\udce9.jpg" in out  # both images reported, the odd name escaped


_OFFLINE_PREDICT = """
import sys
from beitv2_zoo.weights import Source, WeightRecord, get_record, register
from beitv2_zoo.cli import main
import dataclasses
base = get_record('test_beit_tiny')
register(dataclasses.replace(base, name='unreachable_tiny', aliases=(), sources=(
    Source(url='https://weights.example.invalid/a/tiny_20240101-0123abcd.pth', sha256_prefix='0123abcd', host='openmmlab'),
    Source(url='https://mirror.example.invalid/b/tiny.pth', host='official'))))
sys.exit(main(['predict', sys.argv[1], '--model', 'unreachable_tiny', *sys.argv[2:]]))
"""


@pytest.mark.parametrize("verbosity", [[], ["-v"]])
def test_no_network_fails_fast_in_one_line(tmp_path, verbosity):
    env = {**os.environ, "BEITV2_ZOO_CACHE": str(tmp_path / "cache"), "BEITV2_ZOO_BACKOFF": "1"}
    done = subprocess.run([sys.executable, "-c", _OFFLINE_PREDICT, str(EXAMPLE_IMAGE), *verbosity],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: could not get weights for unreachable_tiny") and "cannot resolve host" in lines[-1]
    assert "place the file at" in lines[-1]
    if not verbosity:
        assert len(lines) == 1, done.stderr
    assert "retry" not in done.stderr  # a host that does not exist is not retried (0.1: 4 back-offs per source)


@pytest.mark.parametrize("argv", [["bench", "--batch-sizes", "0"], ["bench", "--repeats", "-1"],
                                  ["test", "x", "--data", "d", "--batch-size", "0"]])
def test_other_commands_check_their_numbers(argv, capsys):
    code, _, err = run(argv, capsys)
    assert code == 2 and err.count("\n") == 1, err
