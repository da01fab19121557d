"""Constants the weight tables share, each written once: hosts, papers, evaluation presets, source helpers."""

from .schema import Preprocessing, SegmentationPreprocessing, Source

BEIT_V2_PAPER = "https://arxiv.org/abs/2208.06366"
BEIT_PAPER = "https://arxiv.org/abs/2106.08254"

OPENMMLAB = "https://download.openmmlab.com"
OFFICIAL = "https://github.com/addf400/files/releases/download/BEiT-v2"
OFFICIAL_V1 = "https://github.com/addf400/files/releases/download/v1.0"
"""The BEiT (v1) GitHub release: its ImageNet and ADE20K fine-tuned files."""
UNILM_BLOB = "https://conversationhub.blob.core.windows.net/beit-share-public"
OFFICIAL_README = "microsoft/unilm beit2/README.md"

IMAGENET_EVAL = Preprocessing(resize_size=256, crop_size=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
"""Short edge 256 (bicubic, truncated), centre crop 224, ImageNet mean/std: mmpretrain's BEiT v2 test pipeline,
the official evaluation, and a pretraining model's own view of its input."""
HALF_EVAL = Preprocessing(resize_size=256, crop_size=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
"""As :data:`IMAGENET_EVAL` with mean = std = 127.5 / 255: mmpretrain's BEiT v1 models."""
TIMM_BASE_EVAL = Preprocessing(resize_size=248, crop_size=224, crop_pct=0.9)
"""timm ``crop_pct=0.9``: short edge ``floor(224 / 0.9) = 248``, centre crop 224."""
TIMM_LARGE_EVAL = Preprocessing(resize_size=235, crop_size=224, crop_pct=0.95)
"""timm ``crop_pct=0.95``: short edge ``floor(224 / 0.95) = 235``, centre crop 224."""
ADE20K_EVAL_512 = SegmentationPreprocessing()
"""ADE20K at crop 512: resize to fit (2048, 512) keeping the aspect (cv2 bilinear), ImageNet mean/std, slide
windows of 512 every 341 pixels: the official BEiT v2 test pipeline and ``test_cfg``."""
ADE20K_EVAL_640 = SegmentationPreprocessing(resize_size=640, crop_size=640, scale=(2560, 640), stride=426)
"""ADE20K at crop 640 (the BEiT v1 and mmsegmentation BEiT files): fit (2560, 640), slide 640 every 426 pixels."""
TOKENIZER_EVAL = Preprocessing(resize_size=256, crop_size=224, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
"""Pixels in [0, 1] (``VQKD.encode`` maps them to [-1, 1] itself); the official VQ-KD validation resize/crop."""


def official(file: str, prefix: str | None = None) -> Source:
    """A file of the official BEiT v2 GitHub release; ``prefix`` is the sha256 prefix in its name, if any."""
    return Source(url=f"{OFFICIAL}/{file}", sha256_prefix=prefix, host="official")


def openmmlab(path: str, prefix: str | None = None) -> Source:
    """A file under download.openmmlab.com; ``prefix`` is the sha256 prefix in its name."""
    return Source(url=f"{OPENMMLAB}/{path}", sha256_prefix=prefix, host="openmmlab")


def official_v1(file: str) -> Source:
    """A file of the BEiT (v1) GitHub release (``v1.0``); these files carry no hash."""
    return Source(url=f"{OFFICIAL_V1}/{file}", host="official")


def mmseg(config: str, prefix: str, family: str = "beit") -> Source:
    """An mmsegmentation 0.x model-zoo file, ``mmsegmentation/v0.5/<family>/<config>/<config>-<prefix>.pth``
    (the layout of every URL in mmsegmentation's metafiles); ``prefix`` is the sha256 prefix in the name."""
    return openmmlab(f"mmsegmentation/v0.5/{family}/{config}/{config}-{prefix}.pth", prefix)


def hf_file(repo: str, file: str) -> Source:
    """A file of any Hugging Face Hub repository (``timm_hub`` is the timm case)."""
    return Source(hf_repo=repo, hf_filename=file, host="hf-hub")


def timm_hub(tag: str) -> Source:
    """timm's Hugging Face Hub copy ``timm/<tag>``."""
    return hf_file(f"timm/{tag}", "model.safetensors")
