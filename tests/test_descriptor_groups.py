"""group_descriptors: the distinct descriptors of a batch and the sort that groups them."""
import pytest
import torch

from core.encoders.base import group_descriptors


def test_single_descriptor_is_the_fast_path():
    d = torch.tensor([1.0, 0.0, 1.0])
    groups = group_descriptors(d, batch_size=5)
    assert groups.counts is None and groups.order is None
    assert torch.equal(groups.descriptors, d[None])
    x = torch.randn(5, 2)
    assert groups.sort(x) is x and groups.unsort(x) is x


def test_identical_rows_collapse_to_one_group():
    d = torch.tensor([0.5, 1.0, 0.0]).repeat(4, 1)
    groups = group_descriptors(d, batch_size=4)
    assert groups.counts is None and groups.descriptors.shape == (1, 3)


def test_groups_counts_sort_and_unsort():
    a, b, c = torch.eye(3)
    inv = torch.stack([b, a, b, c, a, b])
    groups = group_descriptors(inv, batch_size=6)
    assert sorted(groups.counts) == [1, 2, 3] and sum(groups.counts) == 6
    x = torch.arange(6.0)[:, None]
    sorted_x = groups.sort(x)
    # every chunk of the sorted batch shares one descriptor: the chunk's row of `descriptors`
    for chunk, desc in zip(torch.split(groups.sort(inv), groups.counts), groups.descriptors):
        assert (chunk == desc).all()
    # a stable sort: samples of a group keep their order
    for chunk in torch.split(sorted_x.squeeze(1), groups.counts):
        assert chunk.tolist() == sorted(chunk.tolist())
    assert torch.equal(groups.unsort(sorted_x), x)


def test_gradient_reaches_the_rows_passed_in():
    inv = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], requires_grad=True)
    groups = group_descriptors(inv, batch_size=3)
    groups.descriptors.sum().backward()
    # each group's descriptor is its first sample's row
    assert inv.grad.tolist() == [[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]]


def test_row_count_must_match_batch():
    with pytest.raises(ValueError, match="one row per input"):
        group_descriptors(torch.ones(3, 2), batch_size=4)
