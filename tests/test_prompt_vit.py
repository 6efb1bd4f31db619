"""Prompt-ViT: token placement, averaged prompt MLPs, batching, specialise, MoCo-v3 init."""
from __future__ import annotations

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from core.encoders.prompt_vit import (
    PromptViT,
    SpecialisedPromptViT,
    load_mocov3_checkpoint,
    prompt_vit_base,
    prompt_vit_small,
)
from core.invariance import InvarianceSpace

ARCH = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
NUM_PATCHES = (32 // 8) ** 2


@pytest.fixture(scope="module")
def space() -> InvarianceSpace:
    return InvarianceSpace(["crop", "flip", "colour"], min_active=1)


def make(space: InvarianceSpace, seed: int = 0, **kwargs) -> PromptViT:
    torch.manual_seed(seed)
    return PromptViT(space, **{**ARCH, "num_prompts": 6, "prompt_hidden": 5, **kwargs})


def images(batch: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_shape_and_descriptor_dependence(space):
    enc = make(space).eval()
    x = images()
    a = enc(x, torch.tensor([1.0, 1.0, 1.0]))
    b = enc(x, torch.tensor([1.0, 0.0, 0.0]))
    assert a.shape == (3, 32) and enc.num_features == 32
    assert torch.isfinite(a).all()
    assert (a - b).abs().max() > 1e-4


def test_gradients_reach_prompt_and_descriptor(space):
    enc = make(space).train()
    inv = torch.tensor([0.5, 0.2, 0.9], requires_grad=True)
    enc(images(), inv).pow(2).sum().backward()
    assert inv.grad is not None and inv.grad.abs().sum() > 0
    for name, p in enc.prompt.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    batch_inv = torch.rand(3, 3, requires_grad=True)
    enc(images(), batch_inv).pow(2).sum().backward()  # .sum() of a LayerNorm output is ~constant
    assert batch_inv.grad.abs().sum(dim=1).gt(0).all()  # distinct rows: each gets a gradient


def test_averaged_mlps_equal_explicit_loop(space):
    enc = make(space, num_prompts=7, prompt_hidden=4)
    mlp, P, h = enc.prompt, 7, 4
    inv = torch.rand(5, 3, generator=torch.Generator().manual_seed(3))
    outputs = []
    for p in range(P):
        first, second = nn.Linear(3, h), nn.Linear(h, 32)
        rows = slice(p * h, (p + 1) * h)
        with torch.no_grad():
            first.weight.copy_(mlp.fc1.weight[rows])
            first.bias.copy_(mlp.fc1.bias[rows])
            second.weight.copy_(mlp.weight2[:, rows])
            second.bias.copy_(mlp.bias2[p])
        outputs.append(nn.Sequential(first, nn.ReLU(), second)(inv))
    expected = torch.stack(outputs).mean(0)
    # One fused float32 matmul vs seven small ones and a mean (|out| ~0.3): 4.5e-8 observed;
    # 1e-5 leaves ~200x, a wrong slice or average is off by ~0.1.
    torch.testing.assert_close(mlp(inv), expected, atol=1e-5, rtol=0)


def test_prompt_hidden_none_is_embed_dim_and_config_rebuilds(space):
    enc = make(space, prompt_hidden=None, prompt_act="gelu")
    assert enc.prompt.weight2.shape == (32, 6 * 32)
    again = PromptViT(space, **enc.config)
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in enc.state_dict().items()}
    with pytest.raises(ValueError, match="prompt_act"):
        make(space, prompt_act="tanh")


def test_token_appended_after_position_embedding(space):
    enc = make(space).eval()
    seen = []
    enc.vit.blocks[0].register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach()))
    x, inv = images(2), torch.tensor([0.0, 1.0, 1.0])
    enc(x, inv)
    assert seen[0].shape == (2, 1 + NUM_PATCHES + 1, 32)
    token = enc.prompt(inv.unsqueeze(0))[0]
    torch.testing.assert_close(seen[0][:, -1], token.expand(2, -1))  # last slot, no pos_embed
    with torch.no_grad():
        enc.vit.pos_embed.add_(torch.randn_like(enc.vit.pos_embed))
    enc(x, inv)
    assert torch.equal(seen[1][:, -1], seen[0][:, -1])
    assert (seen[1][:, :-1] - seen[0][:, :-1]).abs().min() > 0  # every other token moved


def test_mixed_batch_equals_per_sample_calls(space):
    enc = make(space).eval()
    x = images(6)
    d = space.descriptors
    inv = torch.stack([d[0], d[3], d[0], d[6], d[3], torch.tensor([0.25, 0.5, 0.75])])
    batched = enc(x, inv)
    single = torch.cat([enc(x[i : i + 1], inv[i]) for i in range(6)])
    # Batch 6 vs 1 changes float32 matmul blocking (|z| ~3): 7e-7 observed; 1e-4 leaves ~140x
    # and is still ~250x below a row given another descriptor (>= 0.027 apart here).
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=0)
    same = enc(x, d[2].expand(6, -1))  # one distinct row: the broadcast path
    torch.testing.assert_close(same, enc(x, d[2]), atol=1e-5, rtol=0)


def test_specialise_matches_and_keeps_mode(space):
    enc = make(space).train()
    d = torch.tensor([1.0, 0.0, 1.0])
    plain = enc.specialise(d)
    assert isinstance(plain, SpecialisedPromptViT) and plain.training
    assert not any(b.requires_grad for b in plain.buffers())
    enc.eval()
    plain = enc.specialise(d)
    assert not plain.training
    x = images(4)
    torch.testing.assert_close(plain(x), enc(x, d), atol=1e-5, rtol=0)
    with pytest.raises(ValueError):
        enc.specialise(torch.ones(2, 3))


@pytest.mark.parametrize("bad", [[1.0, 0.0], [0.5, float("nan"), 1.0], [1.5, 0.0, 0.0],
                                 [-0.1, 1.0, 1.0], [[1.0, 1.0, 1.0]] * 2])
def test_bad_descriptors_raise(space, bad):
    enc = make(space)
    with pytest.raises(ValueError):
        enc(images(3), torch.tensor(bad))


def test_named_constructors(space):
    small = prompt_vit_small(space, img_size=32, patch_size=8, depth=1, num_prompts=2)
    base = prompt_vit_base(space, img_size=32, patch_size=8, depth=1, embed_dim=48, num_prompts=2)
    assert small.name == "prompt_vit_small" and small.num_features == 384
    assert small.config["num_heads"] == 6 and small.config["depth"] == 1
    assert base.name == "prompt_vit_base" and base.num_features == 48
    assert base(images(2), space.ones()).shape == (2, 48)


# ------------------------------------------------------------------ MoCo-v3 init
def tiny_vit(seed: int) -> VisionTransformer:
    torch.manual_seed(seed)
    vit = VisionTransformer(num_classes=0, **ARCH)
    with torch.no_grad():
        for p in vit.parameters():
            p.normal_()  # far from any default init, so a skipped key would show
    return vit


def mocov3_file(tmp_path, prefix="module.base_encoder.", drop=None, reshape=None, arch="vit_tiny"):
    vit = tiny_vit(7)
    base = dict(vit.state_dict())
    if drop:
        base.pop(drop)
    if reshape:
        base[reshape] = torch.zeros(3, 3)
    state = {prefix + k: v for k, v in base.items()}
    state[prefix + "head.0.weight"] = torch.randn(64, 32)
    state[prefix + "head.1.running_mean"] = torch.zeros(64)
    if prefix:
        other = prefix.replace("base_encoder", "momentum_encoder")
        state.update({other + k: torch.zeros_like(v) for k, v in base.items()})
        state[prefix.replace("base_encoder", "predictor") + "0.weight"] = torch.randn(8, 8)
    path = tmp_path / "mocov3.pth.tar"
    torch.save({"epoch": 300, "arch": arch, "state_dict": state,
                "optimizer": {"param_groups": [{"lr": 0.1}]}}, path)
    return path, vit


@pytest.mark.parametrize("prefix", ["module.base_encoder.", "base_encoder.", ""])
def test_mocov3_init_keeps_pretrained_weights(space, tmp_path, prefix):
    path, vit = mocov3_file(tmp_path, prefix)
    fresh_prompt = make(space).prompt.state_dict()
    torch.manual_seed(0)
    enc = PromptViT(space, **{**ARCH, "num_prompts": 6, "prompt_hidden": 5}, pretrained=str(path))
    src = vit.state_dict()
    for key in ["patch_embed.proj.weight", "patch_embed.proj.bias", "pos_embed", "cls_token",
                "blocks.0.attn.qkv.weight", "blocks.1.mlp.fc2.weight", "norm.weight"]:
        assert torch.equal(enc.vit.state_dict()[key], src[key]), key
    assert enc.load_report["loaded"] == len(src) and enc.load_report["prefix"] == prefix
    for k, v in fresh_prompt.items():  # projector stays freshly initialised
        assert torch.equal(enc.prompt.state_dict()[k], v)
    x = images(2)
    vit.eval(), enc.eval()
    assert enc(x, space.ones()).shape == (2, 32)


def test_mocov3_vit_small_head_count_warns(space, tmp_path):
    path, _ = mocov3_file(tmp_path, arch="vit_small")  # MoCo-v3's ViT-S has 12 heads
    with pytest.warns(UserWarning, match="12 heads"):
        make(space, pretrained=path)


def test_plain_timm_state_dict_loads(space, tmp_path):
    vit = tiny_vit(3)
    path = tmp_path / "timm.pth"
    torch.save(vit.state_dict(), path)
    enc = make(space)
    report = load_mocov3_checkpoint(enc, path)
    assert report["loaded"] == len(vit.state_dict())
    assert torch.equal(enc.vit.patch_embed.proj.weight, vit.patch_embed.proj.weight)


def test_mocov3_bad_checkpoints_name_file_and_key(space, tmp_path):
    path, _ = mocov3_file(tmp_path, drop="blocks.1.norm1.bias")
    with pytest.raises(ValueError, match="mocov3.pth.tar.*blocks.1.norm1.bias"):
        make(space, pretrained=str(path))
    path, _ = mocov3_file(tmp_path, reshape="pos_embed")
    with pytest.raises(ValueError, match="mocov3.pth.tar.*pos_embed"):
        make(space, pretrained=str(path))
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(ValueError, match="corrupt.pth"):
        make(space, pretrained=str(corrupt))
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        make(space, pretrained=str(tmp_path / "nowhere.pth"))
