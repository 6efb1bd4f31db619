"""Shared test fixtures: small spaces and tiny versions of every registered encoder."""
import pytest
import torch
from torch import nn

from core import InvarianceSpace, build_encoder

AUDIO_NAMES = ["pitch_shift", "fade_in", "fade_out", "noise", "time_mask", "time_shift", "time_stretch"]

# Tiny but structurally complete settings for each registered encoder (3x32x32 input).
TINY = {
    "hyper_resnet18": {"in_chans": 3, "width": 8},
    "hyper_resnet50": {"in_chans": 3, "width": 4},
    "resnet18": {"in_chans": 3, "width": 8},
    "resnet50": {"in_chans": 3, "width": 4},
    "looc_resnet18": {"in_chans": 3, "width": 8, "branches": 3},
    "looc_resnet50": {"in_chans": 3, "width": 4, "branches": 2},
    "prompt_vit_small": {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2, "num_prompts": 4},
    "prompt_vit_base": {"img_size": 32, "patch_size": 8, "embed_dim": 48, "depth": 2, "num_heads": 4, "num_prompts": 4},
}


@pytest.fixture
def audio_space() -> InvarianceSpace:
    return InvarianceSpace(AUDIO_NAMES, min_active=2)


def tiny_encoder(name: str, space: InvarianceSpace, seed: int = 0):
    torch.manual_seed(seed)
    return build_encoder(name, space, **TINY[name])


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a test module (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    tiny tensors are latency-bound, extra threads only contend on a busy 2-core machine, and
    in-process training then does the same arithmetic as the one-thread subprocesses."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class FixedDescriptor(nn.Module):
    """``x -> encoder(x, inv)``: the ``specialise`` of the hand-built test encoders (a view of
    the encoder itself, so it follows the encoder's weights and mode)."""

    def __init__(self, encoder, inv: torch.Tensor) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("inv", encoder.space.check(inv).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x, self.inv)
