"""A real 2-process gloo ``torchrun`` pre-training run on synthetic audio."""
import csv
import json

import pytest
import torch

from aiaudio.space import audio_space
from core.engine import descriptor_for_step, load_config
from tests.engine_helpers import run_helper


def test_two_rank_torchrun_agrees_on_descriptors_and_parameters(tmp_path):
    # 32 clips over 2 ranks x batch 4: 4 batches per epoch, so 5 steps cross an epoch boundary
    overrides = ["train.steps=5", "train.batch_size=4", "train.checkpoint_every=5"]
    proc = run_helper("ddp", str(tmp_path), *overrides, torchrun=2, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    histories = [json.loads((tmp_path / f"history_{r}.json").read_text()) for r in (0, 1)]
    config = load_config(tmp_path / "run" / "config.yaml")
    expected = [descriptor_for_step(config, audio_space(), s).tolist() for s in range(5)]
    for history in histories:
        assert [h["step"] for h in history] == [1, 2, 3, 4, 5]
        assert [h["descriptor"] for h in history] == expected  # the same (seed, step) sequence on both ranks
        assert [h["lr"] for h in history] == [h["lr"] for h in histories[0]]
    # each rank scores its own half of the batch: different local losses
    assert [h["loss"] for h in histories[0]] != [h["loss"] for h in histories[1]]
    params = [torch.load(tmp_path / f"params_{r}.pt", weights_only=True) for r in (0, 1)]
    assert params[0].keys() == params[1].keys() and len(params[0]) > 0
    for name, value in params[0].items():
        assert torch.equal(value, params[1][name]), name
    # rank 0 alone wrote the run directory; the final weights are its (= every rank's) weights
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["step"] == 5 and ckpt["world_size"] == 2 and (ckpt["epoch"], ckpt["batch_in_epoch"]) == (1, 1)
    assert all(torch.equal(ckpt["model"][name], value) for name, value in params[0].items())
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    for row, h0, h1 in zip(rows, *histories):  # CSV loss = mean over ranks; throughput counts both ranks
        assert float(row["loss"]) == pytest.approx((h0["loss"] + h1["loss"]) / 2, rel=1e-5)
    assert (tmp_path / "run" / "encoder.pt").is_file()
    # rank 0 alone took the run directory's lock (the file names its holder)
    assert f"pid={(tmp_path / 'pid_0').read_text()} " in (tmp_path / "run" / "run.lock").read_text()
