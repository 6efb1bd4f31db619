"""AudioPolicy: descriptor -> active augmentations -> two views, on either backend."""
import pytest
import torch

from aiaudio.augment import BACKENDS, AudioPolicy, AugmentConfig, sample_params
from aiaudio.augment.reference import AudiomentationsAugmenter
from aiaudio.space import AUDIO_AUGMENTATIONS, FREQUENCY_GROUP, TIME_GROUP, audio_space
from core.invariance import InvarianceSpace

SR = 16000
T = 4000  # 0.25 s


def waves(batch: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(T) / SR
    freqs = 200 + 400 * torch.rand(batch, 1, generator=g)
    return 0.5 * torch.sin(2 * torch.pi * freqs * t) + 0.05 * torch.randn(batch, T, generator=g)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def policy(backend: str, config: AugmentConfig | None = None, space: InvarianceSpace | None = None):
    if backend == "batched":
        pytest.importorskip("aiaudio.augment.batched")
    return AudioPolicy(space or audio_space(), config, sample_rate=SR, backend=backend)


def all_p(p: float, **overrides: float) -> AugmentConfig:
    data = {name: {"p": overrides.get(name, p)} for name in AUDIO_AUGMENTATIONS}
    return AugmentConfig.from_dict(data)


BACKEND_NAMES = ["audiomentations", "batched"]


def test_active_for_the_seven_entry_space():
    pol = policy("audiomentations")
    d = torch.tensor([1.0, 0, 1, 0, 0, 1, 0])
    act = pol.active(d, 4)
    assert act.shape == (4, 7) and act.dtype == torch.bool
    assert torch.equal(act, (d > 0).expand(4, 7))
    rows = torch.tensor([[1.0, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1, 1]])
    assert torch.equal(pol.active(rows, 2), rows.bool())


def test_threshold_is_one_half():
    pol = policy("audiomentations")
    act = pol.active(torch.tensor([0.5, 0.51, 0.49, 1, 0, 0.9, 0.1]), 1)[0]
    assert act.tolist() == [False, True, False, True, False, True, False]


def test_group_space_maps_to_its_members():
    pol = policy("audiomentations", space=InvarianceSpace(["frequency", "time"], min_active=1))
    freq = torch.tensor([a in FREQUENCY_GROUP for a in AUDIO_AUGMENTATIONS])
    time = torch.tensor([a in TIME_GROUP for a in AUDIO_AUGMENTATIONS])
    assert torch.equal(pol.active(torch.tensor([1.0, 0.0]), 2), freq.expand(2, 7))
    assert torch.equal(pol.active(torch.tensor([0.0, 1.0]), 1)[0], time)
    assert bool(pol.active(torch.tensor([1.0, 1.0]), 1).all())


def test_custom_groups_and_unknown_names():
    space = InvarianceSpace(["loud", "time_shift"], min_active=1)
    pol = AudioPolicy(space, sample_rate=SR, backend="audiomentations", groups={"loud": ["noise", "fade_in"]})
    assert pol.active([1.0, 0.0], 1)[0].tolist() == [a in ("noise", "fade_in") for a in AUDIO_AUGMENTATIONS]
    with pytest.raises(ValueError, match=r"'spectral'.*allowed names: \['pitch_shift'.*'frequency', 'time'\]"):
        AudioPolicy(InvarianceSpace(["spectral", "time"]), backend="audiomentations")
    with pytest.raises(ValueError, match=r"group 'loud' lists unknown augmentations \['reverb'\]"):
        AudioPolicy(space, backend="audiomentations", groups={"loud": ["reverb"]})


def test_descriptor_validation_errors():
    pol = policy("audiomentations")
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        pol.active(torch.ones(3), 2)
    with pytest.raises(ValueError, match="outside"):
        pol.active(torch.full((7,), 1.5), 2)
    with pytest.raises(ValueError, match=r"\(3, 7\).*2 clips"):
        pol.active(torch.ones(3, 7), 2)


def test_wave_validation_names_the_shape():
    pol = policy("audiomentations")
    with pytest.raises(ValueError, match=r"\(B, T\), got \(4000,\)"):
        pol.views(torch.zeros(T), torch.ones(7), gen(0))
    with pytest.raises(ValueError, match=r"torch.int64"):
        pol.augment(torch.zeros(2, T, dtype=torch.long), torch.ones(7), gen(0))


def test_backend_selection():
    assert set(BACKENDS) == {"batched", "audiomentations"}
    assert BACKENDS["audiomentations"] is AudiomentationsAugmenter
    cfg = AugmentConfig.from_dict({"backend": "audiomentations"})
    assert isinstance(AudioPolicy(audio_space(), cfg).augmenter, AudiomentationsAugmenter)
    assert AudioPolicy(audio_space(), cfg).backend_name == "audiomentations"
    with pytest.raises(ValueError, match=r"'sox'.*allowed: \['audiomentations', 'batched'\]"):
        AudioPolicy(audio_space(), backend="sox")


def test_config_default_backend_is_batched():
    batched = pytest.importorskip("aiaudio.augment.batched")
    pol = AudioPolicy(audio_space())
    assert pol.backend_name == "batched" and isinstance(pol.augmenter, batched.BatchedAugmenter)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@pytest.mark.parametrize("name", AUDIO_AUGMENTATIONS)
def test_bit_at_zero_never_fires(backend, name):
    k = AUDIO_AUGMENTATIONS.index(name)
    off = torch.ones(7)
    off[k] = 0.0
    x = waves(4)
    # Every augmentation would fire: the zero bit alone keeps `name` out.
    pol = policy(backend, all_p(1.0))
    _, _, p1, p2 = pol.views(x, off, gen(0), return_params=True)
    for params in (p1, p2):
        assert not bool(params[name]["applied"].any())
        assert all(bool(params[o]["applied"].all()) for o in AUDIO_AUGMENTATIONS if o != name)
    # Only `name` has p=1: with its bit at 0 nothing changes; with its bit at 1 the clip changes.
    pol = policy(backend, all_p(0.0, **{name: 1.0}))
    v1, v2 = pol.views(x, off, gen(0))
    assert torch.equal(v1, x) and torch.equal(v2, x)
    v1, _ = pol.views(x, torch.nn.functional.one_hot(torch.tensor(k), 7).float(), gen(0))
    assert not torch.equal(v1, x)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_same_seed_same_views_different_seed_different(backend):
    pol = policy(backend, all_p(0.9))
    x, d = waves(3), torch.ones(7)
    a1, a2 = pol.views(x, d, gen(7))
    b1, b2 = pol.views(x, d, gen(7))
    c1, c2 = pol.views(x, d, gen(8))
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, c1) and not torch.equal(a2, c2)
    assert not torch.equal(a1, a2)
    assert a1.shape == a2.shape == x.shape and a1.dtype == x.dtype


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_views_params_follow_the_shared_sampler(backend):
    pol = policy(backend)
    x = waves(2)
    d = torch.tensor([[1.0, 0, 1, 0, 1, 0, 1], [0, 1, 0, 1, 0, 1, 0]])
    v1, v2, p1, p2 = pol.views(x, d, gen(4), return_params=True)
    expected = sample_params(pol.config, d.bool(), gen(4))
    for name in AUDIO_AUGMENTATIONS:
        assert torch.equal(p1[name]["applied"], expected[name]["applied"])
        assert not bool((p1[name]["applied"] & ~d.bool()[:, AUDIO_AUGMENTATIONS.index(name)]).any())
    # The second view draws fresh parameters.
    assert not torch.equal(p1["pitch_shift"]["semitones"], p2["pitch_shift"]["semitones"])
    assert v1.shape == v2.shape == x.shape


def test_both_backends_draw_identical_parameters():
    pytest.importorskip("aiaudio.augment.batched")
    x, d = waves(3), torch.ones(7)
    ref = policy("audiomentations").views(x, d, gen(11), return_params=True)
    bat = policy("batched").views(x, d, gen(11), return_params=True)
    for pr, pb in ((ref[2], bat[2]), (ref[3], bat[3])):
        for name in AUDIO_AUGMENTATIONS:
            for key, value in pr[name].items():
                assert torch.equal(pb[name][key].cpu(), value), (name, key)
