"""Oracle: :func:`beitv2_zoo.segment.slide_logits` against mmsegmentation 1.2.2's own inference code.

Both sides are driven by one small deterministic module (a strided convolution: ``[B, 3, H, W]`` →
logits ``[B, K, H/4, W/4]``). On mmseg's side it is the ``extract_feat`` of an ``EncoderDecoder``
whose decode head passes the logits through, so that mmseg's own ``slide_inference``,
``encode_decode``, ``predict_by_feat`` (the resize of each window's logits) and
``postprocess_result`` (the resize to the original size and the argmax) run unchanged. Skipped
without mmseg (an optional test dependency); its ``import mmseg.models`` needs
``tests/mmseg_stub.py`` in place of mmcv's compiled ops.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("mmseg")
pytest.importorskip("mmengine")

from tests import mmseg_stub  # noqa: E402

mmseg_stub.install()

from mmengine.config import ConfigDict  # noqa: E402
from mmseg.models.decode_heads.decode_head import BaseDecodeHead  # noqa: E402
from mmseg.models.segmentors import EncoderDecoder  # noqa: E402
from mmseg.models.segmentors.base import BaseSegmentor  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402

from beitv2_zoo.segment import slide_logits, upsample_argmax, whole_logits  # noqa: E402

NUM_CLASSES, CROP, STRIDE = 7, 64, 43


class Logits(nn.Module):
    """The shared module: ``[B, 3, H, W]`` → ``[B, K, H/4, W/4]``, deterministic."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.proj = nn.Conv2d(3, NUM_CLASSES, 4, stride=4)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(self.proj.weight.shape, generator=generator))
            self.proj.bias.copy_(torch.randn(NUM_CLASSES, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.proj(x)) * 3


class OurSegmenter(nn.Module):
    """Our side: the segmenter contract around the shared module."""

    task = "semantic-segmentation"

    def __init__(self, logits: Logits) -> None:
        super().__init__()
        self.logits = logits
        self.num_classes, self.patch_size, self.output_stride = NUM_CLASSES, 16, 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)


class PassThroughHead(BaseDecodeHead):
    """An mmseg decode head whose forward returns its input: the logits of ``extract_feat``."""

    def __init__(self) -> None:
        super().__init__(in_channels=NUM_CLASSES, channels=NUM_CLASSES, num_classes=NUM_CLASSES)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs


class MmsegSegmentor(EncoderDecoder):
    """mmseg's ``EncoderDecoder`` with the shared module as its features and the pass-through head.

    Only the construction differs (no backbone config to build); every inference method is mmseg's.
    """

    def __init__(self, logits: Logits, mode: str) -> None:
        BaseSegmentor.__init__(self)
        self.shared = logits
        self.decode_head = PassThroughHead()
        self.align_corners = self.decode_head.align_corners
        self.num_classes = self.out_channels = NUM_CLASSES
        self.test_cfg = ConfigDict(mode=mode, crop_size=(CROP, CROP), stride=(STRIDE, STRIDE))

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.shared(inputs)


def _sample(height: int, width: int, original: tuple[int, int]) -> SegDataSample:
    sample = SegDataSample()
    sample.set_metainfo(dict(ori_shape=original, img_shape=(height, width), padding_size=[0, 0, 0, 0]))
    return sample


@pytest.mark.parametrize("mode, shape, original", [
    ("slide", (150, 230), (301, 437)),  # 3 × 5 overlapping windows, non-square, bigger than the crop
    ("slide", (64, 197), (120, 391)),   # one row of windows
    ("whole", (144, 224), (289, 450)),
])
def test_logits_and_labels_equal_mmsegs(mode, shape, original):
    logits = Logits().eval()
    theirs_model, ours_model = MmsegSegmentor(logits, mode).eval(), OurSegmenter(logits).eval()
    x = torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        theirs_logits = theirs_model.inference(x, [_sample(*shape, original).metainfo])
        theirs = theirs_model.predict(x, [_sample(*shape, original)])[0]
        ours_logits = slide_logits(ours_model, x, CROP, STRIDE) if mode == "slide" else whole_logits(ours_model, x)
        ours_labels = upsample_argmax(ours_logits, original)
        ours_full = F.interpolate(ours_logits, size=original, mode="bilinear", align_corners=False)[0]

    assert ours_logits.shape == theirs_logits.shape == (1, NUM_CLASSES, *shape)
    torch.testing.assert_close(ours_logits, theirs_logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours_full, theirs.seg_logits.data, rtol=0, atol=1e-6)
    assert torch.equal(ours_labels, theirs.pred_sem_seg.data[0])
    print(f"{mode} {shape}: max |ours - mmseg| = {(ours_logits - theirs_logits).abs().max().item():.3g} (window "
          f"logits), {(ours_full - theirs.seg_logits.data).abs().max().item():.3g} (original size)")
