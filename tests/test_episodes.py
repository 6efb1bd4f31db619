"""Few-shot episode sampling: disjointness, class counts, re-indexing, determinism, errors."""
import pytest
import torch

from core.downstream.episodes import Episode, clips_per_class, sample_episodes


def _labels() -> torch.Tensor:
    # classes 0..5 with 6 clips each, class 6 with only 2 clips (never eligible for 2+2)
    labels = torch.cat([torch.arange(6).repeat_interleave(6), torch.tensor([6, 6])])
    return labels[torch.randperm(38, generator=torch.Generator().manual_seed(3))]


def test_support_and_query_never_overlap_and_counts_are_exact():
    labels = _labels()
    episodes = sample_episodes(labels, ways=4, shots=2, queries=2, episodes=300, seed=0)
    assert len(episodes) == 300
    seen_classes = set()
    for ep in episodes:
        assert isinstance(ep, Episode) and ep.ways == 4
        assert not set(ep.support) & set(ep.query)
        assert len(set(ep.support)) == 8 and len(set(ep.query)) == 8
        assert len(set(ep.classes)) == 4 and 6 not in ep.classes
        assert ep.support_labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
        assert ep.query_labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
        assert ep.support_labels.dtype == torch.long and ep.query_labels.dtype == torch.long
        # re-indexed labels point back to the clips' original classes
        for clips, local in ((ep.support, ep.support_labels), (ep.query, ep.query_labels)):
            assert [int(labels[i]) for i in clips] == [ep.classes[j] for j in local.tolist()]
        seen_classes.update(ep.classes)
    assert seen_classes == set(range(6))  # every eligible class shows up over many episodes


def test_same_seed_same_episodes_other_seed_differs():
    labels = _labels()
    a = sample_episodes(labels, 3, 1, 3, 20, seed=7)
    b = sample_episodes(labels, 3, 1, 3, 20, seed=7)
    c = sample_episodes(labels, 3, 1, 3, 20, seed=8)
    key = lambda eps: [(e.classes, e.support, e.query) for e in eps]
    assert key(a) == key(b)
    assert key(a) != key(c)


def test_class_with_exactly_enough_clips_is_used_whole():
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    (ep,) = sample_episodes(labels, ways=2, shots=1, queries=2, episodes=1, seed=0)
    assert sorted(ep.support + ep.query) == list(range(6))


def test_too_few_eligible_classes_names_the_counts():
    labels = torch.tensor([0] * 5 + [1] * 5 + [2] * 2)
    with pytest.raises(ValueError, match=r"3 classes with at least 4 clips.*only 2 of the 3 classes"):
        sample_episodes(labels, ways=3, shots=1, queries=3, episodes=1, seed=0)


@pytest.mark.parametrize("kwargs, match", [
    ({"ways": 1}, "ways must be at least 2"),
    ({"shots": 0}, "shots must be a positive integer"),
    ({"queries": -1}, "queries must be a positive integer"),
    ({"episodes": 0}, "episodes must be a positive integer"),
    ({"ways": 2.0}, "ways must be a positive integer"),
])
def test_bad_arguments(kwargs, match):
    args = {"ways": 2, "shots": 1, "queries": 1, "episodes": 1, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=match):
        sample_episodes(torch.tensor([0, 0, 1, 1]), **args)


def test_float_labels_rejected_and_clips_per_class():
    with pytest.raises(ValueError, match="integer class labels"):
        sample_episodes(torch.rand(6, 2), 2, 1, 1, 1, 0)
    assert clips_per_class(torch.tensor([2, 0, 2, 1])) == {0: [1], 1: [3], 2: [0, 2]}
