#!/usr/bin/env bash
# AI-MoCo-v2 on ImageNet-100: Hyper-ResNet50, one queue per descriptor, the paper's
# 2-group space [spatial, appearance] and its settings (300 epochs, batch 1024, AdamW,
# 40 warm-up epochs then cosine; see recipes/imagenet100_moco.yaml).
#
# Baselines with the same budget: MODEL=moco | moco_appearance | moco_spatial | looc |
# looc_pp | augself (aivision/baselines.py; default ai_moco) adds that model's overrides.
#
# Environment:
#   IMAGENET_ROOT  (required) ImageNet folder holding train/ (one folder per wnid); the
#                  100-class list ships with aivision
#   GPUS           processes (GPUs) on this node; default: nvidia-smi's GPU count, else 1
#   GLOBAL_BATCH   samples per step over all processes (default 1024, the paper's);
#                  each process gets GLOBAL_BATCH / GPUS
#   MODEL          ai_moco (default) or a baseline of aivision/baselines.py
#   RUN_DIR        run directory (default runs/imagenet100_$MODEL); an existing last
#                  checkpoint there is resumed
#   PYTHON         interpreter (default: .venv/bin/python when present, else python3)
# Extra arguments are config overrides (a.b=value).
#
#   IMAGENET_ROOT=/data/imagenet GPUS=8 bash recipes/imagenet100_moco.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

fail() { echo "imagenet100_moco.sh: $*" >&2; exit 2; }

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi

MODEL="${MODEL:-ai_moco}"

if [[ -z "${IMAGENET_ROOT:-}" ]]; then
    fail "IMAGENET_ROOT is not set: point it at the ImageNet folder holding train/<wnid>/*.JPEG"
fi
[[ -d "$IMAGENET_ROOT/train" ]] || fail "IMAGENET_ROOT=$IMAGENET_ROOT has no train/ folder (expected ImageNet's train/<wnid>/ layout)"

detected=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
[[ "$detected" =~ ^[1-9][0-9]*$ ]] || detected=0
GPUS="${GPUS:-$((detected > 0 ? detected : 1))}"
[[ "$GPUS" =~ ^[1-9][0-9]*$ ]] || fail "GPUS must be a positive integer, got '$GPUS'"
GLOBAL_BATCH="${GLOBAL_BATCH:-1024}"
[[ "$GLOBAL_BATCH" =~ ^[1-9][0-9]*$ && $((GLOBAL_BATCH % GPUS)) -eq 0 ]] \
    || fail "GLOBAL_BATCH ($GLOBAL_BATCH) must be a positive multiple of GPUS ($GPUS)"
RUN_DIR="${RUN_DIR:-runs/imagenet100_$MODEL}"

resume=()
# any checkpoint (last.pt or step_*.pt): pretrain --resume takes the newest intact one
if compgen -G "$RUN_DIR/checkpoints/*.pt" >/dev/null; then
    resume=(--resume) && echo "resuming from the newest intact checkpoint in $RUN_DIR/checkpoints"
fi

echo "== pre-training $MODEL on $GPUS process(es), $GLOBAL_BATCH images per step: $RUN_DIR"
# python -m torch.distributed.run is torchrun, run with the chosen interpreter.
"$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$GPUS" -m aivision.cli pretrain \
    --config recipes/imagenet100_moco.yaml "${resume[@]}" --model "$MODEL" \
    "run_dir=$RUN_DIR" "data.dataset=imagenet100:$IMAGENET_ROOT" "train.batch_size=$((GLOBAL_BATCH / GPUS))" "$@"

echo "== exporting the encoder: $RUN_DIR/encoder.pt"
"$PYTHON" -m aivision.cli export --checkpoint "$RUN_DIR/checkpoints/last.pt" --out "$RUN_DIR/encoder.pt"
echo "done: $RUN_DIR"
