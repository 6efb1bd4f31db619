"""bench/gpu_check.sh, the prepared GPU run, dry-run on the CPU at tiny sizes (QUICK=1): every
step's command line is accepted and runs, and the files meant to come back are written."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_script_runs_every_step_on_the_cpu(tmp_path):
    env = {**os.environ, "DEVICE": "cpu", "QUICK": "1", "OUT": str(tmp_path / "out"), "PYTHON": sys.executable,
           "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh")], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    log = (tmp_path / "out" / "gpu_check.log").read_text()
    assert proc.returncode == 0, log[-3000:]
    assert "=== 0 step(s) failed" in log
    for name in ("augment_throughput", "pretrain_step", "encoder_overhead", "pretrain_until_stop", "pretrain_resume",
                 "fewshot", "downstream_memory", "vision_augment_throughput", "vision_ai_moco", "vision_looc",
                 "vision_augself"):
        assert f"=== {name}: exit 0" in log, name
    assert "stopped at step 2" in log and "pre-trained 4 steps" in log
    report = json.loads((tmp_path / "out" / "fewshot.json").read_text())
    assert report["ways"] == 4 and report["descriptor_mode"] == "episode"
    assert (tmp_path / "out" / "metrics.csv").is_file() and (tmp_path / "out" / "loss.png").is_file()
