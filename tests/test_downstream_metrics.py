"""Downstream metrics against scikit-learn on fixed random data."""
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.metrics import r2_score as sk_r2

from core.downstream.metrics import accuracy, mean_class_accuracy, r2_score


def _classes(seed: int, n: int = 200, c: int = 7):
    gen = torch.Generator().manual_seed(seed)
    target = torch.randint(0, c, (n,), generator=gen)
    scores = torch.randn(n, c, generator=gen)
    scores[torch.arange(n), target] += 1.0  # better than chance, far from perfect
    return scores, target


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_and_mean_class_accuracy_match_sklearn(seed):
    scores, target = _classes(seed)
    pred = scores.argmax(1)
    assert accuracy(pred, target) == pytest.approx(accuracy_score(target.numpy(), pred.numpy()), abs=1e-12)
    assert accuracy(scores, target) == accuracy(pred, target)  # scores are arg-maxed
    expected = balanced_accuracy_score(target.numpy(), pred.numpy())
    assert mean_class_accuracy(pred, target) == pytest.approx(expected, abs=1e-12)
    assert mean_class_accuracy(scores, target, num_classes=7) == pytest.approx(expected, abs=1e-12)
    # imbalance makes the two metrics differ
    keep = (target != 0) | (torch.arange(target.numel()) % 5 == 0)
    assert mean_class_accuracy(pred[keep], target[keep]) != pytest.approx(accuracy(pred[keep], target[keep]))


def test_mean_class_accuracy_skips_classes_absent_from_target():
    target = torch.tensor([0, 0, 2, 2, 2])
    pred = torch.tensor([0, 1, 2, 2, 1])  # class 1 is predicted but never true
    assert mean_class_accuracy(pred, target) == pytest.approx((0.5 + 2 / 3) / 2)


@pytest.mark.parametrize("outputs", [1, 3])
def test_r2_is_dataset_level_and_uniformly_averaged(outputs):
    gen = torch.Generator().manual_seed(outputs)
    target = torch.randn(150, outputs, generator=gen) * torch.tensor([1.0, 10.0, 0.1])[:outputs] + 5
    pred = target + 0.5 * torch.randn(150, outputs, generator=gen) * target.std(0)
    expected = sk_r2(target.numpy(), pred.numpy(), multioutput="uniform_average")
    # float32 sums of squares (numpy's SIMD pairwise sums vs torch): 5.8e-8 apart observed;
    # abs 1e-5 leaves ~170x and is far below a wrong (e.g. variance-weighted) average.
    assert r2_score(pred, target) == pytest.approx(expected, abs=1e-5)
    if outputs == 1:
        assert r2_score(pred[:, 0], target[:, 0]) == pytest.approx(expected, abs=1e-5)
    # not the mean of per-batch scores (the paper code's defect)
    per_batch = sum(r2_score(pred[i:i + 30], target[i:i + 30]) for i in range(0, 150, 30)) / 5
    assert abs(per_batch - expected) > 1e-4


def test_r2_constant_target_follows_sklearn():
    target = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]])
    exact = torch.tensor([[1.0, 0.1], [1.0, 1.0], [1.0, 1.9]])
    off = exact + torch.tensor([0.5, 0.0])
    for pred in (exact, off):
        assert r2_score(pred, target) == pytest.approx(
            sk_r2(target.numpy(), pred.numpy(), multioutput="uniform_average"), abs=1e-6)


def test_metric_errors():
    with pytest.raises(ValueError, match="3 predictions but 2 targets"):
        accuracy(torch.tensor([0, 1, 1]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="integer class ids"):
        accuracy(torch.tensor([0, 1]), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"lie in \[0, 2\)"):
        mean_class_accuracy(torch.tensor([0, 2]), torch.tensor([0, 1]), num_classes=2)
    with pytest.raises(ValueError, match="one shape"):
        r2_score(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="at least 2"):
        r2_score(torch.zeros(1), torch.zeros(1))
    with pytest.raises(ValueError, match="no examples"):
        accuracy(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
