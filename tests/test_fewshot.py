"""Few-shot evaluation on a controlled encoder whose descriptor entry 0 keeps or removes the class signal."""
import json
import math

import pytest
import torch
from torch import nn

from core import InvarianceEncoder, InvarianceSpace
from core.config import ConfigError, from_dict
from core.downstream.clips import TensorClips, pool_by_owner
from core.downstream.episodes import sample_episodes
from core.downstream.fewshot import FewShotConfig, FewShotResult, parse_descriptor, run_fewshot
from core.downstream.fewshot_descriptor import learn_episode_descriptor, support_criterion
from core.downstream.fewshot_eval import FeatureCache, clip_scores, mean_ci95
from core.downstream.readouts import readout_scores
from tests.conftest import AUDIO_NAMES, FixedDescriptor, tiny_encoder


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread per module


class Controlled(InvarianceEncoder):
    """Input (B, 1, 1, 2F) = [signal | nuisance]; features [base + (1-i0) signal, (1-i1) nuisance].

    Entry 0 ("signal") = invariance that removes the class information, entry 1 ("nuisance")
    removes a block that carries none. Counts the pieces it encodes.
    """

    def __init__(self, f: int = 8, base: float = 1.0) -> None:
        super().__init__()
        self.space = InvarianceSpace(["signal", "nuisance"], min_active=1)
        self.f, self.base, self.num_features, self.name = f, base, 2 * f, "controlled"
        self.config = {"f": f, "base": base}
        self.gain = nn.Parameter(torch.ones(()))
        self.seen = 0

    def forward(self, x, inv):
        inv = self.check_descriptor(inv, x)
        inv = inv if inv.dim() == 2 else inv.unsqueeze(0)
        self.seen += x.shape[0]
        z = x.flatten(1) * self.gain
        return torch.cat([self.base + (1 - inv[:, :1]) * z[:, :self.f], (1 - inv[:, 1:]) * z[:, self.f:]], 1)

    def specialise(self, inv):
        return FixedDescriptor(self, self._single_descriptor(inv))


def clips(classes=8, per=8, f=8, noise=0.3, nuisance=2.0, pieces=1, seed=0) -> TensorClips:
    """Class means in the signal block plus noise; independent noise in the nuisance block."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, f, generator=g)
    labels = torch.arange(classes).repeat_interleave(per)
    n = len(labels) * pieces
    signal = means[labels].repeat_interleave(pieces, 0) + noise * torch.randn(n, f, generator=g)
    x = torch.cat([signal, nuisance * torch.randn(n, f, generator=g)], 1).view(len(labels), pieces, 1, 1, 2 * f)
    return TensorClips(list(x) if pieces > 1 else x[:, 0], labels)


def cfg(**kw) -> FewShotConfig:
    base = {"ways": 5, "shots": 1, "queries": 4, "episodes": 30, "train_episodes": 20}
    return FewShotConfig(**(base | kw))


@pytest.mark.parametrize("readout", ["ridge", "logistic", "prototype"])
def test_fixed_descriptor_keeping_the_signal_wins_and_removing_it_is_chance(readout):
    enc, test = Controlled(), clips()
    keep = run_fewshot(enc, test, cfg(descriptor="fixed:0,1", readout=readout, episodes=20))
    drop = run_fewshot(enc, test, cfg(descriptor="fixed:1,1", readout=readout, episodes=20))
    assert keep.accuracy > 0.95
    assert drop.accuracy == pytest.approx(0.2)  # all features equal: every query gets the same class
    assert keep.descriptor == [0.0, 1.0] and keep.descriptor_mode == "fixed"
    assert keep.descriptor_names == ["signal", "nuisance"] and keep.episodes == 20
    nuisance_only = run_fewshot(enc, test, cfg(descriptor="fixed:1,0", readout=readout, episodes=40))
    assert nuisance_only.accuracy < 0.4


def test_fixed_ones_and_result_fields():
    enc = Controlled()
    r = run_fewshot(enc, clips(), cfg(descriptor="fixed:ones", episodes=7))
    assert r.descriptor == [1.0, 1.0] and len(r.per_episode) == 7
    std = torch.tensor(r.per_episode).double().std(unbiased=False).item()
    mean, ci = sum(r.per_episode) / 7, 1.96 * std / math.sqrt(7)
    assert r.accuracy == pytest.approx(mean) and r.ci95 == pytest.approx(ci)
    d = r.to_dict()
    for key in ("ways", "shots", "queries", "episodes", "readout", "descriptor_mode", "accuracy", "ci95",
                "descriptor", "descriptor_names"):
        assert key in d
    assert (d["ways"], d["shots"], d["queries"], d["readout"]) == (5, 1, 4, "ridge")
    json.dumps(d)


def test_ci95_formula_on_per_episode():
    r = run_fewshot(Controlled(), clips(), cfg(descriptor="fixed:0.6,0.3", episodes=25))
    values = torch.tensor(r.per_episode, dtype=torch.float64)
    assert len(set(r.per_episode)) > 1  # a spread, so the formula is exercised
    assert r.ci95 == pytest.approx(1.96 * float(values.std(unbiased=False)) / 5.0)
    assert mean_ci95([0.5]) == (0.5, 0.0)


def test_episode_mode_loo_moves_signal_down_and_nuisance_up():
    r = run_fewshot(Controlled(), clips(), cfg(descriptor="episode", shots=2, episodes=6, inner_steps=15))
    assert r.descriptor_mode == "episode"
    assert r.descriptor[0] < 0.2 and r.descriptor[1] > 0.8
    assert r.accuracy > 0.95 and len(r.details["descriptor_std"]) == 2


def test_episode_mode_one_shot_keeps_the_signal():
    # one piece per clip: strong-lambda fit loss = spread the support classes apart
    r = run_fewshot(Controlled(), clips(nuisance=0.2), cfg(descriptor="episode", episodes=6, inner_steps=15))
    assert r.descriptor[0] < 0.2
    # the criterion really prefers the signal-keeping corner
    enc, test = Controlled(), clips(nuisance=0.2)
    ep = sample_episodes(test.labels, 5, 1, 1, 1, seed=0)[0]
    x, owner = test.pieces(ep.support)
    loss = {d: float(support_criterion(enc(x, torch.tensor(d)), ep.support_labels[owner], owner, 5, 1.0).detach())
            for d in ((0.0, 0.5), (0.9, 0.5))}
    assert loss[(0.0, 0.5)] < loss[(0.9, 0.5)]


def test_episode_descriptor_one_shot_multi_piece_uses_pieces():
    enc, test = Controlled(), clips(pieces=3)
    ep = sample_episodes(test.labels, 4, 1, 1, 1, seed=1)[0]
    x, owner = test.pieces(ep.support)
    d = learn_episode_descriptor(enc, x, owner, ep.support_labels, 4, lam=1.0, steps=15, lr=0.05)
    assert d[0] < 0.2 and d[1] > 0.8  # leave-one-piece-out sees the nuisance vary within a class
    d0 = learn_episode_descriptor(enc, x, owner, ep.support_labels, 4, lam=1.0, steps=0, lr=0.05)
    assert d0.tolist() == [0.5, 0.5]


def test_dataset_mode_learns_once_on_training_classes():
    enc = Controlled()
    train, test = clips(seed=1), clips(seed=2)
    r = run_fewshot(enc, test, cfg(descriptor="dataset", inner_steps=15), train=train)
    assert r.descriptor[0] < 0.2 and r.descriptor[1] > 0.8
    assert r.accuracy > 0.95
    losses = r.details["train_loss"]
    assert len(losses) == 15 and losses[-1] < losses[0]


def test_descriptor_init_sets_the_start_and_is_validated():
    enc = Controlled()
    train, test = clips(seed=1), clips(seed=2)
    start = run_fewshot(enc, test, cfg(descriptor="dataset", inner_steps=0, descriptor_init=1.0), train=train)
    assert list(start.descriptor) == [1.0, 1.0] and start.accuracy < 0.5      # the signal is removed
    learned = run_fewshot(enc, test, cfg(descriptor="dataset", inner_steps=30, descriptor_init=1.0), train=train)
    assert learned.descriptor[0] < 0.2 and learned.accuracy > 0.95                 # and learned back from there
    for bad in (-0.1, 1.5, True, "ones"):
        with pytest.raises(ConfigError, match="descriptor_init must lie in"):
            cfg(descriptor_init=bad)


def test_corners_picks_the_corner_keeping_the_signal():
    enc = Controlled()
    r = run_fewshot(enc, clips(seed=2), cfg(descriptor="corners", readout="prototype"), train=clips(seed=1))
    assert r.descriptor == [0.0, 1.0] and r.descriptor_mode == "corners"
    rows = r.details["corners"]
    assert [row["descriptor"] for row in rows] == enc.space.descriptors.tolist()
    assert max(rows, key=lambda row: row["accuracy"])["descriptor"] == [0.0, 1.0]


def test_features_are_computed_once_per_clip_and_descriptor():
    enc, test = Controlled(), clips(pieces=2)
    c = cfg(descriptor="fixed:0,1", episodes=40)
    run_fewshot(enc, test, c)
    used = {i for ep in sample_episodes(test.labels, 5, 1, 4, 40, 0) for i in ep.support + ep.query}
    assert enc.seen == 2 * len(used)
    cache = FeatureCache(enc, test)
    f1, o1 = cache.features([3, 1], torch.tensor([0.0, 1.0]))
    f2, _ = cache.features([1], torch.tensor([0.0, 1.0]))
    assert enc.seen == 2 * len(used) + 4 and o1.tolist() == [0, 0, 1, 1]
    torch.testing.assert_close(f2, f1[2:])


def test_query_pieces_vote_by_averaging_scores():
    support = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    # query clip 0: first piece exactly like class 1, two pieces closer to class 0
    query = torch.tensor([[0.0, 1.0], [1.0, 0.3], [1.0, 0.3], [0.2, 1.0]])
    owner = torch.tensor([0, 0, 0, 1])
    for readout in ("ridge", "prototype", "logistic"):
        scores = clip_scores(support, torch.arange(2), labels, query, owner, 2, 2, readout, 1.0)
        assert scores.argmax(1).tolist() == [0, 1]
        piece = readout_scores(readout, support, labels, query, 2, 1.0)
        assert piece[0].argmax() == 1  # the first piece alone would be wrong
        torch.testing.assert_close(scores, pool_by_owner(piece, owner, 2))


def test_run_fewshot_votes_like_a_hand_computation():
    enc, test = Controlled(), clips(pieces=3, nuisance=3.0)
    c = cfg(descriptor="fixed:0.5,0.2", episodes=5, readout="prototype")
    r = run_fewshot(enc, test, c)
    d = torch.tensor([0.5, 0.2])
    for ep, acc in zip(sample_episodes(test.labels, 5, 1, 4, 5, 0), r.per_episode):
        xs, so = test.pieces(ep.support)
        xq, qo = test.pieces(ep.query)
        piece = readout_scores("prototype", enc(xs, d), ep.support_labels[so], enc(xq, d), 5)
        voted = pool_by_owner(piece, qo, len(ep.query))
        assert acc == pytest.approx(float((voted.argmax(1) == ep.query_labels).float().mean()))


@pytest.mark.parametrize("mode", ["episode", "dataset", "corners"])
def test_real_tiny_encoder_untouched_by_learned_modes(mode):
    space = InvarianceSpace(AUDIO_NAMES[:3], min_active=1)
    enc = tiny_encoder("hyper_resnet18", space)
    enc.train()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    test = TensorClips(torch.randn(6, 3, 32, 32, generator=g), labels)
    train = TensorClips(torch.randn(6, 3, 32, 32, generator=g), labels)
    r = run_fewshot(enc, test, FewShotConfig(ways=3, shots=1, queries=1, episodes=2, descriptor=mode,
                                             inner_steps=2, train_episodes=2), train=train)
    assert enc.training and len(r.descriptor) == 3 and 0.0 <= r.accuracy <= 1.0
    assert all(0.0 <= v <= 1.0 for v in r.descriptor) and r.descriptor != [0.5] * 3
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())


def test_descriptor_spec_errors_name_the_bad_value():
    space = InvarianceSpace(["a", "b"])
    assert parse_descriptor("fixed:0.25, 1", space)[1].tolist() == [0.25, 1.0]
    with pytest.raises(ConfigError, match="'abc' is not a number"):
        FewShotConfig(descriptor="fixed:0.5,abc")
    with pytest.raises(ConfigError, match="value 1.5 for 'a' is outside"):
        parse_descriptor("fixed:1.5,0", space)
    with pytest.raises(ConfigError, match="has 3 values but the space has 2"):
        run_fewshot(Controlled(), clips(), cfg(descriptor="fixed:1,0,1"))
    with pytest.raises(ConfigError, match="'best' is not one of"):
        FewShotConfig(descriptor="best")


@pytest.mark.parametrize("kw, match", [({"ways": 1}, "ways must be at least 2"), ({"episodes": 0}, "episodes"),
                                       ({"ridge_lambda": 0.0}, "ridge_lambda"), ({"inner_steps": -1}, "inner_steps"),
                                       ({"readout": "svm"}, "readout")])
def test_config_validation(kw, match):
    with pytest.raises(ConfigError, match=match):
        FewShotConfig(**kw)
    with pytest.raises(ConfigError, match=match):
        from_dict(FewShotConfig, kw, where="fewshot")


@pytest.mark.parametrize("mode", ["dataset", "corners"])
def test_train_source_required(mode):
    with pytest.raises(ValueError, match=f"{mode!r} needs a train source"):
        run_fewshot(Controlled(), clips(), cfg(descriptor=mode))


def test_regression_targets_rejected():
    source = TensorClips(torch.randn(4, 1, 1, 16), torch.randn(4, 2))
    with pytest.raises(ValueError, match="int class labels"):
        run_fewshot(Controlled(), source, cfg())


def test_result_is_a_dataclass_with_contract_fields():
    r = FewShotResult(accuracy=0.5, ci95=0.1, episodes=2, descriptor=[1.0], descriptor_names=["a"],
                      descriptor_mode="fixed", per_episode=[0.4, 0.6])
    assert r.to_dict()["accuracy"] == 0.5 and r.to_dict()["ways"] == 5
