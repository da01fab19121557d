"""The committed CPU reproduction: its numbers meet the acceptance bar, and the README table is
generated from ``results.json`` (a test fails when they drift)."""

import importlib.util
import json
from pathlib import Path

import pytest

from beitv2_zoo import get_record
from beitv2_zoo.hub import fetch_weights, sha256_of

FOLDER = Path(__file__).resolve().parents[2] / "examples" / "reproduction"


def _run_module():
    spec = importlib.util.spec_from_file_location("reproduction_run", FOLDER / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results() -> dict:
    return json.loads((FOLDER / "results.json").read_text())


def test_pretraining_helps_by_more_than_the_seed_spread(results):
    assert len(results["seeds"]) >= 2
    assert results["stats"]["codebook_usage_val"]["min"] >= 90.0
    for task in ("finetune", "linear-probe"):
        margin = results["pretraining_margin"][task]
        assert margin["gain_exceeds_spread"] and margin["gain"] > margin["largest_seed_spread"]


def test_readme_table_is_generated_from_results(results, tmp_path):
    readme = tmp_path / "README.md"
    text = (FOLDER / "README.md").read_text(encoding="utf-8")
    readme.write_text(text, encoding="utf-8")
    _run_module().write_table(results, readme)
    assert readme.read_text(encoding="utf-8") == text, "run examples/reproduction/run.py to regenerate the table"
    assert (FOLDER / "curves.png").stat().st_size > 10_000


def test_shipped_checkpoint_is_the_recorded_one(results):
    record = get_record("beitv2_tiny_patch4_32_digits")
    assert sha256_of(fetch_weights(record)) == record.sources[0].sha256
    assert record.metrics[0].top1 == results["per_seed"][str(results["seeds"][0])]["finetune_pretrained_top1"]
