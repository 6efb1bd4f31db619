"""Descriptor gradients through a frozen encoder: back-propagation, forward mode, light path."""
import pytest
import torch

from conftest import tiny_encoder
from core.downstream.descriptor_grad import GRAD_MODES, features_with_descriptor_grad


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread per module


def _frozen(name, space):
    return tiny_encoder(name, space).double().eval()


def _state(encoder):
    return {k: v.detach().clone() for k, v in encoder.state_dict().items()}


@pytest.mark.parametrize("name", ["hyper_resnet18", "prompt_vit_small"])
def test_all_modes_agree_on_features_and_descriptor_gradient(name, audio_space):
    encoder = _frozen(name, audio_space)
    before = _state(encoder)
    flags = [m.fused_attn for m in encoder.modules() if hasattr(m, "fused_attn")]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, 32, 32, generator=gen, dtype=torch.float64)
    start = torch.rand(audio_space.dim, generator=gen, dtype=torch.float64)
    weights = torch.randn(5, encoder.num_features, generator=gen, dtype=torch.float64)
    features, grads = {}, {}
    for mode in GRAD_MODES:
        d = start.clone().requires_grad_(True)
        z = features_with_descriptor_grad(encoder, x, d, mode, micro_batch=2)  # uneven chunks 2, 2, 1
        assert z.shape == (5, encoder.num_features)
        (z * weights).sum().pow(2).backward()  # a non-linear loss: grad_z depends on every sample
        features[mode], grads[mode] = z.detach(), d.grad.clone()
    assert grads["backprop"].abs().max() > 1e-6  # the descriptor really matters
    for mode in ("forward", "light"):
        torch.testing.assert_close(features[mode], features["backprop"], rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(grads[mode], grads["backprop"], rtol=1e-4, atol=1e-8)
    # frozen: no gradient reached the encoder, nothing in it changed, attention flags restored
    assert all(p.grad is None for p in encoder.parameters())
    after = _state(encoder)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert flags == [m.fused_attn for m in encoder.modules() if hasattr(m, "fused_attn")]
    if name == "prompt_vit_small":
        assert flags and all(flags)  # forward mode worked although fused attention was on


@pytest.mark.parametrize("mode", ["forward", "light"])
def test_custom_backward_matches_finite_differences(mode, audio_space):
    encoder = _frozen("hyper_resnet18", audio_space)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    d = torch.full((audio_space.dim,), 0.4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: features_with_descriptor_grad(encoder, x, v, mode, 2), (d,),
                                    eps=1e-6, atol=1e-6, fast_mode=True)


def test_errors_name_the_problem(audio_space):
    encoder = tiny_encoder("hyper_resnet18", audio_space).eval()
    x = torch.randn(2, 3, 32, 32)
    d = torch.full((audio_space.dim,), 0.5)
    with pytest.raises(ValueError, match="mode must be one of"):
        features_with_descriptor_grad(encoder, x, d, "reverse")
    with pytest.raises(ValueError, match="micro_batch"):
        features_with_descriptor_grad(encoder, x, d, "light", micro_batch=0)
    with pytest.raises(ValueError, match="one vector"):
        features_with_descriptor_grad(encoder, x, d.expand(2, -1), "forward")
    with pytest.raises(ValueError, match="outside"):
        features_with_descriptor_grad(encoder, x, d + 1.0, "backprop")
    encoder.train()
    with pytest.raises(ValueError, match="eval mode"):
        features_with_descriptor_grad(encoder, x, d, "light")
