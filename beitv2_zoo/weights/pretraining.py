"""Weight records of the BEiT v2 pretraining models and the VQ-KD visual tokenizers, as data.

Facts come from mmpretrain 1.2.0's ``configs/beitv2`` (metafile and config), the
microsoft/unilm ``beit2`` README and ``TOKENIZER.md``. These models have no classification
head: ``num_classes`` is 0 and ``label_set`` is ``None``.

* A pretraining model's ``preprocessing`` is the evaluation transform of its own input
  (ImageNet mean/std, as in both recipes), for ``model(x)`` / ``extract_feat(x)``.
* A tokenizer's ``preprocessing`` leaves pixels in [0, 1] (mean 0, std 1), which is what
  ``VQKD.encode`` expects. The resize to 256 and crop to 224 are the official VQ-KD
  validation transform.
* Parameter counts are those of the models built here. A tokenizer has no teacher, no
  scaling layers and none of the official ``EmbeddingEMA``'s unused ``cluster_size`` /
  ``embed_avg`` tensors, so its count is below that of the official file.
"""

from ._common import BEIT_V2_PAPER, IMAGENET_EVAL, OFFICIAL_README, TOKENIZER_EVAL, official, openmmlab
from .schema import WeightRecord

MIM_BASE_PARAMS = 192_809_840
"""Backbone 85,664,592 + aggregation neck 14,178,816 + LM head 6,299,648 + VQ-KD encoder and codebook 86,666,784."""
MIM_LARGE_PARAMS = 423_395_296
TOKENIZER_GMACS = 17.75
"""Tokenizing one 224² image: the ViT-B/16 backbone's 17.58 (mmpretrain's count) + task layer 0.12 + codebook lookup 0.05."""
DEFAULT_TOKENIZER = "vqkd_encoder_base_decoder_3x768x12_clip"
"""The tokenizer every official BEiT v2 pretraining run used."""

MMPRETRAIN_PRETRAIN_RECORDS = (
    WeightRecord(
        name="beitv2_beit-base-p16_8xb256-amp-coslr-300e_in1k",
        architecture="beitv2_mim_base_patch16",
        num_classes=0,
        label_set=None,
        task="masked-image-modeling",
        sources=(
            openmmlab(
                "mmselfsup/1.x/beitv2/beitv2_vit-base-p16_8xb256-amp-coslr-300e_in1k/"
                "beitv2_vit-base-p16_8xb256-amp-coslr-300e_in1k_20221212-a157be30.pth",
                "a157be30",
            ),
        ),
        preprocessing=IMAGENET_EVAL,
        params=MIM_BASE_PARAMS,
        gmacs=17.58,
        license="apache-2.0",
        paper=BEIT_V2_PAPER,
        training_data=("ImageNet-1k",),
        tokenizer="vqkd_encoder",
        notes=(
            "BEiT v2 pretrained 300 epochs by OpenMMLab (AdamW lr 1.5e-3, betas 0.9/0.98, batch 2048); "
            "fine-tuned downstream as beit-base-p16_beitv2-pre_8xb128-coslr-100e_in1k. The file holds the "
            "tokenizer as target_generator.*. Parameters: 192,809,840 as mmpretrain 1.2.0 builds the model; "
            "its metafile says 192,811,376, 1,536 more, exactly one LayerNorm(768): the backbone.ln2 that the "
            "config created before out_type='raw' was added (mmpretrain#1527, fixed by #1528). mmpretrain left "
            "the tokenizer in training mode while pretraining, so the codebook in this file may have drifted "
            "by EMA from vqkd_encoder.pth; it is loaded as it is and used frozen here. GMACs are the "
            "backbone's (model(x)); computing targets runs the tokenizer as well."
        ),
    ),
)


def _official_pretrain(size: str, suffix: str, epochs: int, notes: str) -> WeightRecord:
    base = size == "base"
    return WeightRecord(
        name=f"beitv2_{size}_patch16_224_{suffix}",
        architecture=f"beitv2_mim_{size}_patch16",
        num_classes=0,
        label_set=None,
        task="masked-image-modeling",
        sources=(official(f"beitv2_{size}_patch16_224_{suffix}.pth"),),
        preprocessing=IMAGENET_EVAL,
        params=MIM_BASE_PARAMS if base else MIM_LARGE_PARAMS,
        gmacs=17.58 if base else 61.60,
        license="mit",
        paper=BEIT_V2_PAPER,
        training_data=("ImageNet-1k",),
        tokenizer=DEFAULT_TOKENIZER,
        notes=(
            f"Official BEiT v2 {size} pretrained {epochs} epochs on ImageNet-1k (patch aggregation after block "
            f"{9 if base else 21}, 2 aggregation blocks, shared LM head). The file holds no tokenizer: "
            f"{DEFAULT_TOKENIZER} is attached from its own record as model.tokenizer. {notes}"
        ),
    )


OFFICIAL_PRETRAIN_RECORDS = (
    _official_pretrain("base", "pt1k_300e", 300, "Fine-tuned: beitv2_base_patch16_224_pt1k_300e_ft1k (85.0)."),
    _official_pretrain("base", "pt1k", 1600, "Fine-tuned: beitv2_base_patch16_224_pt1k_ft1k (85.5)."),
    _official_pretrain("large", "pt1k_300e", 300, "Fine-tuned: beitv2_large_patch16_224_pt1k_300e_ft1k (86.6)."),
    _official_pretrain(
        "large", "pt1k", 1600,
        "Fine-tuned: beitv2_large_patch16_224_pt1k_ft1k (87.3). microsoft/unilm#885 reports wrong MIM accuracy "
        "for this file with that tokenizer; the pairing is unresolved upstream.",
    ),
)


def _official_tokenizer(decoder: int, teacher: str, sha256_prefix: str, params: int, usage: str) -> WeightRecord:
    stem = f"vqkd_encoder_base_decoder_{decoder}x768x12_{teacher}"
    teacher_text = "OpenAI CLIP-B/16 (512-d targets)" if teacher == "clip" else "DINO ViT-B/16 (768-d targets)"
    return WeightRecord(
        name=stem,
        architecture=f"vqkd_base_{teacher}_decoder{decoder}",
        num_classes=0,
        label_set=None,
        task="visual-tokenizer",
        sources=(official(f"{stem}-{sha256_prefix}.pth", sha256_prefix),),
        preprocessing=TOKENIZER_EVAL,
        params=params,
        gmacs=TOKENIZER_GMACS,
        license="mit",
        paper=BEIT_V2_PAPER,
        training_data=("ImageNet-1k",),
        notes=(
            f"Official VQ-KD tokenizer: ViT-B/16 encoder, 8192 x 32 codebook, {decoder}-block decoder, distilled "
            f"from {teacher_text}. Codebook usage {usage} ({OFFICIAL_README} / TOKENIZER.md). The file's teacher*, "
            "scaling* and loss* tensors (the official loader deletes them too) and the unused "
            "quantize.embedding.cluster_size / embed_avg are dropped on load; the decoder is kept "
            "(it is only needed to train the tokenizer further). GMACs: tokenizing only (no decoder)."
        ),
    )


OFFICIAL_TOKENIZER_RECORDS = (
    _official_tokenizer(1, "clip", "d93179da", 94_917_152, "100%"),
    _official_tokenizer(3, "clip", "d5036aa7", 109_091_360, "97%; the tokenizer of all official BEiT v2 pretraining"),
    _official_tokenizer(1, "dino", "663c55d7", 95_114_016, "100%"),
)

MMPRETRAIN_TOKENIZER_RECORDS = (
    WeightRecord(
        name="vqkd_encoder",
        architecture="vqkd_base_encoder",
        num_classes=0,
        label_set=None,
        task="visual-tokenizer",
        sources=(openmmlab("mmselfsup/1.x/target_generator_ckpt/vqkd_encoder.pth"),),
        preprocessing=TOKENIZER_EVAL,
        params=86_666_784,
        gmacs=TOKENIZER_GMACS,
        license="apache-2.0",
        paper=BEIT_V2_PAPER,
        training_data=("ImageNet-1k",),
        notes=(
            "mmpretrain's VQ-KD encoder and codebook (no decoder), the init_cfg checkpoint of the target generator "
            "in configs/beitv2; the name is the file's stem. No hash is published (the file name carries none). "
            "Its key layout is unpublished: mmpretrain names (encoder.layers.*, with encoder.ln1 or encoder.fc_norm "
            "as the final norm) and official names are both accepted."
        ),
    ),
)

TEST_PRETRAIN_RECORDS = (
    WeightRecord(
        name="test_vqkd_tiny",
        architecture="test_vqkd_tiny",
        num_classes=0,
        label_set=None,
        task="visual-tokenizer",
        sources=(),
        preprocessing=TOKENIZER_EVAL,
        params=235_544,
        gmacs=0.0,
        license="apache-2.0",
        paper=BEIT_V2_PAPER,
        notes="A 2-block, 64-wide tokenizer with a 64 x 8 codebook and random weights, for tests and demos.",
    ),
    WeightRecord(
        name="test_beitv2_mim_tiny",
        architecture="test_beitv2_mim_tiny",
        num_classes=0,
        label_set=None,
        task="masked-image-modeling",
        sources=(),
        preprocessing=IMAGENET_EVAL,
        params=522_432,
        gmacs=0.0,
        license="apache-2.0",
        paper=BEIT_V2_PAPER,
        tokenizer="test_vqkd_tiny",
        notes="A 4-block, 64-wide pretraining model with test_vqkd_tiny's encoder as tokenizer, for tests and demos.",
    ),
)

PRETRAIN_RECORDS: tuple[WeightRecord, ...] = (
    MMPRETRAIN_PRETRAIN_RECORDS
    + OFFICIAL_PRETRAIN_RECORDS
    + OFFICIAL_TOKENIZER_RECORDS
    + MMPRETRAIN_TOKENIZER_RECORDS
    + TEST_PRETRAIN_RECORDS
)
"""Every pretraining-model and tokenizer record, in the order ``weights.ALL_RECORDS`` lists them."""
