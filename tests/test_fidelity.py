"""Agreement with the official training code where 0.1 differed (issue 12, items 8 and 10; the warmup of
item 9 is in ``tests/train/test_optim.py``)."""

import copy

import torch
from torch import nn

from beitv2_zoo.models import Beit, NormEMAQuantizer


def test_training_mode_quantizer_returns_the_codes_before_its_ema_update():
    """The official ``NormEMAVectorQuantizer`` looks up ``z_q`` and then updates the codebook."""
    torch.manual_seed(0)
    quantizer = NormEMAQuantizer(num_codes=16, code_dim=8, kmeans_init=False).train()
    before = quantizer.embedding.weight.detach().clone()
    z = torch.randn(2, 8, 4, 4)
    out = quantizer(z)
    after = quantizer.embedding.weight.detach()
    assert (after - before).abs().max() > 1e-3, "the EMA step moved the codebook"
    looked_up = before[out.ids.flatten()].view(2, 4, 4, 8).permute(0, 3, 1, 2)
    assert torch.allclose(out.quantized, looked_up, atol=1e-6)
    assert not torch.allclose(out.quantized, after[out.ids.flatten()].view(2, 4, 4, 8).permute(0, 3, 1, 2), atol=1e-6)
    frozen = copy.deepcopy(quantizer).eval()  # eval mode: the same lookup, no update
    assert torch.equal(frozen(z).ids, frozen(z).ids)


def test_drop_rate_is_where_the_official_code_puts_it():
    """After the position embedding, after each attention projection and after each MLP; not before the head."""
    model = Beit(img_size=32, patch_size=16, embed_dim=32, depth=2, num_heads=2, num_classes=5, drop_rate=0.25)
    for block in model.blocks:
        assert block.attn.proj_drop.p == 0.25 and block.mlp.drop.p == 0.25
    assert model.pos_drop.p == 0.25
    rates = [m.p for m in model.modules() if isinstance(m, nn.Dropout)]
    assert rates == [0.25] * (1 + 2 * len(model.blocks))
    model.train()
    tokens = torch.randn(3, 5, 32)
    assert torch.equal(model.forward_head(tokens, pre_logits=True), model.pool(tokens))  # no dropout before the head


def test_mlp_dropout_acts_in_training_only():
    model = Beit(img_size=32, patch_size=16, embed_dim=32, depth=1, num_heads=2, num_classes=5, drop_rate=0.5)
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(1)
    first = model(x)
    torch.manual_seed(2)
    assert not torch.equal(first, model(x))
