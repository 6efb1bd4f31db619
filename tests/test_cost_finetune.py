"""Cost meter and fine-tuning baselines on tiny encoders and in-memory clips."""
import math

import pytest
import torch
from torch import nn

from conftest import TINY, tiny_encoder
from core import InvarianceSpace
from core.downstream.clips import TensorClips
from core.downstream.cost import CostMeter, count_trainable
from core.downstream.blocks import encoder_blocks, parse_blocks
from core.downstream.finetune import FinetuneConfig, finetune, fit_finetune
from core.downstream.metrics import accuracy, r2_score
from core.encoders.base import InvarianceEncoder

SPACE = InvarianceSpace(["a", "b", "c"], min_active=1)


def small_resnet(name: str = "hyper_resnet18"):
    torch.manual_seed(0)
    from core import build_encoder
    return build_encoder(name, SPACE, in_chans=1, width=4)


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def class_clips(n: int, seed: int, pieces: int = 1) -> TensorClips:
    """Three classes told apart by brightness; each clip has ``pieces`` pieces (1, 16, 16)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    clips = [torch.randn(pieces, 1, 16, 16, generator=g) * 0.5 + 1.5 * int(y) for y in labels]
    return TensorClips(clips, labels)


def test_cost_meter_and_count_trainable():
    with pytest.raises(ValueError, match="cpu or cuda"):
        CostMeter("meta")
    with CostMeter("cpu") as cost:
        big = torch.ones(4 * 2**20)  # 16 MB
        total = float(big.sum())
    assert total == 4 * 2**20 and cost.wall_s > 0 and cost.peak_mb > 16
    assert set(cost.to_dict()) == {"wall_s", "peak_mb"}
    a, b = nn.Linear(3, 4), nn.Linear(4, 2)
    b.bias.requires_grad_(False)
    assert count_trainable(a) == 16
    assert count_trainable(a, b) == 16 + 8
    assert count_trainable(a, a.weight, [a.bias, b.weight]) == 16 + 8  # shared parameters once
    assert count_trainable(b.parameters()) == 8
    with pytest.raises(TypeError, match="argument 0"):
        count_trainable(3)


@pytest.mark.parametrize("name", sorted(TINY))
def test_encoder_blocks_partition_parameters(name, audio_space):
    enc = tiny_encoder(name, audio_space)
    blocks = encoder_blocks(enc)
    ids = [id(p) for b in blocks for p in b.parameters()]
    assert len(ids) == len(set(ids)) == len(list(enc.parameters()))
    expected = {"hyper_resnet18": 9, "resnet18": 9, "hyper_resnet50": 17, "resnet50": 17,
                "looc_resnet18": 9, "looc_resnet50": 17}.get(name, 3)
    assert len(blocks) == expected  # stem + residual blocks, or stem + 2 transformer blocks
    stem = {id(p) for p in blocks[0].parameters()}
    first = (enc.conv1 if name.startswith("hyper") else enc.net.conv1 if name.startswith("resnet")
             else enc.net.net.conv1 if name.startswith("looc") else enc.vit.patch_embed)
    assert {id(p) for p in first.parameters()} <= stem
    if name.startswith("prompt"):
        assert {id(p) for p in enc.vit.norm.parameters()} <= {id(p) for p in blocks[-1].parameters()}
        assert {id(p) for p in enc.prompt.parameters()} <= stem
    if name.startswith("looc"):  # the last block groups that block of every branch
        assert {id(p) for p in enc.net.extra_stages[-1][-1].parameters()} <= {id(p) for p in blocks[-1].parameters()}


def test_encoder_blocks_unknown_type_and_block_spec():
    class Odd(InvarianceEncoder):
        def forward(self, x, inv):
            return x

        def specialise(self, inv):
            return nn.Identity()

    with pytest.raises(TypeError, match="no block structure known for Odd"):
        encoder_blocks(Odd())
    assert parse_blocks("all", 9) == 9 and parse_blocks("last:2", 9) == 2
    for bad in ("last:0", "last:10", "first:1", "last:x", "last"):
        with pytest.raises(ValueError, match="FinetuneConfig.blocks"):
            parse_blocks(bad, 9)


def test_last_block_only_changes_last_block_and_original_untouched():
    enc = small_resnet()
    before = snapshot(enc)
    train = class_clips(12, seed=1)
    fitted, result = fit_finetune(enc, train, FinetuneConfig(blocks="last:1", epochs=2, batch_size=4))
    after = snapshot(fitted.model)
    last = "layer4.1."
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all(k.startswith(last) for k in changed)
    assert any(k.startswith(last) and "running_mean" in k for k in changed)  # its BN trained
    assert all(torch.equal(before[k], after[k]) for k in before if "running" in k and not k.startswith(last))
    expected = sum(p.numel() for p in enc.layer4[1].parameters()) + enc.num_features * 3 + 3
    assert result.trainable_params == expected
    assert result.epochs_done == 2 and result.steps_done == 6 and not result.budget_hit
    assert result.wall_s > 0 and result.peak_mb > 0 and math.isfinite(result.train_loss)
    # the encoder passed in: same weights, statistics, mode and requires_grad
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in before.items())
    assert enc.training and all(p.requires_grad for p in enc.parameters())


def test_all_blocks_change_everything_and_count():
    enc = small_resnet("resnet18")
    before = snapshot(enc)
    fitted, result = fit_finetune(enc, class_clips(12, seed=2), FinetuneConfig(epochs=1, batch_size=6))
    params = dict(fitted.model.named_parameters())
    assert all(not torch.equal(before[k], p.detach()) for k, p in params.items())
    assert result.trainable_params == sum(p.numel() for p in enc.parameters()) + enc.num_features * 3 + 3
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in before.items())


def test_budget_stops_after_first_step():
    # a budget far below one step's time: the first step crosses it, training stops right after
    cfg = FinetuneConfig(epochs=5, batch_size=4, budget_s=1e-9, blocks="last:2")
    result = finetune(small_resnet(), class_clips(16, seed=3), cfg)
    assert result.budget_hit and result.steps_done == 1 and result.epochs_done == 0 < cfg.epochs
    with pytest.raises(ValueError, match="budget_s"):
        finetune(small_resnet(), class_clips(16, seed=3), FinetuneConfig(budget_s=0))


def test_classification_votes_over_pieces_and_learns():
    train, test = class_clips(24, seed=4), class_clips(9, seed=5, pieces=3)
    fitted, result = fit_finetune(small_resnet(), train, FinetuneConfig(epochs=5, batch_size=8, lr=3e-3, seed=1))
    probs = fitted.predict(test, batch_size=4)
    assert probs.shape == (9, 3) and torch.allclose(probs.sum(1), torch.ones(9), atol=1e-5)
    metrics = fitted.evaluate(test)
    assert set(metrics) == {"accuracy", "mean_class_accuracy"}
    assert metrics["accuracy"] == pytest.approx(accuracy(probs.argmax(1), test.labels))
    assert metrics["accuracy"] >= 2 / 3  # brightness classes are easy; chance is 1/3
    assert result.to_dict()["blocks"] == "all" and result.to_dict()["descriptor"] == [1.0, 1.0, 1.0]


def test_regression_path_standardises_and_reports_r2():
    g = torch.Generator().manual_seed(6)
    level = torch.linspace(-2, 2, 20)
    x = torch.randn(20, 1, 16, 16, generator=g) + level.view(-1, 1, 1, 1)
    y = torch.stack([100 + 50 * level, level], dim=1)  # very different scales
    train, test = TensorClips(x[::2], y[::2]), TensorClips(x[1::2], y[1::2])
    short = finetune(small_resnet(), train, FinetuneConfig(task="regression", epochs=1, batch_size=5), test=test)
    assert set(short.metrics) == {"r2"} and math.isfinite(short.metrics["r2"])
    cfg = FinetuneConfig(task="regression", epochs=6, batch_size=5, lr=3e-3, descriptor=[1, 0, 1])
    fitted, long = fit_finetune(small_resnet(), train, cfg)
    assert long.train_loss < short.train_loss
    pred = fitted.predict(test)
    assert pred.shape == (10, 2) and 20 < float(pred[:, 0].mean()) < 180  # de-standardised
    assert fitted.evaluate(test)["r2"] == pytest.approx(r2_score(pred, test.labels))
    assert long.descriptor == [1.0, 0.0, 1.0]
    one_d = finetune(small_resnet(), TensorClips(x[:4], level[:4]), FinetuneConfig(task="regression", epochs=1))
    assert one_d.epochs_done == 1 and one_d.steps_done == 1


def test_finetune_validates_inputs():
    train = class_clips(6, seed=7)
    with pytest.raises(ValueError, match="regression needs float targets"):
        finetune(small_resnet(), train, FinetuneConfig(task="regression", epochs=1))
    with pytest.raises(ValueError, match="classification needs"):
        finetune(small_resnet(), TensorClips(torch.randn(4, 1, 16, 16), torch.randn(4)), FinetuneConfig(epochs=1))
    with pytest.raises(ValueError, match="epochs"):
        finetune(small_resnet(), train, FinetuneConfig(epochs=0))
    with pytest.raises(ValueError, match="FinetuneConfig.blocks"):
        finetune(small_resnet(), train, FinetuneConfig(blocks="last:99", epochs=1))
    with pytest.raises(ValueError):
        finetune(small_resnet(), train, FinetuneConfig(descriptor=[1.0, 2.0, 0.0], epochs=1))


def test_prompt_vit_last_block(audio_space):
    enc = tiny_encoder("prompt_vit_small", audio_space)
    g = torch.Generator().manual_seed(8)
    train = TensorClips(torch.randn(8, 3, 32, 32, generator=g), torch.arange(8) % 2)
    fitted, result = fit_finetune(enc, train, FinetuneConfig(blocks="last:1", epochs=1, batch_size=4))
    expected = sum(p.numel() for p in [*enc.vit.blocks[-1].parameters(), *enc.vit.norm.parameters()])
    assert result.trainable_params == expected + enc.num_features * 2 + 2
    assert torch.equal(fitted.model.prompt.fc1.weight, enc.prompt.fc1.weight)
    assert not torch.equal(fitted.model.vit.norm.weight, enc.vit.norm.weight)
