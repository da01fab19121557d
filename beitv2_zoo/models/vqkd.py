"""VQ-KD, BEiT v2's visual tokenizer: image → one code id out of 8192 per 16×16 patch.

Architecture (official ``microsoft/unilm`` ``beit2/modeling_vqkd.py``, same key names):

* ``encoder``: a ViT-B/16 (:class:`~beitv2_zoo.models.beit.Beit` with an absolute position
  embedding, no relative position bias, no layer scale). Its ``fc_norm`` LayerNorm is
  applied to every patch token; there is no pooling and no head.
* ``encode_task_layer``: ``Linear(D, D) → Tanh → Linear(D, 32)``, always in float32.
* ``quantize``: :class:`~beitv2_zoo.models.quantizer.NormEMAQuantizer`, an 8192 × 32 unit codebook.
* Training only: ``decoder``, a ViT of 1 or 3 blocks over the 14×14 grid of codes (a 1×1
  "patch" convolution 32 → D), and ``decode_task_layer`` (``Linear → Tanh → Linear`` to the
  teacher's width: 512 for CLIP-B/16, 768 for DINO-B/16). The decoder reconstructs the
  teacher's patch features; it plays no part in tokenizing.

Input convention: :meth:`VQKD.encode` takes RGB images **in [0, 1]** (``ToTensor()`` output,
no mean/std normalisation), ``[B, 3, H, W]`` with ``H`` and ``W`` equal to ``img_size``,
and maps them to [-1, 1] with ``2x − 1`` before the encoder. This is the official
``pre_process('default')`` on [0, 1] input. The official function also accepts
[0, 255] input: it multiplies by 255 when the whole batch has ``max() <= 1``. We do not
guess from the data, so divide 8-bit images by 255 first. mmpretrain's ``VQKD.forward``
takes already-mapped [-1, 1] input (its data preprocessor computes ``x/127.5 − 1``).
"""

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .beit import Beit
from .init import init_weights_
from .quantizer import NormEMAQuantizer, QuantizerOutput

VQKD_ARCHITECTURES: dict[str, dict[str, Any]] = {
    # The three official tokenizers (decoder 1 or 3 blocks; CLIP-B/16 or DINO-B/16 teacher).
    "vqkd_base_clip_decoder1": dict(decoder_depth=1, target_dim=512),
    "vqkd_base_clip_decoder3": dict(decoder_depth=3, target_dim=512),
    "vqkd_base_dino_decoder1": dict(decoder_depth=1, target_dim=768),
    # Encoder and codebook only: what tokenizing needs (mmpretrain's target generator).
    "vqkd_base_encoder": dict(decoder_depth=0),
    # Tiny variant for tests and demos.
    "test_vqkd_tiny": dict(embed_dim=64, depth=2, num_heads=2, num_codes=64, code_dim=8, decoder_depth=1,
                           target_dim=16, kmeans_init=False),
}
"""Settings of each named tokenizer; every other setting is a keyword of :class:`VQKD`."""


def _task_layer(width: int, out_dim: int) -> nn.Sequential:
    """``Linear(width, width) → Tanh → Linear(width, out_dim)`` (keys ``.0.`` and ``.2.``)."""
    return nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, out_dim))


def _plain_vit(**settings: Any) -> Beit:
    """A ViT as VQ-KD uses it: absolute positions, no relative bias, no layer scale, ``fc_norm`` per token, no head."""
    return Beit(use_abs_pos_emb=True, use_rel_pos_bias=False, init_values=None, global_pool="avg", num_classes=0,
                **settings)


class VQKD(nn.Module):
    """The VQ-KD visual tokenizer (see the module docstring).

    Args:
        img_size: input side in pixels.
        patch_size: patch side in pixels (16).
        embed_dim: width ``D`` of encoder and decoder.
        depth: encoder blocks.
        num_heads: attention heads of encoder and decoder.
        num_codes: codebook size ``K``.
        code_dim: code width ``C``.
        decoder_depth: decoder blocks; ``0`` builds the encoder and codebook only.
        target_dim: width of the reconstructed teacher features.
        beta: commitment loss weight.
        decay: codebook EMA decay.
        kmeans_init: initialise the codebook by k-means on the first training batch.
    """

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        num_codes: int = 8192,
        code_dim: int = 32,
        decoder_depth: int = 3,
        target_dim: int = 512,
        beta: float = 1.0,
        decay: float = 0.99,
        kmeans_init: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = _plain_vit(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                                  num_heads=num_heads)
        self.grid_size = self.encoder.patch_embed.grid_size
        self.encode_task_layer = _task_layer(embed_dim, code_dim)
        self.quantize = NormEMAQuantizer(num_codes, code_dim, beta=beta, decay=decay, kmeans_init=kmeans_init)
        if decoder_depth > 0:
            self.decoder: Beit | None = _plain_vit(img_size=self.grid_size[0], patch_size=1, in_chans=code_dim,
                                                   embed_dim=embed_dim, depth=decoder_depth, num_heads=num_heads)
            self.decode_task_layer: nn.Sequential | None = _task_layer(embed_dim, target_dim)
        else:
            self.decoder = self.decode_task_layer = None
        init_weights_([*self.encode_task_layer, *(self.decode_task_layer or ())])
        self.weights_info: Any = None  # the WeightRecord the weights came from, set by get_model

    @property
    def num_codes(self) -> int:
        return self.quantize.num_codes

    def no_weight_decay(self) -> set[str]:
        """Names the official tokenizer recipe keeps out of weight decay (besides 1-D tensors)."""
        names = {"quantize.embedding.weight", "encoder.cls_token", "encoder.pos_embed"}
        if self.decoder is not None:
            names |= {"decoder.cls_token", "decoder.pos_embed"}
        return names

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.encoder.set_grad_checkpointing(enable)
        if self.decoder is not None:
            self.decoder.set_grad_checkpointing(enable)

    # ------------------------------------------------------------ tokenizing
    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] → [-1, 1] (``2x − 1``)."""
        return images * 2.0 - 1.0

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1] → pre-quantizer features ``[B, C, H/16, W/16]``, computed
        with autocast off (float32 unless the model itself was cast)."""
        tokens = self.forward_features(images)  # [B, N, D], every patch token normalised
        layer = self.encode_task_layer
        with torch.autocast(device_type=tokens.device.type, enabled=False):  # the official code keeps this in fp32
            z = layer(tokens.to(layer[-1].weight.dtype))  # [B, N, C]
        patch = self.encoder.patch_embed.patch_size
        return z.transpose(1, 2).reshape(z.shape[0], z.shape[2], images.shape[-2] // patch, images.shape[-1] // patch)

    def quantize_images(self, images: torch.Tensor) -> QuantizerOutput:
        """Images in [0, 1] → :class:`QuantizerOutput` (code vectors ``[B, C, h, w]``, loss, ids ``[B, h, w]``)."""
        return self.quantize(self.features(images))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1] → code ids ``[B, H/16, W/16]`` (int64).

        In eval mode (how a frozen tokenizer runs) this changes no state. In training mode
        the codebook takes an EMA step, as :meth:`forward` does.
        """
        return self.quantize_images(images).ids

    def get_codebook_indices(self, images: torch.Tensor) -> torch.Tensor:
        """The official API: images in [0, 1] → ids ``[B, N]``, flattened row by row (``N = H/16 · W/16``)."""
        return self.encode(images).flatten(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`encode`: images ``[B, 3, H, W]`` in [0, 1] → code ids ``[B, H/16, W/16]``.

        Training reconstructs the teacher's features from :meth:`quantize_images` through
        :meth:`decode`; the objective is :func:`beitv2_zoo.train.objectives.vqkd_loss`.
        """
        return self.encode(images)

    # ------------------------------------------------ the common model API
    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] → the encoder's normalised patch tokens ``[B, N, D]`` (before the task layer)."""
        return self.encoder.fc_norm(self.encoder.forward_features(self.preprocess(images))[:, 1:])

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Patch tokens ``[B, N, D]`` → cosine similarity to every code ``[B, N, K]`` (its argmax is the
        code id), or with ``pre_logits`` the unit vectors that are looked up ``[B, N, C]``."""
        layer = self.encode_task_layer
        with torch.autocast(device_type=tokens.device.type, enabled=False):
            unit = F.normalize(layer(tokens.to(layer[-1].weight.dtype)).float(), dim=-1)
            return unit if pre_logits else unit @ self.quantize.embedding.weight.float().t()

    def forward_intermediates(
        self,
        images: torch.Tensor,
        indices: int | list[int] | None = None,
        return_prefix_tokens: bool = False,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Any] | tuple[torch.Tensor, list[Any]]:
        """Images in [0, 1] → the encoder's :meth:`Beit.forward_intermediates` (timm's contract: NCHW maps
        ``[B, D, h, w]`` or NLC patch tokens ``[B, N, D]``, CLS split off; with the final features unless
        ``intermediates_only``)."""
        return self.encoder.forward_intermediates(
            self.preprocess(images), indices, return_prefix_tokens=return_prefix_tokens, norm=norm,
            stop_early=stop_early, output_fmt=output_fmt, intermediates_only=intermediates_only,
        )

    def get_classifier(self) -> nn.Module:
        """The quantizer: the codebook plays the part of a classifier over codes."""
        return self.quantize

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh codebook of ``num_classes`` codes, initialised by k-means on the next training batch."""
        old = self.quantize
        self.quantize = NormEMAQuantizer(num_classes, old.code_dim, beta=old.beta, decay=old.decay, kmeans_init=True)
        self.quantize.to(old.embedding.weight.device)

    # --------------------------------------------------------------- training
    def decode(self, quantized: torch.Tensor) -> torch.Tensor:
        """Code vectors ``[B, C, h, w]`` → reconstructed teacher features ``[B, h·w, target_dim]``."""
        if self.decoder is None or self.decode_task_layer is None:
            raise RuntimeError("this tokenizer was built without a decoder (decoder_depth=0); decoding needs one")
        tokens = self.decoder.forward_features(quantized)[:, 1:]
        return self.decode_task_layer(self.decoder.fc_norm(tokens))
