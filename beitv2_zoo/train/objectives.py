"""The training objectives: losses computed from what the models return (the models never return a loss).

* :func:`mim_loss`: BEiT v2 masked image modeling, the cross-entropy of both branches of
  :meth:`BeitV2Pretrain.forward_mim <beitv2_zoo.models.BeitV2Pretrain.forward_mim>` against the
  frozen tokenizer's codes.
* :func:`vqkd_loss`: VQ-KD, ``1 − cos`` between the decoded codes and the teacher's features,
  plus the quantizer's commitment term.
"""

import torch
import torch.nn.functional as F

from ..models import VQKD, BeitV2Pretrain
from ..models.protocol import ZooModel


def masked_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Share of rows whose argmax is the label: ``logits`` ``[M, K]``, ``labels`` ``[M]`` → a scalar."""
    return (logits.detach().argmax(dim=-1) == labels).float().mean()


def mim_loss(
    model: "BeitV2Pretrain | ZooModel", images: torch.Tensor, target_images: torch.Tensor, mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The BEiT v2 pretraining loss of one batch.

    Args:
        model: the pretraining model, with its tokenizer attached.
        images: the model's view ``[B, 3, H, W]``, normalised with ImageNet mean/std.
        target_images: the tokenizer's view of the same crop, ``[B, 3, H, W]`` in [0, 1].
        mask: ``[B, h, w]`` or ``[B, N]``, the patches to mask and predict.

    Returns:
        See :func:`mim_loss_from_ids`.
    """
    return mim_loss_from_ids(model, images, model.targets(target_images), mask)


def mim_loss_from_ids(
    model: "BeitV2Pretrain | ZooModel", images: torch.Tensor, target_ids: torch.Tensor, mask: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The pretraining loss against given code ids ``[B, h, w]`` or ``[B, N]``.

    ``images`` and ``mask`` are those of :func:`mim_loss`.

    Returns:
        ``loss`` (= ``loss_1 + loss_2``), ``loss_1`` (cross-entropy of the last-block branch),
        ``loss_2`` (of the patch-aggregation branch), both means over the masked patches, and
        the code accuracies ``mlm_acc_1`` / ``mlm_acc_2``.
    """
    selected = mask.reshape(mask.shape[0], -1).bool()
    labels = target_ids.reshape(target_ids.shape[0], -1)[selected]
    logits_1, logits_2 = model.forward_mim(images, mask)
    loss_1, loss_2 = F.cross_entropy(logits_1.float(), labels), F.cross_entropy(logits_2.float(), labels)
    return {"loss": loss_1 + loss_2, "loss_1": loss_1, "loss_2": loss_2,
            "mlm_acc_1": masked_accuracy(logits_1, labels), "mlm_acc_2": masked_accuracy(logits_2, labels)}


def vqkd_loss(tokenizer: "VQKD | ZooModel", images: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """The VQ-KD training objective of one batch (in training mode the codebook takes its EMA step).

    Args:
        tokenizer: the tokenizer, with a decoder.
        images: ``[B, 3, H, W]`` in [0, 1].
        targets: the teacher's patch features ``[B, N, target_dim]`` (CLIP: ``ln_post`` then
            ``proj``; DINO: the final norm), CLS excluded.

    Returns:
        ``loss`` (= ``rec_loss + quant_loss``), ``rec_loss`` (mean ``1 − cos`` between the
        reconstruction and the target), ``quant_loss`` (commitment) and ``ids`` ``[B, h, w]``.
    """
    quantized, quant_loss, ids = tokenizer.quantize_images(images)
    reconstruction = tokenizer.decode(quantized)
    rec_loss = (1.0 - F.cosine_similarity(reconstruction.float(), targets.float(), dim=-1)).mean()
    return {"loss": rec_loss + quant_loss, "rec_loss": rec_loss, "quant_loss": quant_loss, "ids": ids}
