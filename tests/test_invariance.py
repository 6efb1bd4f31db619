"""InvarianceSpace: enumeration, sampling, quantisation, validation."""
import pytest
import torch

from core import InvarianceSpace

AUDIO = ["pitch_shift", "fade_in", "fade_out", "noise", "time_mask", "time_shift", "time_stretch"]


@pytest.mark.parametrize(
    "names, min_active, count",
    [(AUDIO, 2, 120), (["crop", "flip", "jitter", "gray", "blur"], 2, 26), (["spatial", "appearance"], 1, 3)],
)
def test_descriptor_counts(names, min_active, count):
    space = InvarianceSpace(names, min_active=min_active)
    d = space.descriptors
    assert d.shape == (count, len(names))
    assert d.dtype == torch.float32
    assert set(d.unique().tolist()) <= {0.0, 1.0}
    assert (d.sum(1) >= min_active).all()
    assert len({tuple(row.tolist()) for row in d}) == count  # no repeats


def test_descriptors_is_a_copy_and_two_group_order():
    space = InvarianceSpace(["spatial", "appearance"], min_active=1)
    space.descriptors.zero_()
    assert space.descriptors.tolist() == [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]


def test_sample_is_reproducible_and_uniform():
    space = InvarianceSpace(AUDIO, min_active=2)
    a = space.sample(torch.Generator().manual_seed(3))
    b = space.sample(torch.Generator().manual_seed(3))
    assert a.shape == (7,) and torch.equal(a, b)
    batch = space.sample(torch.Generator().manual_seed(0), n=12000)
    assert batch.shape == (12000, 7)
    table = space.descriptors
    index = (batch[:, None, :] == table[None]).all(-1).float().argmax(1)
    counts = torch.bincount(index, minlength=120).float()
    assert counts.min() > 0
    # 100 expected per descriptor; a 5-sigma band around it
    assert (counts - 100).abs().max() < 50
    with pytest.raises(TypeError):
        space.sample(3)


def test_quantise_levels():
    space = InvarianceSpace(["a", "b", "c", "d"], min_active=1)
    i = torch.tensor([0.1, 0.49, 0.51, 0.95])
    assert space.quantise(i, bits=1).tolist() == [0.0, 0.0, 1.0, 1.0]
    q2 = space.quantise(i, bits=2)
    assert torch.allclose(q2, torch.tensor([0.0, 1 / 3, 2 / 3, 1.0]))
    batch = space.quantise(torch.stack([i, 1 - i]), bits=3)
    assert batch.shape == (2, 4)
    assert torch.allclose(batch * 7, torch.round(batch * 7))
    with pytest.raises(ValueError, match="bits"):
        space.quantise(i, bits=0)


def test_describe_names_values():
    space = InvarianceSpace(AUDIO, min_active=2)
    text = space.describe(torch.tensor([0.76, 0.24, 0.39, 0.48, 0.40, 0.45, 0.24]))
    assert text.startswith("pitch_shift=0.76 fade_in=0.24")
    assert "time_stretch=0.24" in text
    assert len(space.describe(space.descriptors[:3]).splitlines()) == 3


@pytest.mark.parametrize(
    "bad, pattern",
    [
        (torch.ones(6), r"shape \(6,\).*pitch_shift"),
        (torch.ones(2, 3, 7), r"shape"),
        (torch.tensor([0.5, float("nan"), 0, 0, 0, 0, 0]), r"NaN.*fade_in"),
        (torch.tensor([0.5, 0, 0, 1.5, 0, 0, 0]), r"\['noise'\].*outside"),
        (torch.tensor([0.5, 0, 0, 0, 0, 0, -0.1]), r"time_stretch"),
        ("abc", r"not numeric"),
    ],
)
def test_check_rejects(bad, pattern):
    space = InvarianceSpace(AUDIO, min_active=2)
    with pytest.raises(ValueError, match=pattern):
        space.check(bad)


def test_check_keeps_gradient_and_accepts_lists():
    space = InvarianceSpace(["a", "b"], min_active=1)
    i = torch.full((2,), 0.5, requires_grad=True)
    assert space.check(i) is i
    assert space.check([1, 0]).dtype == torch.float32


def test_helpers_and_roundtrip():
    space = InvarianceSpace(AUDIO, min_active=2)
    assert space.ones().tolist() == [1.0] * 7
    d = space.from_active(["pitch_shift", "noise"])
    assert d.tolist() == [1, 0, 0, 1, 0, 0, 0]
    assert torch.equal(space.descriptors[space.index_of(d)], d)
    with pytest.raises(ValueError, match="unknown augmentation"):
        space.from_active(["reverb"])
    with pytest.raises(ValueError, match="not one of"):
        space.index_of(space.from_active(["noise"]))  # one active < min_active
    assert InvarianceSpace.from_dict(space.to_dict()) == space
    assert space != InvarianceSpace(AUDIO, min_active=1)
    assert len(space) == space.dim == 7


@pytest.mark.parametrize(
    "names, min_active, pattern",
    [([], 1, "at least one"), (["a", "a"], 1, "unique"), (["a", "b"], 3, "min_active"), (["a"], 0, "min_active")],
)
def test_constructor_errors(names, min_active, pattern):
    with pytest.raises(ValueError, match=pattern):
        InvarianceSpace(names, min_active=min_active)
