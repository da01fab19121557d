"""Model cards and README tables never drift from the registry."""

from pathlib import Path

import pytest

from beitv2_zoo.cards import (
    CARD_DIR,
    card_filename,
    comparison_table,
    expected_cards,
    readme_model_table,
    regenerate_readme,
    render_card,
)
from beitv2_zoo.weights import get_record, list_models

REPO = Path(__file__).resolve().parents[1]
FIX = "run `beitv2-zoo card --all --write --readme README.md` and commit the result"


def test_every_registered_name_has_a_current_card():
    folder = REPO / CARD_DIR
    expected = expected_cards()
    present = {p.name for p in folder.glob("*.md") if p.name != "README.md"}
    assert present == set(expected), f"cards missing or stale: {sorted(present ^ set(expected))}; {FIX}"
    for filename, text in expected.items():
        assert (folder / filename).read_text(encoding="utf-8") == text, f"{filename} is out of date; {FIX}"


def test_readme_tables_are_current():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert regenerate_readme(readme) == readme, f"README tables are out of date; {FIX}"
    assert readme_model_table() in readme and comparison_table() in readme


def test_table_lists_every_name_once():
    table = readme_model_table()
    for name in list_models():
        assert table.count(f"[`{name}`]") == 1


@pytest.mark.parametrize("name", ["beit-base-p16_beitv2-in21k-pre_3rdparty_in1k", "beitv2_large_patch16_224_pt1k_ft21k"])
def test_card_content_comes_from_the_record(name):
    record = get_record(name)
    card = render_card(record)
    front, body = card.split("---\n", 2)[1:]
    assert f"license: {record.license}" in front and "library_name: beitv2_zoo" in front
    assert "pipeline_tag: image-classification" in front
    if record.upstream:
        assert "base_model:" not in front  # a registry name is not a Hub id (issue 15); the lineage names it
        assert f"**Fine-tuned from:** `{record.upstream}`" in body
    assert f"{record.params:,}" in body and str(record.gmacs) in body
    assert f"inference_model('{name}'" in body
    for source in record.sources:
        assert (source.url or source.hf_repo) in body
    assert card_filename(name) == f"{name}.md"


def test_cards_are_valid_hub_cards_with_a_model_index():
    """Issue 15 item 4: parsed back by huggingface_hub, every card has Hub-valid metadata."""
    from huggingface_hub import ModelCard

    for filename, text in expected_cards().items():
        data = ModelCard(text).data
        record = get_record(filename[: -len(".md")])
        assert data.library_name == "beitv2_zoo" and data.license == record.license
        base = data.to_dict().get("base_model")
        assert base is None or (base.count("/") == 1 and not base.startswith("test_")), base  # a Hub repo id or nothing
        published = [(m.dataset, m.top1) for m in record.metrics if m.top1 is not None]
        results = [(r.dataset_name, r.metric_value) for r in data.eval_results or [] if r.metric_name == "top-1 accuracy"]
        assert results == published, filename


def test_weightless_test_names_have_no_card_and_no_row():
    assert not any(name.startswith("test_") for name in expected_cards())
    assert "test_beit_tiny" not in readme_model_table()
    assert not list((REPO / CARD_DIR).glob("test_*.md"))
