"""Every registered encoder: shapes, descriptor effect, gradients, specialise, batching."""
import pytest
import torch
import torchvision
from torch import nn

from core import ENCODERS, build_encoder, list_encoders
from core.encoders.hyper_resnet import HyperResNet
from tests.conftest import TINY, tiny_encoder

AMORTISED = ["hyper_resnet18", "hyper_resnet50", "prompt_vit_small", "prompt_vit_base"]


def test_registry_lists_all_and_rejects_unknown(audio_space):
    assert set(TINY) == set(ENCODERS) == set(list_encoders())
    with pytest.raises(ValueError, match="registered encoders"):
        build_encoder("resnet101", audio_space)


@pytest.mark.parametrize("name", sorted(TINY))
def test_output_shape_and_features(name, audio_space):
    enc = tiny_encoder(name, audio_space).eval()
    x = torch.randn(3, 3, 32, 32)
    z = enc(x, audio_space.ones())
    assert z.shape == (3, enc.num_features)
    assert torch.isfinite(z).all()
    assert enc.space == audio_space and enc.name == name


@pytest.mark.parametrize("name", AMORTISED)
def test_descriptor_changes_features_and_gradients_reach_generators(name, audio_space):
    enc = tiny_encoder(name, audio_space).train()
    x = torch.randn(4, 3, 32, 32)
    d1, d2 = audio_space.descriptors[0], audio_space.descriptors[-1]
    with torch.no_grad():
        gap = (enc(x, d1) - enc(x, d2)).norm() / enc(x, d1).norm()
    assert gap > 1e-2
    inv = torch.full((7,), 0.5, requires_grad=True)
    enc(x, inv).pow(2).mean().backward()
    assert inv.grad is not None and inv.grad.abs().sum() > 0
    descriptor_params = [
        (n, p) for n, p in enc.named_parameters() if ".generator." in n or ".embed." in n or "prompt" in n
    ]
    assert descriptor_params, "no descriptor-dependent parameters found"
    for n, p in descriptor_params:
        assert p.grad is not None and p.grad.abs().sum() > 0, n


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_plain_baselines_ignore_descriptor(name, audio_space):
    enc = tiny_encoder(name, audio_space).eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(enc(x, audio_space.descriptors[0]), enc(x, audio_space.descriptors[-1]))


@pytest.mark.parametrize("name", sorted(TINY))
def test_specialise_matches_in_eval_mode(name, audio_space):
    enc = tiny_encoder(name, audio_space)
    x = torch.randn(3, 3, 32, 32)
    d = audio_space.descriptors[17]
    enc.train()
    for _ in range(2):  # move BatchNorm running statistics away from their initial values
        enc(torch.randn(8, 3, 32, 32) * 2 + 1, d)
    assert enc.specialise(d).training
    enc.eval()
    plain = enc.specialise(d)
    assert not plain.training
    assert not any(isinstance(m, type(enc)) for m in plain.modules())
    with torch.no_grad():
        torch.testing.assert_close(plain(x), enc(x, d), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", AMORTISED)
def test_mixed_batch_equals_per_sample(name, audio_space):
    # float64: float32 convolutions differ with batch size by ~1e-6 relative, which would
    # hide (or fake) a grouping error on deep untrained networks with large activations
    enc = tiny_encoder(name, audio_space).double().eval()
    x = torch.randn(6, 3, 32, 32, dtype=torch.float64)
    table = audio_space.descriptors.double()
    inv = torch.stack([table[3], table[50], table[3], torch.full((7,), 0.3, dtype=torch.float64), table[50], table[3]])
    with torch.no_grad():
        batched = enc(x, inv)
        single = torch.cat([enc(x[i : i + 1], inv[i]) for i in range(6)])
        shared = enc(x, table[3])
    torch.testing.assert_close(batched, single, atol=1e-9, rtol=1e-9)
    with torch.no_grad():  # float32 descriptors are cast to the model's dtype
        torch.testing.assert_close(enc(x, table[3].float()), shared, atol=1e-9, rtol=1e-9)
        torch.testing.assert_close(enc.specialise(table[3].float())(x), shared, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(batched[[0, 2, 5]], shared[[0, 2, 5]], atol=1e-9, rtol=1e-9)


def test_mixed_batch_generates_each_kernel_once(audio_space):
    enc = tiny_encoder("hyper_resnet18", audio_space).eval()
    calls = []
    gen = enc.layer1[0].conv1.generator
    gen.register_forward_hook(lambda m, args, out: calls.append(out.shape[0]))
    table = audio_space.descriptors
    inv = table[[1, 2, 1, 1, 2, 1, 2, 2]]
    enc(torch.randn(8, 3, 32, 32), inv)
    assert calls == [2]  # one generator pass making 2 kernels, not 8


@pytest.mark.parametrize("name", AMORTISED + ["resnet18"])
def test_bad_descriptors_raise(name, audio_space):
    enc = tiny_encoder(name, audio_space)
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match="pitch_shift"):
        enc(x, torch.ones(5))
    with pytest.raises(ValueError, match="outside"):
        enc(x, torch.full((7,), 1.2))
    with pytest.raises(ValueError, match="one row per input"):
        enc(x, torch.ones(3, 7))


@pytest.mark.parametrize("depth", [18, 50])
def test_export_loads_into_stock_torchvision(depth, audio_space):
    torch.manual_seed(0)
    enc = build_encoder(f"hyper_resnet{depth}", audio_space, in_chans=1).eval()
    d = audio_space.descriptors[40]
    stock = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    stock.conv1 = nn.Conv2d(1, 64, 7, stride=2, padding=3, bias=False)
    stock.fc = nn.Identity()
    stock.load_state_dict(enc.export_torchvision(d), strict=True)
    stock.eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(stock(x), enc(x, d), atol=1e-5, rtol=1e-5)


def test_export_needs_standard_width(audio_space):
    enc = tiny_encoder("hyper_resnet18", audio_space)
    with pytest.raises(ValueError, match="width"):
        enc.export_torchvision(audio_space.ones())


@pytest.mark.parametrize("form", ["lowrank", "full"])
def test_generated_kernels_start_with_he_variance_and_depend_on_descriptor(form, audio_space):
    torch.manual_seed(0)
    enc = HyperResNet(audio_space, depth=18, in_chans=1, width=16, generator=form)
    table = audio_space.descriptors
    per_desc = [enc.generate_kernels(d) for d in table[::10]]
    for path in per_desc[0]:
        stack = torch.stack([k[path] for k in per_desc])  # (D, out, in, k, k)
        fan_in = stack[0, 0].numel()
        he = 2.0 / fan_in
        total = stack.pow(2).mean().item()
        assert 0.5 * he < total < 1.6 * he, (path, total / he)
        # share of the variance that changes with the descriptor: not dominated by a bias
        across = stack.var(dim=0).mean().item()
        assert across > 0.15 * he, (path, across / he)


def test_generator_parameter_budget(audio_space):
    plain = sum(p.numel() for p in build_encoder("resnet18", audio_space, in_chans=1).parameters())
    lowrank = sum(p.numel() for p in build_encoder("hyper_resnet18", audio_space, in_chans=1).parameters())
    full = sum(p.numel() for p in build_encoder("hyper_resnet18", audio_space, in_chans=1, width=16, generator="full").parameters())
    plain16 = sum(p.numel() for p in build_encoder("resnet18", audio_space, in_chans=1, width=16).parameters())
    assert lowrank < 1.25 * plain  # default form keeps the optimiser cost near a plain ResNet
    assert full > 25 * plain16  # the paper's form: ~H times the generated network


def test_generator_rejects_bad_options(audio_space):
    with pytest.raises(ValueError, match="generator form"):
        build_encoder("hyper_resnet18", audio_space, generator="dense")
    with pytest.raises(ValueError, match="base_fraction"):
        build_encoder("hyper_resnet18", audio_space, base_fraction=1.0)


@pytest.mark.parametrize("name", AMORTISED)
def test_bf16_autocast_matches_float32(name, audio_space):
    """The engine runs encoders under bf16 autocast on GPU; CPU autocast takes the same
    dtype path through generated kernels and prompt tokens."""
    enc = tiny_encoder(name, audio_space).eval()
    x = torch.randn(4, 3, 32, 32)
    inv = audio_space.descriptors[[5, 5, 60, 60]]
    with torch.no_grad():
        ref = enc(x, inv)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = enc(x, inv)
    assert low.dtype in (torch.bfloat16, torch.float32)
    cos = torch.nn.functional.cosine_similarity(low.float(), ref, dim=1)
    assert cos.min() > 0.99


@pytest.mark.parametrize("name", ["hyper_resnet18", "resnet18", "looc_resnet18"])
def test_small_stem_keeps_resolution_and_round_trips(name, audio_space, tmp_path):
    from core import load_encoder, save_encoder

    enc = build_encoder(name, audio_space, **{**TINY[name], "stem": "small"}).eval()
    assert enc.config["stem"] == "small"
    conv1 = enc.conv1 if name.startswith("hyper") else enc.net.conv1 if name == "resnet18" else enc.net.net.conv1
    assert conv1.kernel_size == (3, 3) and conv1.stride == (1, 1)
    x = torch.randn(2, 3, 32, 32)
    z = enc(x, audio_space.ones())
    assert z.shape == (2, enc.num_features) and torch.isfinite(z).all()
    torch.testing.assert_close(enc.specialise(audio_space.ones())(x), z, rtol=1e-5, atol=1e-5)
    loaded = load_encoder(save_encoder(enc, tmp_path / "enc.pt")).eval()
    assert loaded.config["stem"] == "small"
    torch.testing.assert_close(loaded(x, audio_space.ones()), z)
    with pytest.raises(ValueError, match="stem must be one of"):
        build_encoder(name, audio_space, **{**TINY[name], "stem": "cifar"})


def test_small_stem_cannot_be_exported_to_torchvision(audio_space):
    enc = build_encoder("hyper_resnet18", audio_space, in_chans=3, width=64, stem="small")
    with pytest.raises(ValueError, match="standard stem"):
        enc.export_torchvision(audio_space.ones())


@pytest.mark.parametrize("name", ["resnet18", "hyper_resnet18"])
def test_bands_keep_coarse_frequency_position(name):
    """bands=2 averages the upper and lower halves of the last feature map's rows separately:
    with the same weights, their mean is the global-pooled feature and they differ."""
    from core import InvarianceSpace

    space = InvarianceSpace(["a", "b"])
    torch.manual_seed(0)
    one = build_encoder(name, space, in_chans=1, width=4).eval()
    two = build_encoder(name, space, in_chans=1, width=4, bands=2).eval()
    two.load_state_dict(one.state_dict())                 # pooling has no weights
    assert two.num_features == 2 * one.num_features and two.config["bands"] == 2
    x, d = torch.randn(3, 1, 64, 32), torch.ones(2)
    with torch.no_grad():
        f1, f2 = one(x, d), two(x, d)
        halves = f2.view(3, one.num_features, 2)          # (B, C, bands): flatten of (B, C, bands, 1)
        assert torch.allclose(halves.mean(-1), f1, atol=1e-5)
        assert (halves[..., 0] - halves[..., 1]).abs().max() > 1e-3
        assert torch.allclose(two.specialise(d)(x), f2, atol=1e-5)
    with pytest.raises(ValueError, match="bands=0"):
        build_encoder(name, space, in_chans=1, width=4, bands=0)
