"""torch.hub entry points for beitv2_zoo.

    import torch
    model = torch.hub.load('path/to/beitv2_zoo', 'beitv2_base_patch16_224', source='local', pretrained=False)
    model = torch.hub.load('path/to/beitv2_zoo', 'get_model',
                           'beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k', source='local', pretrained=True)

There is one entry point per registered name or alias that is a Python identifier
(``torch.hub.list(...)`` shows them); names with ``-`` or ``.`` (mmpretrain's and timm's tagged
names) go through ``get_model(name, **kwargs)``. Every entry point takes
:func:`beitv2_zoo.get_model`'s keywords; ``pretrained`` defaults to ``False`` as in torch.hub
custom, and ``pretrained=True`` downloads into beitv2_zoo's own cache (``BEITV2_ZOO_CACHE``).
"""

import keyword as _keyword

dependencies = ["torch", "torchvision", "safetensors", "huggingface_hub", "PIL", "requests", "filelock", "tqdm",
                "numpy"]
"""Modules torch.hub checks for before it loads an entry point (the runtime dependencies)."""

# torch.hub imports this module, then checks `dependencies`: the registry below needs none of them,
# and beitv2_zoo.get_model (torch and the rest) is imported when an entry point is called.
from beitv2_zoo.weights import ALL_RECORDS as _ALL_RECORDS
from beitv2_zoo.weights import list_models as _list_models


def get_model(name, pretrained=False, **kwargs):
    """Any registered name (``beitv2_zoo.list_models()``), a checkpoint file, or a pretrained folder /
    ``'hf-hub:org/repo'``; the keywords of ``beitv2_zoo.get_model`` (``pretrained``, ``num_classes``,
    ``img_size``, ``device``, …)."""
    from beitv2_zoo import get_model as build

    return build(name, pretrained=pretrained, **kwargs)


def _entry_point(name):
    def entry(pretrained=False, **kwargs):
        return get_model(name, pretrained=pretrained, **kwargs)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (f"``beitv2_zoo.get_model({name!r}, pretrained=pretrained, **kwargs)``: ``pretrained=True`` loads "
                     "its published weights; see beitv2_zoo.get_model for the keywords.")
    return entry


def _entry_names():
    names = set(_list_models()) | {alias for record in _ALL_RECORDS for alias in record.aliases}
    return sorted(n for n in names if n.isidentifier() and not _keyword.iskeyword(n) and not n.startswith("_")
                  and n not in ("get_model", "dependencies"))


for _name in _entry_names():
    globals()[_name] = _entry_point(_name)
del _name
