"""The training objectives: losses computed from what the models return (the models never return a loss).

* :func:`mim_loss`: BEiT v2 masked image modeling, the cross-entropy of both branches of
  :meth:`BeitV2Pretrain.forward_mim <beitv2_zoo.models.BeitV2Pretrain.forward_mim>` against the
  frozen tokenizer's codes.
* :func:`vqkd_loss`: VQ-KD, ``1 − cos`` between the decoded codes and the teacher's features,
  plus the quantizer's commitment term.
* :func:`segmentation_loss`: semantic segmentation, mmseg's pixel cross-entropy of the decode
  head plus the weighted auxiliary head's.
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


def pixel_cross_entropy(logits: torch.Tensor, label: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """mmseg's ``CrossEntropyLoss`` (``avg_non_ignore=False``) of logits at any resolution.

    Args:
        logits: ``[B, K, h, w]``; upsampled bilinearly (``align_corners=False``) to the label size first.
        label: int64 ``[B, H, W]``, ``ignore_index`` where there is no class.

    Returns:
        The summed per-pixel cross-entropy divided by **all** ``B·H·W`` pixels, ignored ones included
        (they add 0), as mmseg's default. A scalar, float32.
    """
    if logits.shape[-2:] != label.shape[-2:]:
        logits = F.interpolate(logits.float(), size=label.shape[-2:], mode="bilinear", align_corners=False)
    per_pixel = F.cross_entropy(logits.float(), label, ignore_index=ignore_index, reduction="none")
    return per_pixel.sum() / per_pixel.numel()


def segmentation_loss(logits: torch.Tensor, aux_logits: torch.Tensor | None, label: torch.Tensor,
                      aux_weight: float = 0.4, ignore_index: int = 255) -> dict[str, torch.Tensor]:
    """The segmentation training objective of one batch (mmseg's ``EncoderDecoder.loss``).

    Args:
        logits: decode-head logits ``[B, K, H/4, W/4]``.
        aux_logits: auxiliary-head logits ``[B, K, H/16, W/16]``, or ``None`` (no auxiliary head).
        label: int64 ``[B, H, W]``.
        aux_weight: the auxiliary loss weight (official: 0.4).

    Returns:
        ``loss`` (= ``decode_loss + aux_weight × aux_loss``), ``decode_loss``, ``aux_loss`` (unweighted;
        only with an auxiliary head) and ``pixel_acc`` (share of labelled pixels whose argmax of the
        upsampled decode logits is right).
    """
    decode = pixel_cross_entropy(logits, label, ignore_index)
    out = {"loss": decode, "decode_loss": decode}
    if aux_logits is not None and aux_weight:
        aux = pixel_cross_entropy(aux_logits, label, ignore_index)
        out.update(loss=decode + aux_weight * aux, aux_loss=aux)
    with torch.no_grad():
        up = F.interpolate(logits.detach().float(), size=label.shape[-2:], mode="bilinear", align_corners=False)
        valid = label != ignore_index
        hits = ((up.argmax(dim=1) == label) & valid).sum()
        out["pixel_acc"] = hits.float() / valid.sum().clamp(min=1).float()
    return out
