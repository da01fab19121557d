"""The static type of what ``get_model`` returns, so that user code type-checks.

``get_model`` builds a classifier (:class:`~beitv2_zoo.models.Beit`), a pretraining model
(:class:`~beitv2_zoo.models.BeitV2Pretrain`) or a tokenizer (:class:`~beitv2_zoo.models.VQKD`)
depending on a name known only at run time, so its return type is this protocol: the methods
every model offers, typed, and any other attribute (``model.tokenizer``, ``model.encode``, the
``nn.Module`` methods) as ``Any``. ``isinstance(model, Beit)`` narrows it where a caller needs more.
"""

from collections.abc import Sequence
from typing import Any, Protocol

import torch


class ZooModel(Protocol):
    """A model from ``get_model``: ``model(x)``, ``extract_feat(x)`` and the other shared methods."""

    weights_info: Any
    """The :class:`~beitv2_zoo.weights.WeightRecord` its weights came from, or ``None``."""
    class_names: tuple[str, ...] | None
    """Class names of a classifier's head, where known."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    def extract_feat(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any: ...

    def forward_features(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor: ...

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor: ...

    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None,
                              *args: Any, **kwargs: Any) -> Any: ...

    def __getattr__(self, name: str) -> Any: ...
