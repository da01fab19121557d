"""Parameter groups (weight decay and layer-wise lr decay) and the AdamW optimizer.

Weight decay follows the official BEiT v2 rule: no decay for 1-D tensors (norms, biases,
``q_bias``/``v_bias``, layer scales), for names ending in ``.bias``, and for the names a
model lists in ``no_weight_decay()`` (``cls_token``, ``pos_embed``; the tokenizer's codebook).

Layer-wise lr decay (``LayerDecayValueAssigner`` in the official code, mmpretrain's
``LearningRateDecayOptimWrapperConstructor``): with ``L`` blocks, a parameter of layer
``i`` has lr scale ``decay ** (L + 1 - i)``, where ``i = 0`` for the embeddings
(``cls_token``, ``mask_token``, ``pos_embed``, ``patch_embed.*``), ``i = k + 1`` for
``blocks.k.*``, and ``i = L + 1`` (scale 1) for everything else: the shared relative
position bias, the final norms and the head.
"""

import re
from collections.abc import Iterable

import torch
from torch import nn

_EMBEDDING = re.compile(r"^(cls_token|mask_token|pos_embed|patch_embed\.)")
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def layer_id(name: str, num_layers: int) -> int:
    """The layer-decay depth of a parameter name of a ViT (see the module docstring)."""
    if _EMBEDDING.match(name):
        return 0
    match = _BLOCK.match(name)
    if match:
        return int(match.group(1)) + 1
    return num_layers + 1


def param_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    weight_decay: float,
    no_weight_decay: set[str] = frozenset(),
    layer_decay: float = 1.0,
    num_layers: int = 0,
    strip_prefix: str = "",
) -> list[dict]:
    """Group trainable parameters by (weight decay, lr scale).

    Args:
        named_parameters: ``model.named_parameters()``; parameters without ``requires_grad`` are skipped.
        weight_decay: decay of the decayed group.
        no_weight_decay: exact names (after ``strip_prefix``) kept out of weight decay.
        layer_decay: lr decay per layer; 1 gives one scale for all.
        num_layers: blocks of the ViT (for ``layer_decay < 1``).
        strip_prefix: a prefix removed from names before matching (e.g. ``'classifier.'``).

    Returns:
        Groups for ``torch.optim.AdamW``, each with ``params``, ``weight_decay``, ``lr_scale``
        and ``names``; the training loop sets ``lr = lr_now × lr_scale`` every step.
    """
    groups: dict[tuple[str, int], dict] = {}
    for full_name, parameter in named_parameters:
        if not parameter.requires_grad:
            continue
        name = full_name[len(strip_prefix):] if strip_prefix and full_name.startswith(strip_prefix) else full_name
        skip = parameter.ndim <= 1 or name.endswith(".bias") or name in no_weight_decay
        depth = layer_id(name, num_layers) if layer_decay < 1.0 else num_layers + 1
        key = ("no_decay" if skip else "decay", depth)
        if key not in groups:
            groups[key] = {"params": [], "names": [], "weight_decay": 0.0 if skip else weight_decay,
                           "lr_scale": layer_decay ** (num_layers + 1 - depth) if layer_decay < 1.0 else 1.0}
        groups[key]["params"].append(parameter)
        groups[key]["names"].append(full_name)
    return [groups[key] for key in sorted(groups, key=lambda k: (k[1], k[0]))]


def build_adamw(groups: list[dict], lr: float, betas: tuple[float, float], eps: float) -> torch.optim.AdamW:
    """AdamW over ``groups`` (``names`` stays in each group for logging; AdamW ignores it)."""
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


class ModelEma:
    """An exponential moving average of a module's floating-point state (``decay`` per step).

    ``shadow`` holds the averaged copy; integer buffers are copied as they are.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        current = module.state_dict()
        floats = [k for k, v in self.shadow.items() if v.is_floating_point()]
        torch._foreach_lerp_([self.shadow[k] for k in floats], [current[k].detach() for k in floats], 1.0 - self.decay)
        for key, value in self.shadow.items():
            if not value.is_floating_point():
                value.copy_(current[key])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for key, value in self.shadow.items():
            value.copy_(state[key])
