"""The CPU fast paths (beitv2_zoo/layers/fast.py): one switch, the same function, never stale, never traced."""

import pytest
import torch

from beitv2_zoo import get_model
from beitv2_zoo.layers import fast
from beitv2_zoo.layers.rel_pos import gather_bias, num_relative_distances, relative_position_index

from .conftest import image_batch, max_abs_diff, randomize_


@pytest.fixture
def switch():
    """Set the switch in a test; the process's own setting comes back afterwards."""
    previous = fast.enabled()
    yield fast.set_enabled
    fast.set_enabled(previous)


@pytest.fixture
def tiny():
    return randomize_(get_model("test_beit_tiny")).eval()


def test_switch_reads_the_environment_once_and_honours_the_old_variable(switch, monkeypatch):
    for name, value, expected in (("BEITV2_ZOO_FAST_PATHS", "0", False), ("BEITV2_ZOO_ONEDNN", "0", False),
                                  ("BEITV2_ZOO_FAST_PATHS", "1", True)):
        monkeypatch.delenv("BEITV2_ZOO_FAST_PATHS", raising=False)
        monkeypatch.delenv("BEITV2_ZOO_ONEDNN", raising=False)
        monkeypatch.setenv(name, value)
        switch(None)
        assert fast.enabled() is expected
        monkeypatch.setenv("BEITV2_ZOO_FAST_PATHS", "1" if not expected else "0")
        assert fast.enabled() is expected  # read once: later changes of the variable do not count
    switch(False)
    with torch.inference_mode():
        assert not fast.applies(torch.zeros(1))
    switch(True)
    with torch.inference_mode():
        assert fast.applies(torch.zeros(1))
    assert not fast.applies(torch.zeros(1))  # gradients recorded


def test_fast_and_reference_paths_compute_the_same_function(switch, tiny, monkeypatch):
    calls = []
    for name in ("attention", "mlp"):
        original = getattr(fast, name)
        monkeypatch.setattr(fast, name, lambda *args, _f=original, _n=name: calls.append(_n) or _f(*args))
    x = image_batch(2)
    switch(False)
    with torch.inference_mode():
        reference = tiny(x)
    assert calls == []  # switched off: the reference layers only
    switch(True)
    with torch.inference_mode():
        assert max_abs_diff(tiny(x), reference) <= 1e-5
    assert calls == ["attention", "mlp"] * len(tiny.blocks)
    tiny(x)
    assert len(calls) == 2 * len(tiny.blocks)  # gradients recorded: the reference layers


def test_bf16_inference_takes_the_batched_attention_only_at_inference(switch, tiny, monkeypatch):
    switch(True)
    calls = []
    batched = fast.batched_bf16_attention
    monkeypatch.setattr(fast, "batched_bf16_attention", lambda *args: calls.append(args[0].dtype) or batched(*args))
    x = image_batch(1)
    with torch.inference_mode():
        tiny(x)
    assert calls == []  # float32: the fused kernel
    tiny.to(torch.bfloat16)
    with torch.inference_mode():
        tiny(x.bfloat16())
    assert calls == [torch.bfloat16] * len(tiny.blocks)
    tiny(x.bfloat16())  # gradients recorded: the fused kernel
    switch(False)
    with torch.inference_mode():
        tiny(x.bfloat16())
    assert len(calls) == len(tiny.blocks)


def test_parameters_changed_through_data_are_seen_at_inference(switch, tiny):
    """The EMA idiom (``p.data.mul_(...).add_(...)``) bumps no version counter; nothing derived may go stale."""
    switch(True)
    x = image_batch(1)
    attn = tiny.blocks[0].attn
    with torch.inference_mode():
        before = tiny(x)
    attn.q_bias.data.add_(0.5)
    attn.relative_position_bias_table.data.mul_(3.0)
    with torch.inference_mode():
        after = tiny(x)
    expected = tiny(x).detach()
    assert not torch.equal(after, before)
    assert max_abs_diff(after, expected) <= 1e-5


def test_trace_after_an_inference_forward_follows_the_parameters(switch, tiny):
    switch(True)
    x = image_batch(1)
    with torch.no_grad():
        tiny(x)
        traced = torch.jit.trace(tiny, x, check_trace=False)  # holds the parameters, not tensors derived from them
        tiny.blocks[1].attn.v_bias.add_(1.0)
        tiny.blocks[1].attn.relative_position_bias_table.add_(1.0)
        assert max_abs_diff(traced(x), tiny(x)) <= 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_fast_bias_gather_is_the_reference_gather(dtype):
    index = relative_position_index((5, 7))
    table = torch.randn(num_relative_distances((5, 7)), 3, generator=torch.Generator().manual_seed(0)).to(dtype)
    expected = gather_bias(table, index)
    assert expected.shape == (3, 36, 36)
    assert fast.gather_bias(table, index).dtype == dtype and torch.equal(fast.gather_bias(table, index), expected)
