"""``hubconf.py``: ``torch.hub.load(<checkout>, <name>, source='local')`` builds the registered models.

Loaded from this checkout with ``source='local'`` (no network, no torch.hub cache); the tiny
``beitv2_tiny_patch4_32_digits`` ships its weights in the package, so ``pretrained=True`` works offline.
"""

from pathlib import Path

import pytest
import torch

from beitv2_zoo import list_models

CHECKOUT = Path(__file__).resolve().parents[1]


@pytest.fixture
def hubconf(monkeypatch):
    monkeypatch.setenv("BEITV2_ZOO_OFFLINE", "1")
    return str(CHECKOUT)


def test_one_entry_point_per_identifier_name_plus_get_model(hubconf):
    entries = set(_local_entries())  # torch.hub.list has no source='local'; read the module as torch.hub does
    names = set(list_models())
    assert {n for n in names if n.isidentifier()} <= entries and "get_model" in entries
    assert "beitv2_base_patch16_224" in entries  # an alias (timm's untagged name)
    assert not any("-" in e or "." in e for e in entries)


def _local_entries() -> list[str]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("hubconf_under_test", CHECKOUT / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "torch" in module.dependencies
    entries = [n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_")]
    assert all(getattr(module, n).__doc__ for n in entries)  # what torch.hub.help shows
    return entries


def test_torch_hub_load_builds_a_registered_model(hubconf):
    model = torch.hub.load(hubconf, "beitv2_tiny_patch4_32_digits", source="local", pretrained=True)
    assert model.weights_info.name == "beitv2_tiny_patch4_32_digits" and not model.training
    random = torch.hub.load(hubconf, "beitv2_tiny_patch4_32_digits", source="local")  # pretrained=False by default
    assert not torch.equal(model.head.weight, random.head.weight)


def test_names_with_dashes_go_through_get_model(hubconf):
    model = torch.hub.load(hubconf, "get_model", "test_beit_tiny", source="local", num_classes=3)
    assert model.num_classes == 3
    x = torch.zeros(1, 3, 224, 224)
    with torch.inference_mode():
        assert model(x).shape == (1, 3)
