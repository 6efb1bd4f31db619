#!/usr/bin/env bash
# The GPU checks in one prepared run on a GPU machine (about 9 minutes):
#   bash scripts/device_wheels.sh        # once, where pip works: audio wheels for a machine without them
#   bash bench/gpu_check.sh              # on the GPU machine, with .device_wheels/ beside the checkout
# What it checks: the batched augmentation on CUDA against audiomentations (bench/
# augment_throughput.py), the AI-SimCLR / SimCLR step ratio under bf16 + channels-last
# (bench/pretrain_step.py), the hypernetwork overhead (bench/encoder_overhead.py), a short
# engine run on the GPU (bf16 autocast, channels-last, k-NN monitor, a stop and --resume),
# few-shot evaluation of its encoder on the GPU, and the probe's memory on the GPU
# (bench/downstream_memory.py), the vision augmentation on CUDA against torchvision per image
# (bench/vision_augment_throughput.py) and short vision runs (AI-MoCo-v2 with a Hyper-ResNet50,
# LooC and AugSelf baselines) under bf16. Everything prints into $OUT/gpu_check.log; the run's
# metrics.csv and loss.png and the few-shot JSON land next to it.
# Env: OUT (default runs/gpu_check), DEVICE (default cuda), QUICK=1 (tiny sizes: a CPU dry run
# of the script itself), PYTHON (default python3 on the GPU image, else .venv/bin/python).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
OUT="${OUT:-runs/gpu_check}"
DEVICE="${DEVICE:-cuda}"
QUICK="${QUICK:-0}"
mkdir -p "$OUT"
log="$OUT/gpu_check.log"
: > "$log"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
failures=0

step() {  # step NAME COMMAND...: run, log, count failures, never stop the script
    local name="$1"; shift
    echo "=== $name: $*" | tee -a "$log"
    local start=$SECONDS
    "$@" 2>&1 | tee -a "$log"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$log"
    [[ $rc -eq 0 ]] || failures=$((failures + 1))
}

if ! "$PYTHON" -c "import soundfile, soxr, librosa, audiomentations" 2>/dev/null; then
    [[ -d .device_wheels ]] || { echo "audio libraries missing and no .device_wheels/: run scripts/device_wheels.sh here and carry it" | tee -a "$log"; exit 2; }
    step install "$PYTHON" -m pip install --quiet --no-index --no-deps .device_wheels/*.whl
fi
step versions "$PYTHON" -c "import torch, platform; print(platform.python_version(), torch.__version__,
    torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"

if [[ "$QUICK" == 1 ]]; then
    batch=8; steps=4; width=8; episodes=4; clips=40; seconds=1
else
    batch=256; steps=200; width=64; episodes=100; clips=300; seconds=2
fi
step augment_throughput "$PYTHON" bench/augment_throughput.py --device "$DEVICE" --batch "$batch" --seconds 4 \
    --reference-clips "$((batch < 64 ? batch : 64))"
step pretrain_step "$PYTHON" bench/pretrain_step.py --device "$DEVICE" --width "$width" --batch "$batch" \
    --steps "$((QUICK == 1 ? 2 : 10))" --seconds 4
step encoder_overhead "$PYTHON" bench/encoder_overhead.py --device "$DEVICE" --width "$width" --batch "$batch" \
    --reps "$((QUICK == 1 ? 1 : 5))"

run_dir="${TMPDIR:-/tmp}/gpu_check_run"
rm -rf "$run_dir"
common=(--config aiaudio/configs/quickstart.yaml --no-progress "run_dir=$run_dir" "train.steps=$steps"
        "train.batch_size=$batch" "encoder.kwargs.width=$width" "optim.warmup_steps=$((steps / 10))"
        "train.checkpoint_every=$((steps / 2))" "monitor.every=$((steps / 2))" "train.bf16=true"
        "train.channels_last=true" "data.dataset=synthetic?n_clips=$((batch * 4))&seconds=$seconds&seed=0"
        "data.seconds=$seconds" "data.fit_clips=$batch"
        "data.monitor=synthetic?n_clips=$clips&seconds=$seconds&seed=1&label=pitch" "data.monitor_clips=$clips")
step pretrain_until_stop "$PYTHON" -m aiaudio.cli pretrain "${common[@]}" "train.stop_at=$((steps / 2))"
step pretrain_resume "$PYTHON" -m aiaudio.cli pretrain "${common[@]}" --resume
cp "$run_dir/metrics.csv" "$run_dir/loss.png" "$OUT/" 2>/dev/null
step fewshot "$PYTHON" -m aiaudio.cli fewshot --encoder "$run_dir/encoder.pt" --device "$DEVICE" --no-progress \
    --dataset "synthetic?n_clips=$clips&seconds=$seconds&seed=5&label=onset" --split all --seconds "$seconds" \
    --ways 4 --shots 5 --queries 5 --episodes "$episodes" --descriptor episode --json "$OUT/fewshot.json"
step downstream_memory "$PYTHON" bench/downstream_memory.py --device "$DEVICE" --modes fixed,backprop,light \
    --reps "$((QUICK == 1 ? 1 : 3))" --steps "$((QUICK == 1 ? 2 : 10))"

step vision_augment_throughput "$PYTHON" bench/vision_augment_throughput.py --device "$DEVICE" \
    --batch "$((QUICK == 1 ? 4 : 128))" --input-size "$((QUICK == 1 ? 40 : 256))" --size "$((QUICK == 1 ? 32 : 224))" \
    --reps "$((QUICK == 1 ? 1 : 3))"
vision=(--no-progress "train.steps=$((QUICK == 1 ? 2 : 50))" "train.batch_size=$((QUICK == 1 ? 4 : 128))"
        "train.num_workers=$((QUICK == 1 ? 0 : 4))" "train.bf16=true" "train.channels_last=true"
        "encoder.kwargs.width=$((QUICK == 1 ? 4 : 64))" "method.queue_size=$((QUICK == 1 ? 16 : 4096))"
        "data.dataset=synthetic?n_images=$((QUICK == 1 ? 16 : 2048))&size=$((QUICK == 1 ? 32 : 128))"
        "data.load_size=$((QUICK == 1 ? 32 : 128))" "data.augment.size=$((QUICK == 1 ? 24 : 112))")
for model in ai_moco looc augself; do
    rm -rf "$run_dir.$model"
    step "vision_$model" "$PYTHON" -m aivision.cli pretrain --model "$model" "${vision[@]}" "run_dir=$run_dir.$model"
done

echo "=== $failures step(s) failed" | tee -a "$log"
exit $((failures > 0))
