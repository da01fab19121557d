"""BEiT v2's vector quantizer: an l2-normalised codebook updated by exponential moving average.

Our own implementation of the behaviour of the official ``NormEMAVectorQuantizer``
(microsoft/unilm ``beit2/norm_ema_quantizer.py``), with the same state-dict names for the
tensors it actually uses (``embedding.weight``, ``embedding.initted``, ``cluster_size``).

Behaviour:

* Vectors and codes are l2-normalised; the nearest code is the one of highest cosine
  similarity (computed as the official code does, ``|z|² + |e|² − 2 z·e``).
* **k-means initialisation** (cosine, 10 iterations) on the first *training-mode* batch
  when built with ``kmeans_init=True``. Under ``torch.distributed`` every rank runs it on
  its own batch and then rank 0's codebook is broadcast. The official code does not
  broadcast: the codebook is a ``requires_grad=False`` parameter, so DDP copies it only at
  wrap time, before this first batch. Ranks would then start from different codebooks,
  and a code that no batch selects keeps a different vector on each rank forever. The
  ranks would disagree on the ids of the same image, and a checkpoint would hold only rank
  0's view.
* **EMA update** (decay 0.99) only in training mode. The per-code counts and sums of
  assigned vectors are all-reduced over ranks whenever ``torch.distributed`` is
  initialised *at call time*, so every rank applies the update of the global batch.
  A code's new value is ``normalize(decay·old + (1−decay)·normalize(mean of its vectors))``.
  Codes that no vector chose keep their value (no dead-code restart, as in the official code).
  The batch's code vectors ``z_q`` are looked up *before* this update, as the official code and
  mmpretrain do (0.1 looked them up after it: one base-size step's loss moved by 4e-4).
* ``cluster_size`` holds the EMA of the global per-code counts, our codebook-usage
  statistic (``unused_codes()``). It is updated with the codebook in training mode only.
  The official code also EMA-updates it in eval mode, with an all-reduce, which makes
  inference stateful and a collective call. Here eval mode is a pure function: a frozen
  tokenizer can run under ``torch.inference_mode`` and never blocks on other ranks.
* All quantizer arithmetic runs in float32, with autocast disabled.
* Output: the straight-through estimate ``z + (z_q − z).detach()`` and the commitment
  loss ``beta · mse(z_q.detach(), z)``. The codebook gets no gradient; it moves by EMA only.
"""

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class QuantizerOutput(NamedTuple):
    """Result of :meth:`NormEMAQuantizer.forward` for input ``[B, C, H, W]``.

    Attributes:
        quantized: straight-through code vectors ``[B, C, H, W]`` (gradients flow to the input).
        loss: commitment loss, a scalar.
        ids: code ids ``[B, H, W]``, int64.
    """

    quantized: torch.Tensor
    loss: torch.Tensor
    ids: torch.Tensor


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    if _distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def kmeans_cosine(vectors: torch.Tensor, num_clusters: int, num_iters: int = 10) -> torch.Tensor:
    """Spherical k-means on unit vectors ``[N, C]`` → unit centres ``[num_clusters, C]``.

    Initial centres are a random sample of the vectors (without replacement when
    ``N >= num_clusters``), drawn from torch's global generator. Each step assigns a
    vector to the centre of highest dot product and moves each centre to the normalised
    mean of its vectors; a centre with no vectors keeps its position.
    """
    count = vectors.shape[0]
    if count >= num_clusters:
        pick = torch.randperm(count, device=vectors.device)[:num_clusters]
    else:
        pick = torch.randint(0, count, (num_clusters,), device=vectors.device)
    centres = vectors[pick]
    for _ in range(num_iters):
        assignment = (vectors @ centres.t()).argmax(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, assignment, vectors)
        counts = torch.bincount(assignment, minlength=num_clusters)
        moved = F.normalize(sums / counts.clamp(min=1).unsqueeze(1), dim=-1)
        centres = torch.where((counts == 0).unsqueeze(1), centres, moved)
    return centres


class Codebook(nn.Module):
    """The code vectors (official ``EmbeddingEMA``, keys ``embedding.weight`` and ``embedding.initted``).

    Args:
        num_codes: ``K`` codes.
        code_dim: width ``C`` of a code.
        kmeans_init: start from zeros and fill by k-means on the first training batch;
            otherwise start from random unit vectors.
    """

    def __init__(self, num_codes: int, code_dim: int, kmeans_init: bool = True) -> None:
        super().__init__()
        start = torch.zeros(num_codes, code_dim) if kmeans_init else F.normalize(torch.randn(num_codes, code_dim), dim=-1)
        # A parameter (as in the official code and mmpretrain, so it counts as one) that gets no gradient.
        self.weight = nn.Parameter(start, requires_grad=False)
        self.register_buffer("initted", torch.tensor([0.0 if kmeans_init else 1.0]))

    @property
    def num_codes(self) -> int:
        return self.weight.shape[0]

    def is_initialised(self) -> bool:
        return bool(self.initted.item())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Code ids ``[...]`` → code vectors ``[..., C]``."""
        return F.embedding(ids, self.weight)


class NormEMAQuantizer(nn.Module):
    """Cosine nearest-code quantizer with an EMA-updated unit codebook.

    Args:
        num_codes: codebook size ``K`` (8192 in BEiT v2).
        code_dim: code width ``C`` (32 in BEiT v2).
        beta: weight of the commitment loss.
        decay: EMA decay of the codebook and of the usage statistic.
        kmeans_init: initialise the codebook by k-means on the first training batch.
    """

    def __init__(
        self, num_codes: int = 8192, code_dim: int = 32, beta: float = 1.0, decay: float = 0.99, kmeans_init: bool = True
    ) -> None:
        super().__init__()
        self.code_dim = code_dim
        self.beta = beta
        self.decay = decay
        self.embedding = Codebook(num_codes, code_dim, kmeans_init)
        self.register_buffer("cluster_size", torch.zeros(num_codes))

    @property
    def num_codes(self) -> int:
        return self.embedding.num_codes

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}, code_dim={self.code_dim}, beta={self.beta}, decay={self.decay}"

    # ------------------------------------------------------------ statistics
    def unused_codes(self) -> int:
        """Codes whose usage EMA is exactly zero: never chosen since the last :meth:`reset_usage`."""
        return int((self.cluster_size == 0).sum())

    def reset_usage(self) -> None:
        """Zero the usage statistic (the official training loop does so every epoch)."""
        self.cluster_size.zero_()

    # ---------------------------------------------------------------- lookup
    def nearest_codes(self, vectors: torch.Tensor) -> torch.Tensor:
        """Unit vectors ``[N, C]`` → ids ``[N]`` of the most similar codes."""
        codes = self.embedding.weight.float()
        distance = vectors.pow(2).sum(dim=1, keepdim=True) + codes.pow(2).sum(dim=1) - 2.0 * vectors @ codes.t()
        return distance.argmin(dim=1)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantize features ``[B, C, H, W]``; see the module docstring for what changes in training mode."""
        batch, channels, height, width = z.shape
        if channels != self.code_dim:
            raise ValueError(f"expected {self.code_dim} channels, got {channels}")
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = F.normalize(z.float().permute(0, 2, 3, 1), dim=-1)  # [B, H, W, C]
            flat = z.reshape(-1, channels)
            if not self.embedding.is_initialised():
                if not self.training:
                    raise RuntimeError(
                        "the codebook is not initialised: load trained weights, or run one batch in "
                        "training mode to initialise it by k-means"
                    )
                self._kmeans_init(flat.detach())
            ids = self.nearest_codes(flat.detach())
            quantized = self.embedding(ids).view_as(z)  # the codes as they were, before this batch's update
            if self.training:  # as the official quantizer and mmpretrain: look up first, then update
                self._ema_update(flat.detach(), ids)
            loss = self.beta * F.mse_loss(quantized.detach(), z)
            quantized = z + (quantized - z).detach()
        return QuantizerOutput(quantized.permute(0, 3, 1, 2), loss, ids.view(batch, height, width))

    # -------------------------------------------------------------- training
    @torch.no_grad()
    def _kmeans_init(self, vectors: torch.Tensor) -> None:
        centres = kmeans_cosine(vectors, self.num_codes, num_iters=10)
        if _distributed():
            dist.broadcast(centres, src=0)  # one codebook on every rank (see the module docstring)
        self.embedding.weight.data.copy_(centres)
        self.embedding.initted.fill_(1.0)

    @torch.no_grad()
    def _ema_update(self, vectors: torch.Tensor, ids: torch.Tensor) -> None:
        counts = _all_reduce_sum(torch.bincount(ids, minlength=self.num_codes).float())
        sums = _all_reduce_sum(torch.zeros(self.num_codes, self.code_dim, device=vectors.device).index_add_(0, ids, vectors))
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        chosen = counts > 0
        means = F.normalize(sums / counts.clamp(min=1.0).unsqueeze(1), dim=-1)
        weight = self.embedding.weight.data
        target = torch.where(chosen.unsqueeze(1), means, weight)
        weight.mul_(self.decay).add_(target, alpha=1.0 - self.decay)
        weight.copy_(F.normalize(weight, dim=-1))
