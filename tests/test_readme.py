"""Every Python block of the README runs as written, and so does every ``beitv2-zoo`` command line that
needs no data set (issue 12, item 18).

Nothing in the README is edited for the test. What changes is the registry: each registered name
the README uses is re-registered, for the duration of the test, with a tiny architecture of the
same family (``test_beit_tiny``, ``test_beitv2_mim_tiny``, ``test_vqkd_tiny``, ``test_beit_tiny_upernet``) and random weights
served by a local HTTP server with their sha256, so ``pretrained=True`` downloads, verifies and
loads exactly as it does for the real files. Commands that train on ImageNet or use ``torchrun``
are illustrations and are not run; the training subpackage has its own tests.
"""

import dataclasses
import re
import shlex

import pytest
import torch

from beitv2_zoo.api import save_checkpoint
from beitv2_zoo.cli import main
from beitv2_zoo.models import ARCHITECTURES
from beitv2_zoo.weights import ALL_RECORDS, Source, get_record, register

from .conftest import REPO, randomize_
from .http_server import LocalServer

README = (REPO / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
SHELL_BLOCKS = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
STAND_IN = {"image-classification": "test_beit_tiny", "masked-image-modeling": "test_beitv2_mim_tiny",
            "visual-tokenizer": "test_vqkd_tiny", "semantic-segmentation": "test_beit_tiny_upernet"}
NOT_RUN = ("torchrun", "data/imagenet", "ADEChallengeData2016", "work_dirs", "pip install", "$", "export ")


def names_used() -> set[str]:
    packaged = {r.name for r in ALL_RECORDS if any((s.url or "").startswith("package:") for s in r.sources)}
    used = {r.name for r in ALL_RECORDS if r.sources and r.name not in packaged
            and re.search(rf"['\" ]{re.escape(r.name)}['\" \n]", README)}
    # the tokenizer of each pretraining model used, and the default models of `beitv2-zoo predict` and `segment`
    used |= {get_record(n).tokenizer for n in used if get_record(n).tokenizer}
    return used | {"beit-base-p16_beitv2-in21k-pre_3rdparty_in1k", "beitv2_base_patch16_224_pt1k_ftade20k"}


def command_lines() -> list[str]:
    lines = []
    for block in SHELL_BLOCKS:
        for line in block.splitlines():
            command = line.split("#", 1)[0].strip()
            if "beitv2-zoo " in command and not any(word in block for word in ("torchrun", "\\\n")):
                command = command[command.index("beitv2-zoo "):]
                placeholder = "[" in command or re.search(r"\b[A-Z][A-Z_]{2,}\b", command)  # a synopsis
                if not placeholder and not any(word in command for word in NOT_RUN):
                    lines.append(command)
    return lines


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """Re-register the README's names with tiny models served from 127.0.0.1; restore them afterwards."""
    folder = tmp_path_factory.mktemp("served")
    originals = {name: get_record(name) for name in names_used()}
    with LocalServer(folder) as server:
        for name, record in originals.items():
            architecture = STAND_IN[record.task]
            settings = dict(record.model_kwargs)
            if record.num_classes:
                settings["num_classes"] = record.num_classes
            model = randomize_(ARCHITECTURES[architecture].build(**settings))
            if record.task == "visual-tokenizer":
                model.quantize.embedding.initted.fill_(1.0)
            if record.num_classes:
                model.class_names = None
            path = folder / f"{name}.safetensors"
            save_checkpoint(model, path)
            import hashlib

            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            source = Source(url=f"{server.url}/{path.name}", sha256=digest, host="official")
            register(dataclasses.replace(record, architecture=architecture, sources=(source,)), overwrite=True)
        yield
    for record in originals.values():
        register(record, overwrite=True)


@pytest.fixture
def in_repo(monkeypatch, tmp_path):
    """A fresh working folder that sees the checkout's ``examples/`` (blocks may write files, never into the checkout)."""
    (tmp_path / "examples").symlink_to(REPO / "examples")
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)


def test_the_readme_has_blocks_to_run():
    assert len(PYTHON_BLOCKS) >= 3 and command_lines()


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_block_runs_as_written(index, stand_ins, in_repo, tmp_path):
    code = PYTHON_BLOCKS[index]
    namespace: dict = {"__name__": f"readme_block_{index}"}
    exec(compile(code, f"README.md python block {index + 1}", "exec"), namespace)


@pytest.mark.parametrize("command", command_lines())
def test_command_line_runs_as_written(command, stand_ins, in_repo, tmp_path, monkeypatch):
    argv = shlex.split(command)[1:]
    if "card" in argv and "--write" in argv:
        pytest.skip("rewrites the committed cards; tests/test_cards.py checks them")
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 0, command
