"""Issue 7's baselines: parameter sharing for LooC, AugSelf targets, LooC++ encoder, and every
named baseline training a few steps through the real engine on synthetic audio."""
import math

import pytest
import torch
import torch.nn.functional as F

from aiaudio.augment.targets import TARGET_DIMS, param_targets
from aiaudio.baselines import BASELINES, baseline_overrides
from aiaudio.modality import make_audio_modality
from aiaudio.space import AUDIO_AUGMENTATIONS, FREQUENCY_GROUP, TIME_GROUP
from core import build_encoder, load_encoder
from core.augparams import cat_params, share_params, split_rows
from core.config import ConfigError
from core.encoders.serialise import save_encoder
from core.engine import pretrain
from core.engine.views import looc_params, method_inputs, render_all
from core.losses import augself_loss, info_nce
from core.methods import AugSelfMoCoV2, AugSelfSimCLR, LooC, MethodConfig, build_method
from engine_helpers import tiny_config
from tests.conftest import TINY, tiny_encoder

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = {"proj_hidden": 16, "proj_out": 8, "queue_size": 32, "temperature": 0.2}


@pytest.fixture(scope="module")
def modality(tmp_path_factory):
    """A set-up audio modality on tiny synthetic clips (p = 1 for every augmentation, so
    every parameter is applied and sharing is visible)."""
    always = {name: {"p": 1.0} for name in AUDIO_AUGMENTATIONS}
    always["pitch_shift"].update(n_fft=128, hop_length=64)
    always["time_stretch"].update(n_fft=128, hop_length=64)
    config = tiny_config(tmp_path_factory.mktemp("run"), f"data.augment={always}")
    m = make_audio_modality(config)
    m.setup(torch.device("cpu"))
    return m


def waves(modality, n=6):
    return torch.stack([modality.train_dataset()[i]["input"] for i in range(n)])


# ------------------------------------------------------------------- parameters
def test_share_and_cat_params_are_pure_and_checked():
    a = {"x": {"v": torch.arange(3.0), "applied": torch.tensor([True, False, True])},
         "y": {"v": torch.zeros(3), "applied": torch.ones(3, dtype=torch.bool)}}
    b = {"x": {"v": torch.full((3,), 9.0), "applied": torch.ones(3, dtype=torch.bool)},
         "y": {"v": torch.ones(3), "applied": torch.zeros(3, dtype=torch.bool)}}
    shared = share_params(a, b, ["x"])
    assert torch.equal(shared["x"]["v"], a["x"]["v"]) and torch.equal(shared["x"]["applied"], a["x"]["applied"])
    assert torch.equal(shared["y"]["v"], b["y"]["v"]) and torch.equal(shared["y"]["applied"], b["y"]["applied"])
    shared["x"]["v"][0] = 100.0
    assert a["x"]["v"][0] == 0.0  # copies, never views of the inputs
    joined = cat_params([a, b])
    assert torch.equal(joined["x"]["v"], torch.tensor([0.0, 1, 2, 9, 9, 9]))
    assert [t.tolist() for t in split_rows(torch.arange(6), 2)] == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(KeyError, match="'z'"):
        share_params(a, b, ["z"])
    with pytest.raises(ValueError, match="rows"):
        share_params(a, {"x": {"v": torch.zeros(2)}, "y": {"v": torch.zeros(2)}}, ["x"])
    with pytest.raises(ValueError, match="part 1"):
        cat_params([a, {"x": a["x"]}])


@pytest.mark.parametrize("entries", [["pitch_shift", "time_shift"], ["frequency", "time"]])
def test_looc_keys_share_exactly_the_entry_parameters(modality, entries):
    x = waves(modality)
    d = modality.space.ones()
    query, key0, keys = looc_params(modality, x, d, torch.Generator().manual_seed(3), entries)
    assert len(keys) == len(entries)
    for entry, key in zip(entries, keys):
        shared = set(modality.entry_augmentations(entry))
        assert shared == ({entry} if entry in AUDIO_AUGMENTATIONS else
                          set(FREQUENCY_GROUP if entry == "frequency" else TIME_GROUP))
        for name in AUDIO_AUGMENTATIONS:
            for field, value in key[name].items():
                if name in shared:
                    assert torch.equal(value, query[name][field]), (entry, name, field)
                elif field not in ("applied", "shape"):  # continuous draws: resampled, so different
                    assert not torch.equal(value, query[name][field]), (entry, name, field)
                    assert not torch.equal(value, key0[name][field]), (entry, name, field)
    for name in AUDIO_AUGMENTATIONS:  # the first key resamples everything
        assert not torch.equal(key0[name][next(k for k in key0[name] if k not in ("applied", "shape"))],
                               query[name][next(k for k in query[name] if k not in ("applied", "shape"))])


def test_looc_inputs_are_the_rendered_parameter_sets(modality):
    x = waves(modality)
    d = modality.space.ones()
    inputs = method_inputs("looc", modality, x, d, torch.Generator().manual_seed(5), ["pitch_shift"])
    query, key0, keys = looc_params(modality, x, d, torch.Generator().manual_seed(5), ["pitch_shift"])
    expected = render_all(modality, x, [query, key0, *keys])  # one render call for every view
    got = [inputs["view1"], inputs["view2"], *inputs["keys"]]
    assert len(got) == 3 and got[0].shape == (6, 1, 32, expected[0].shape[-1])
    for a, b in zip(got, expected):
        assert torch.equal(a, b)  # deterministic given the parameters
    assert not torch.allclose(got[0], got[1]) and not torch.allclose(got[0], got[2])
    # a key that shares every parameter renders exactly like the query (noise off: a shared
    # noise augmentation shares its SNR and colour, not the random samples)
    quiet = modality.space.from_active([a for a in AUDIO_AUGMENTATIONS if a != "noise"])
    query, key0, _ = looc_params(modality, x, quiet, torch.Generator().manual_seed(6), [])
    first, again, other = render_all(modality, x, [query, share_params(query, key0, AUDIO_AUGMENTATIONS), key0])
    # equal up to float32 rounding of the batched phase vocoder (which depends a little on the
    # rows computed together), far below the difference to a resampled key: 5e-4 of it here,
    # up to 3e-3 for other seeds, and the vocoder's magnitude comparisons can flip with the CPU.
    assert (first - again).abs().mean() < 0.05 * (first - other).abs().mean()


# ---------------------------------------------------------------------- AugSelf
def test_audio_targets_encode_parameters_with_identity_when_off():
    p = {"pitch_shift": {"semitones": torch.tensor([12.0, -6.0]), "applied": torch.tensor([True, False])},
         "fade_in": {"fraction": torch.tensor([0.25, 0.5]), "shape": torch.tensor([0, 1]),
                     "applied": torch.tensor([True, True])},
         "noise": {"snr_db": torch.tensor([20.0, 6.0]), "f_decay": torch.zeros(2), "applied": torch.tensor([True, False])},
         "time_mask": {"start": torch.tensor([0.1, 0.2]), "fraction": torch.tensor([0.1, 0.05]),
                       "applied": torch.tensor([True, True])},
         "time_stretch": {"rate": torch.tensor([2.0, 0.5]), "applied": torch.tensor([True, True])}}
    t = param_targets(p)
    torch.testing.assert_close(t["pitch_shift"], torch.tensor([[1.0], [0.0]]))
    torch.testing.assert_close(t["fade_in"], torch.tensor([[0.25], [0.5]]))
    torch.testing.assert_close(t["noise"], torch.tensor([[0.1], [0.0]]))
    torch.testing.assert_close(t["time_mask"], torch.tensor([[0.15, 0.1], [0.225, 0.05]]))
    torch.testing.assert_close(t["time_stretch"], torch.tensor([[1.0], [-1.0]]))
    assert all(t[name].shape[1] == TARGET_DIMS[name] for name in t)


def test_params_inputs_targets_belong_to_the_rendered_views(modality):
    x = waves(modality)
    d = modality.space.from_active(["pitch_shift", "time_shift"])
    inputs = method_inputs("params", modality, x, d, torch.Generator().manual_seed(8))
    g = torch.Generator().manual_seed(8)
    p1, p2 = modality.sample_params(x, d, g), modality.sample_params(x, d, g)
    rendered = render_all(modality, x, [p1, p2])
    for view, again, targets, p in zip((inputs["view1"], inputs["view2"]), rendered,
                                       (inputs["targets1"], inputs["targets2"]), (p1, p2)):
        assert torch.equal(view, again)
        for name, value in param_targets(p).items():
            assert torch.equal(targets[name], value)
    # descriptor bits at 0 never fire, so those targets stay at the identity value
    assert torch.equal(inputs["targets1"]["noise"], torch.zeros(6, 1))
    assert inputs["targets1"]["pitch_shift"].abs().sum() > 0
    assert modality.target_dims() == TARGET_DIMS


def test_augself_loss_is_weighted_mse_of_the_parameter_difference():
    t1 = {"a": torch.tensor([[1.0], [2.0]]), "b": torch.tensor([[0.0, 1.0], [1.0, 1.0]])}
    t2 = {"a": torch.tensor([[0.5], [0.0]]), "b": torch.zeros(2, 2)}
    exact = {name: t1[name] - t2[name] for name in t1}
    loss, parts = augself_loss(exact, t1, t2, {"a": 0.5, "b": 2.0})
    assert loss.item() == 0.0 and set(parts) == {"a", "b"}
    loss, parts = augself_loss({"a": torch.zeros(2, 1), "b": torch.zeros(2, 2)}, t1, t2, {"a": 0.5, "b": 2.0})
    assert math.isclose(parts["a"].item(), (0.25 + 4.0) / 2) and math.isclose(parts["b"].item(), 3 / 4)
    assert math.isclose(loss.item(), 0.5 * 2.125 + 2.0 * 0.75, rel_tol=1e-6)
    with pytest.raises(ValueError, match="'c'"):
        augself_loss(exact, t1, t2, {"c": 1.0})


@pytest.mark.parametrize("base", ["simclr", "moco_v2"])
def test_augself_method_adds_heads_on_concatenated_features(base, audio_space):
    dims = {"pitch_shift": 1, "time_mask": 2}
    config = MethodConfig(name="augself", augself_base=base, augself_hidden=8,
                          augself_weights={"pitch_shift": 1.0, "time_mask": 0.5}, **SMALL)
    method = build_method(tiny_encoder("hyper_resnet18", audio_space), config, target_dims=dims)
    assert isinstance(method, AugSelfSimCLR if base == "simclr" else AugSelfMoCoV2) and method.inputs == "params"
    g = torch.Generator().manual_seed(0)
    v1, v2 = torch.randn(4, 3, 32, 32, generator=g), torch.randn(4, 3, 32, 32, generator=g)
    t1 = {k: torch.randn(4, n, generator=g) for k, n in dims.items()}
    t2 = {k: torch.randn(4, n, generator=g) for k, n in dims.items()}
    d = audio_space.ones()
    loss, logs = method(v1, v2, d, 0, targets1=t1, targets2=t2)
    assert {"contrastive", "augself", "augself_pitch_shift", "augself_time_mask"} <= set(logs)
    torch.testing.assert_close(loss.detach(), logs["contrastive"] + logs["augself"])
    with torch.no_grad():  # the auxiliary term recomputed by hand from the method's own modules
        f = method.encoder(torch.cat([v1, v2]), d)
        joint = torch.cat([f[:4], f[4:]], dim=1)
        by_hand = sum(w * F.mse_loss(method.augself.heads[k](joint), t1[k] - t2[k])
                      for k, w in {"pitch_shift": 1.0, "time_mask": 0.5}.items())
    torch.testing.assert_close(logs["augself"], by_hand, rtol=1e-4, atol=1e-5)
    loss.backward()
    assert method.augself.heads["time_mask"][0].weight.grad.abs().sum() > 0
    assert method.encoder.conv1.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="targets1"):
        method(v1, v2, d, 0)
    with pytest.raises(ValueError, match="available: pitch_shift, time_mask"):
        build_method(tiny_encoder("resnet18", audio_space),
                     MethodConfig(name="augself", augself_weights={"noise": 1.0}, **SMALL), target_dims=dims)


# ------------------------------------------------------------------------ LooC
def test_info_nce_extra_negatives_are_per_query_logits():
    g = torch.Generator().manual_seed(1)
    q, k, queue, extra = (torch.randn(*s, generator=g) for s in ((3, 4), (3, 4), (5, 4), (3, 2, 4)))
    qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
    logits = torch.cat([(qn * kn).sum(1, keepdim=True),
                        torch.einsum("bd,bmd->bm", qn, F.normalize(extra, dim=2)),
                        qn @ F.normalize(queue, dim=1).T], dim=1) / 0.2
    expected = F.cross_entropy(logits, torch.zeros(3, dtype=torch.long))
    torch.testing.assert_close(info_nce(q, k, queue, 0.2, extra_negatives=extra), expected)
    with pytest.raises(ValueError, match="extra_negatives"):
        info_nce(q, k, queue, 0.2, extra_negatives=extra[:2])


def test_looc_heads_queues_and_loss_structure(audio_space):
    config = MethodConfig(name="looc", looc_entries=["pitch_shift", "noise"], **SMALL)
    method = build_method(tiny_encoder("resnet18", audio_space), config, seed=2)
    assert isinstance(method, LooC) and len(method.projector) == 3 and method.inputs == "looc"
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(4, 3, 32, 32, generator=g) for _ in range(4)]
    ones = audio_space.ones()
    loss, logs = method(views[0], views[1], ones, 0, keys=views[2:])
    assert set(logs) == {"loss", "acc", "loss_all", "loss_pitch_shift", "loss_noise"}
    torch.testing.assert_close(loss.detach(), torch.stack([logs["loss_all"], logs["loss_pitch_shift"],
                                                           logs["loss_noise"]]).mean())
    # head j's positive is key j's embedding in head j; check head 1 by hand from the modules
    with torch.no_grad():
        f_q = method.encoder(views[0], ones)
        keys = method.momentum_projector[1](method.momentum_encoder(torch.cat(views[1:]), ones)).chunk(3)
        queue = torch.randn(32, 8, generator=torch.Generator().manual_seed((2 * 2**21 + 1) % 2**63))
        # head "pitch_shift" is the space's one-hot index 1 -> the queue's seeded initial keys
        q1 = method.projector[1](f_q)
        extra = torch.stack([keys[0], keys[2]], dim=1)
        expected = info_nce(q1, keys[1], F.normalize(queue, dim=1), 0.2, extra_negatives=extra)
    assert abs(expected.item() - logs["loss_pitch_shift"].item()) < 1e-4
    assert len(method.queues) == 3  # one queue per head, allocated on first use
    with pytest.raises(ValueError, match="every augmentation on"):
        method(views[0], views[1], audio_space.from_active(["noise", "time_shift"]), 1, keys=views[2:])
    with pytest.raises(ValueError, match="2 key views"):
        method(views[0], views[1], ones, 1, keys=views[2:3])


def test_looc_plus_plus_encoder_branches_export_and_specialise(audio_space, tmp_path):
    enc = tiny_encoder("looc_resnet18", audio_space).eval()
    x = torch.randn(2, 3, 32, 32)
    branches = enc.forward_branches(x, audio_space.ones())
    assert len(branches) == 3 and all(b.shape == (2, enc.num_features // 3) for b in branches)
    torch.testing.assert_close(enc(x, audio_space.ones()), torch.cat(branches, dim=1))
    assert not torch.allclose(branches[0], branches[1])  # independently initialised last stages
    torch.testing.assert_close(enc.specialise(audio_space.ones())(x), enc(x, audio_space.ones()))
    loaded = load_encoder(save_encoder(enc, tmp_path / "encoder.pt"))
    assert loaded.name == "looc_resnet18" and loaded.config == {**TINY["looc_resnet18"], "stem": "standard"}
    torch.testing.assert_close(loaded.eval()(x, audio_space.ones()), enc(x, audio_space.ones()))
    with pytest.raises(ValueError, match="branches but LooC has 2 heads"):
        build_method(enc, MethodConfig(name="looc", looc_entries=["noise"], **SMALL))
    method = build_method(build_encoder("looc_resnet18", audio_space, in_chans=3, width=8, branches=2),
                          MethodConfig(name="looc", looc_entries=["noise"], **SMALL))
    assert method.projector[0].layers[0].in_features == enc.num_features // 3


# ------------------------------------------------------------ through the engine
@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_trains_a_few_steps(name, tmp_path):
    config = tiny_config(tmp_path, "train.steps=2", *baseline_overrides(name), "encoder.kwargs.width=4",
                         "method.queue_size=64")
    result = pretrain(config, make_audio_modality(config), progress=False)
    assert result.steps == 2 and all(math.isfinite(h["loss"]) for h in result.history)
    encoder = load_encoder(result.encoder_path)
    expected = {"ai_simclr": "hyper_resnet18", "looc_pp": "looc_resnet18"}.get(name, "resnet18")
    assert encoder.name == expected
    descriptors = {tuple(h["descriptor"]) for h in result.history}
    if name == "simclr_time":
        assert descriptors == {(0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0)}
    elif name != "ai_simclr":
        assert descriptors <= {(1.0,) * 7, (1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0)}


@pytest.mark.parametrize("extra, message", [
    (["method.name=looc", "descriptor.mode=fixed", "method.looc_entries=[pitch,time]"], "looc_entries.*'pitch'"),
    (["method.name=looc"], "every augmentation on"),
    (["method.name=augself", "method.augself_weights={crop: 1.0}"], "augself_weights.*'crop'"),
])
def test_baseline_config_errors_name_the_key(extra, message, tmp_path):
    config = tiny_config(tmp_path, "train.steps=1", *extra)
    with pytest.raises(ConfigError, match=message):
        pretrain(config, make_audio_modality(config), progress=False)


def test_descriptor_active_names_entries():
    with pytest.raises(ConfigError, match="only used with descriptor.mode: fixed"):
        tiny_config("/tmp/unused", "descriptor.active=[noise]")
    with pytest.raises(ConfigError, match="both set"):
        tiny_config("/tmp/unused", "descriptor.mode=fixed", "descriptor.active=[noise]", "descriptor.fixed=[1,1,1,1,1,1,1]")
    with pytest.raises(KeyError, match="unknown audio model"):
        baseline_overrides("byol")


def test_a_modality_without_parameter_hooks_is_refused_by_name(tmp_path):
    from core.modality import HookUnavailable
    from engine_helpers import HookedModality

    config = tiny_config(tmp_path, "train.steps=1", "method.name=augself")
    plain = HookedModality(make_audio_modality(config))  # forwards views(), not the parameter hooks
    with pytest.raises(HookUnavailable, match="does not expose augmentation parameters"):
        plain.sample_params(torch.zeros(2, 8), plain.space.ones(), torch.Generator())
    with pytest.raises(ConfigError, match="method augself needs augmentation parameters"):
        pretrain(config, plain, progress=False)
