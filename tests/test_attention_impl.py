"""The eager attention switch computes the same function as SDPA; the default stays SDPA."""

import pytest
import torch

from beitv2_zoo import get_model
from beitv2_zoo.layers import Attention, fast
from beitv2_zoo.layers.attention import eager_attention, set_attention_impl
from beitv2_zoo.models import BeitV2Pretrain
from beitv2_zoo.models.mim import MIM_ARCHITECTURES
from beitv2_zoo.train.objectives import mim_loss

from .conftest import image_batch, max_abs_diff, randomize_


def test_default_is_sdpa_and_unknown_impls_are_refused():
    model = get_model("test_beit_tiny")
    assert {m.attn_impl for m in model.modules() if isinstance(m, Attention)} == {"sdpa"}
    with pytest.raises(ValueError, match="impl must be one of"):
        set_attention_impl(model, "flash")


def test_eager_and_sdpa_classifier_logits_agree():
    model = randomize_(get_model("test_beit_tiny")).eval()
    x = image_batch(2)
    with torch.inference_mode():
        sdpa = model(x)
        set_attention_impl(model, "eager")
        assert {m.attn_impl for m in model.modules() if isinstance(m, Attention)} == {"eager"}
        eager = model(x)
        set_attention_impl(model, "sdpa")
        again = model(x)
    assert max_abs_diff(eager, sdpa) <= 1e-5
    assert torch.equal(again, sdpa)  # switching back restores the default path exactly


def test_eager_and_sdpa_training_step_agree():
    """MIM loss and gradients (tokenizer included in the switch) agree in float32."""
    torch.manual_seed(0)
    model = BeitV2Pretrain(**MIM_ARCHITECTURES["test_beitv2_mim_tiny"]).train()
    images, targets = image_batch(2, seed=1), torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(2, 14, 14, dtype=torch.bool)
    mask[:, 3:10, 2:12] = True

    def loss_and_grads(impl: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        set_attention_impl(model, impl)
        model.zero_grad(set_to_none=True)
        loss = mim_loss(model, images, targets, mask)["loss"]
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    sdpa_loss, sdpa_grads = loss_and_grads("sdpa")
    eager_loss, eager_grads = loss_and_grads("eager")
    assert sdpa_grads.keys() == eager_grads.keys() and "rel_pos_bias.relative_position_bias_table" in sdpa_grads
    assert abs(float(eager_loss - sdpa_loss)) <= 1e-5
    assert max(max_abs_diff(eager_grads[n], sdpa_grads[n]) for n in sdpa_grads) <= 1e-5


def test_eager_attention_with_and_without_bias_matches_sdpa():
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 10, 8, generator=generator) for _ in range(3))
    bias = torch.randn(1, 3, 10, 10, generator=generator)
    for mask in (None, bias):
        expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        assert max_abs_diff(eager_attention(q, k, v, mask), expected) <= 1e-6


def test_bf16_cpu_inference_attention_matches_sdpa_within_bfloat16_rounding():
    """bfloat16 at CPU inference takes two batched GEMMs instead of the fused kernel (which calls:
    tests/test_fast_paths.py); same function."""
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 17, 8, generator=generator) for _ in range(3))
    bias = torch.randn(1, 3, 17, 17, generator=generator)
    for b in (bias, None):
        reference = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=b)
        with torch.inference_mode():
            out = fast.batched_bf16_attention(*(t.bfloat16() for t in (q, k, v)), None if b is None else b.bfloat16())
        assert out.dtype == torch.bfloat16 and out.shape == reference.shape
        assert max_abs_diff(out.float(), reference) <= 3e-2  # a few bfloat16 steps on values of order 1


def test_bf16_model_keeps_close_to_float32():
    model = randomize_(get_model("test_beit_tiny")).eval()
    x = image_batch(4)
    with torch.inference_mode():
        reference = model(x)
        bf16 = model.to(torch.bfloat16)(x.bfloat16()).float()
    cosine = torch.nn.functional.cosine_similarity(bf16, reference, dim=-1)
    assert cosine.min() >= 0.999
