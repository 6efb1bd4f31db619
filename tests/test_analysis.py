"""Invariance measurement, interpolation curves, plots and the Theorem 5.1 bound."""
import math

import matplotlib.image
import pytest
import torch
from torch import nn

import core.demo
from core import InvarianceSpace, build_encoder
from core.analysis.bound import bound_from_readout, bound_terms, generalisation_bound
from core.analysis.interpolation import descriptor_path, interpolation_curve, score_curve
from core.analysis.invariance import (
    mahalanobis,
    measure_invariance,
    summarise_invariance,
    transform_generator,
    whitening_factor,
)
from core.analysis.plots import interpolation_plot, invariance_plot, pareto_front, pareto_plot, radar_plot
from core.encoders.base import InvarianceEncoder
from tests.conftest import FixedDescriptor

SPACE = InvarianceSpace(["offset", "other"], min_active=1)


class OffsetEncoder(InvarianceEncoder):
    """Features of a (B, 1, 4, 4) input: its 16 pixels minus ``inv[0]`` times their mean.

    With ``inv[0] = 1`` the features ignore a constant added to the input; with 0 they do not.
    """

    def __init__(self) -> None:
        super().__init__()
        self.space, self.num_features, self.name, self.config = SPACE, 16, "offset", {}
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x, inv):
        inv = self.check_descriptor(inv, x)
        flat = x.flatten(1) * self.scale
        return flat - inv[..., :1] * flat.mean(1, keepdim=True)

    def specialise(self, inv):
        return FixedDescriptor(self, inv)


def prepare(raw):
    return raw.view(-1, 1, 4, 4)


TRANSFORMS = {
    "offset": lambda raw, s, g: raw + s * torch.randn(raw.shape[0], 1, generator=g),
    "noise": lambda raw, s, g: raw + s * torch.randn(raw.shape, generator=g),
    "identity": lambda raw, s, g: raw.clone(),
}
STRENGTHS = {"offset": [0.5, 1.0, 2.0], "noise": [0.1, 1.0], "identity": [0.0]}
DESCRIPTORS = {"invariant": torch.tensor([1.0, 1.0]), "sensitive": torch.tensor([0.0, 1.0])}


def clean_inputs(n=40, seed=0):
    return torch.randn(n, 16, generator=torch.Generator().manual_seed(seed))


def test_measure_invariance_tracks_the_descriptor():
    rows = measure_invariance(OffsetEncoder(), clean_inputs(), prepare, TRANSFORMS, STRENGTHS, DESCRIPTORS,
                              batch_size=7, seed=3)
    assert len(rows) == 2 * 6 and set(rows[0]) == {"descriptor", "transform", "strength", "cosine", "mahalanobis"}
    by = {(r["descriptor"], r["transform"], r["strength"]): r for r in rows}
    for s in STRENGTHS["offset"]:
        assert by[("invariant", "offset", s)]["cosine"] > 1 - 1e-9
        # float32 rounding of x + c - mean(x + c), whitened along the features' null direction
        # (ridge 1e-3): 3.6e-6 here, up to 8.3e-6 with other batch sizes; 1e-3 leaves >100x and
        # is 2600x below a feature that follows the offset (2.6, cf. "sensitive").
        assert by[("invariant", "offset", s)]["mahalanobis"] < 1e-3
        assert by[("sensitive", "offset", s)]["cosine"] < 0.95
        assert by[("sensitive", "offset", s)]["mahalanobis"] > 0.3
    sens = [by[("sensitive", "offset", s)]["cosine"] for s in STRENGTHS["offset"]]
    assert sens[0] > sens[1] > sens[2]  # stronger offsets, less similar
    for label in DESCRIPTORS:
        assert by[(label, "identity", 0.0)]["mahalanobis"] == 0.0
        assert by[(label, "identity", 0.0)]["cosine"] == pytest.approx(1.0, abs=1e-12)
        assert by[(label, "noise", 1.0)]["cosine"] < by[(label, "noise", 0.1)]["cosine"] < 1
    again = measure_invariance(OffsetEncoder(), clean_inputs(), prepare, TRANSFORMS, STRENGTHS, DESCRIPTORS,
                               batch_size=40, seed=3)
    assert [r["cosine"] for r in again] == pytest.approx([r["cosine"] for r in rows], abs=1e-12)
    other = measure_invariance(OffsetEncoder(), clean_inputs(), prepare, TRANSFORMS, STRENGTHS, DESCRIPTORS, seed=4)
    key = ("sensitive", "noise", 1.0)
    assert next(r for r in other if (r["descriptor"], r["transform"], r["strength"]) == key)["cosine"] != by[key]["cosine"]


def test_summarise_invariance_means_over_strengths():
    rows = measure_invariance(OffsetEncoder(), clean_inputs(), prepare, TRANSFORMS, STRENGTHS, DESCRIPTORS)
    summary = summarise_invariance(rows)
    assert [(r["descriptor"], r["transform"]) for r in summary] == [
        (d, t) for d in DESCRIPTORS for t in TRANSFORMS]
    offset = next(r for r in summary if r["descriptor"] == "sensitive" and r["transform"] == "offset")
    part = [r for r in rows if r["descriptor"] == "sensitive" and r["transform"] == "offset"]
    assert offset["num_strengths"] == 3
    assert offset["mahalanobis"] == pytest.approx(sum(r["mahalanobis"] for r in part) / 3)
    with pytest.raises(ValueError, match="lacks"):
        summarise_invariance([{"descriptor": "x"}])


def test_mahalanobis_matches_explicit_inverse():
    g = torch.Generator().manual_seed(1)
    clean = torch.randn(30, 5, generator=g, dtype=torch.float64) @ torch.randn(5, 5, generator=g, dtype=torch.float64)
    moved = clean + torch.randn(30, 5, generator=g, dtype=torch.float64)
    cov = torch.cov(clean.T)
    cov = cov + 1e-3 * cov.diagonal().mean() * torch.eye(5, dtype=torch.float64)
    diff = moved - clean
    expected = torch.sqrt(torch.einsum("nd,de,ne->n", diff, torch.linalg.inv(cov), diff))
    got = mahalanobis(moved, clean, whitening_factor(clean))
    assert torch.allclose(got, expected, rtol=1e-8)
    draw = lambda *key: torch.randn(4, generator=transform_generator(*key))  # noqa: E731
    assert torch.equal(draw(0, 1, 2), draw(0, 1, 2)) and not torch.equal(draw(0, 1, 2), draw(1, 1, 2))
    assert transform_generator(0, 1, 2).initial_seed() != transform_generator(0, 2, 1).initial_seed()


def test_measure_invariance_real_encoder_batch_independent():
    torch.manual_seed(0)
    enc = build_encoder("hyper_resnet18", SPACE, in_chans=1, width=4)
    clean = torch.randn(6, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    args = (enc, clean, lambda r: r, {"noise": TRANSFORMS["noise"]}, {"noise": [0.5]}, DESCRIPTORS)
    a, b = measure_invariance(*args, batch_size=2), measure_invariance(*args, batch_size=6)
    assert [r["cosine"] for r in a] == pytest.approx([r["cosine"] for r in b], abs=1e-5)
    assert [r["mahalanobis"] for r in a] == pytest.approx([r["mahalanobis"] for r in b], rel=1e-3)
    assert not enc.training


def test_measure_invariance_validates():
    enc, clean = OffsetEncoder(), clean_inputs()
    with pytest.raises(ValueError, match="strengths must name exactly"):
        measure_invariance(enc, clean, prepare, TRANSFORMS, {"offset": [1.0]}, DESCRIPTORS)
    with pytest.raises(ValueError, match="N >= 2"):
        measure_invariance(enc, clean[:1], prepare, TRANSFORMS, STRENGTHS, DESCRIPTORS)
    with pytest.raises(ValueError, match="empty strength grid"):
        measure_invariance(enc, clean, prepare, {"offset": TRANSFORMS["offset"]}, {"offset": []}, DESCRIPTORS)
    with pytest.raises(ValueError, match="must return a tensor of shape"):
        measure_invariance(enc, clean, prepare, {"bad": lambda r, s, g: r[:3]}, {"bad": [1.0]}, DESCRIPTORS)
    with pytest.raises(ValueError):
        measure_invariance(enc, clean, prepare, TRANSFORMS, STRENGTHS, {"bad": torch.tensor([2.0, 0.0])})


def test_descriptor_path_and_curves():
    start, end = torch.tensor([0.0, 1.0]), torch.tensor([1.0, 0.5])
    path = descriptor_path(start, end, steps=5)
    assert path.shape == (5, 2) and torch.equal(path[0], start) and torch.equal(path[-1], end)
    assert torch.allclose(path[2], torch.tensor([0.5, 0.75]))
    for bad in (dict(steps=1), dict(end=torch.tensor([1.0, 0.0, 1.0])), dict(end=torch.tensor([1.5, 0.0]))):
        with pytest.raises(ValueError):
            descriptor_path(**{"start": start, "end": end, "steps": 3, **bad})
    calls = []
    rows = score_curve(lambda d: calls.append(d) or float(d.sum()), start, end, steps=3)
    assert [r["t"] for r in rows] == [0.0, 0.5, 1.0] and len(calls) == 3
    assert [r["score"] for r in rows] == pytest.approx([1.0, 1.25, 1.5])
    assert rows[0]["descriptor"] == [0.0, 1.0] and rows[-1]["descriptor"] == [1.0, 0.5]
    with pytest.raises(TypeError):
        score_curve("not callable", start, end)
    torch.manual_seed(0)
    enc = build_encoder("hyper_resnet18", SPACE, in_chans=1, width=4)
    curve = interpolation_curve(enc, torch.randn(3, 1, 16, 16), start, end, steps=3)
    assert curve[0]["cosine_to_start"] == pytest.approx(1.0, abs=1e-5)
    assert curve[-1]["cosine_to_end"] == pytest.approx(1.0, abs=1e-5)
    assert core.demo.interpolation_curve is interpolation_curve  # the demo uses the moved function


def _assert_png(path):
    image = matplotlib.image.imread(str(path))
    assert path.suffix == ".png" and image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50


def test_plots_write_png_and_reject_bad_input(tmp_path):
    _assert_png(radar_plot({"esc50": [0.8, 0.2, 0.5], "nsynth": torch.tensor([0.1, 0.9, 0.4])},
                           ["pitch", "fade", "noise"], tmp_path / "radar.png", title="descriptors"))
    rows = [{"m": "linear", "p": 1e3, "acc": 0.5}, {"m": "amortised", "p": 1.1e3, "acc": 0.7},
            {"m": "last:1", "p": 5e4, "acc": 0.6}, {"m": "all", "p": 3e5, "acc": 0.75}]
    assert pareto_front(rows, "p", "acc") == [0, 1, 3]
    _assert_png(pareto_plot(rows, "p", "acc", "m", tmp_path / "sub" / "pareto.png", log_x=True))
    _assert_png(interpolation_plot([{"t": 0.0, "score": 0.4}, {"t": 1.0, "score": 0.6}], tmp_path / "interp.png"))
    measured = measure_invariance(OffsetEncoder(), clean_inputs(), prepare, TRANSFORMS, STRENGTHS, DESCRIPTORS)
    _assert_png(invariance_plot(measured, tmp_path / "inv_strength.png"))
    _assert_png(invariance_plot(summarise_invariance(measured), tmp_path / "inv_summary.png"))
    with pytest.raises(ValueError, match="3 values for 2 names"):
        radar_plot({"a": [0.1, 0.2, 0.3]}, ["x", "y"], tmp_path / "r.png")
    with pytest.raises(ValueError, match=r"\.png"):
        radar_plot({"a": [0.1, 0.2]}, ["x", "y"], tmp_path / "r.jpg")
    with pytest.raises(ValueError, match="finite"):
        radar_plot({"a": [0.1, float("nan")]}, ["x", "y"], tmp_path / "r.png")
    with pytest.raises(ValueError, match="lacks"):
        pareto_plot([{"p": 1}], "p", "acc", "m", tmp_path / "p.png")
    with pytest.raises(ValueError, match="log_x"):
        pareto_plot([{"p": 0, "acc": 1, "m": "x"}], "p", "acc", "m", tmp_path / "p.png", log_x=True)
    with pytest.raises(ValueError, match="'t'"):
        interpolation_plot([], tmp_path / "i.png")
    with pytest.raises(ValueError, match="numeric"):
        interpolation_plot([{"t": 0.0, "name": "x"}], tmp_path / "i.png")
    with pytest.raises(ValueError, match="keys"):
        invariance_plot([{"descriptor": "a"}], tmp_path / "v.png")
    assert not (tmp_path / "r.png").exists() and not (tmp_path / "p.png").exists()


def test_bound_hand_computation():
    # R + 2 sqrt(2c) X B / sqrt(n) + 3 M sqrt(ln(|I| / delta) / (2n)), c=10, X=2, B=3, n=100, |I|=2**7
    expected = 0.1 + 2 * math.sqrt(20) * 6 / 10 + 3 * math.sqrt(math.log(128 / 0.05) / 200)
    assert expected == pytest.approx(6.0608268199577)
    assert generalisation_bound(0.1, 100, 10, 2.0, 3.0, 1.0, 128, 0.05) == pytest.approx(expected, rel=1e-12)
    # a linear readout: |I| = 2, i.e. ln(2 / delta)
    linear = generalisation_bound(0.2, 50, 2, 1.5, 0.5, 2.0, 2, delta=0.1)
    assert linear == pytest.approx(0.2 + 4 * 0.75 / math.sqrt(50) + 6 * math.sqrt(math.log(20) / 100), rel=1e-12)
    terms = bound_terms(0.2, 50, 2, 1.5, 0.5, 2.0, 2, delta=0.1)
    assert terms["bound"] == pytest.approx(linear) and terms["confidence"] == pytest.approx(6 * math.sqrt(math.log(20) / 100))
    assert generalisation_bound(0.2, 50, 2, 1.5, 0.5, 2.0, 128, delta=0.1) > linear
    bad = [dict(n=0), dict(delta=0.0), dict(delta=1.0), dict(feature_norm=-1.0), dict(empirical_risk=3.0),
           dict(num_descriptors=0), dict(loss_max=0.0), dict(num_classes=0), dict(n=2.5)]
    good = dict(empirical_risk=0.2, n=50, num_classes=2, feature_norm=1.0, weight_norm=1.0, loss_max=2.0,
                num_descriptors=2, delta=0.1)
    for change in bad:
        with pytest.raises(ValueError, match="generalisation bound"):
            generalisation_bound(**{**good, **change})


def test_bound_from_readout_norms():
    features = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, -2.0]])
    weight = torch.tensor([[1.0, 2.0], [2.0, 4.0]])  # Frobenius norm 5
    out = bound_from_readout(features, weight, empirical_risk=0.25, num_descriptors=2 ** 7, loss_max=1.0, delta=0.05)
    assert out["feature_norm"] == pytest.approx(5.0) and out["weight_norm"] == pytest.approx(5.0)
    assert out["n"] == 3 and out["num_classes"] == 2
    assert out["bound"] == pytest.approx(generalisation_bound(0.25, 3, 2, 5.0, 5.0, 1.0, 128, 0.05))
    with pytest.raises(ValueError, match="weight must be"):
        bound_from_readout(features, torch.ones(2, 3), 0.1, 2)
    with pytest.raises(ValueError, match="features must be"):
        bound_from_readout(torch.ones(4), weight, 0.1, 2)
