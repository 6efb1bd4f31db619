#!/usr/bin/env bash
# AI-MoCo-v3 with a Prompt-ViT-B/16 on ImageNet-1k: no queue, symmetrised loss, the paper's
# 2-group space [spatial, appearance] and its settings (300 epochs, batch 1024, AdamW, 40
# warm-up epochs then cosine; see recipes/imagenet_vit_moco_v3.yaml). Optionally starts from
# a local MoCo-v3 ViT-B checkpoint (its patch embedding and blocks are kept; the prompt MLPs
# that make the invariance token are new).
#
# Environment:
#   IMAGENET_ROOT  (required) ImageNet folder holding train/ (one folder per wnid)
#   PRETRAINED     optional MoCo-v3 ViT-B checkpoint file (e.g. vit-b-300ep.pth.tar), read
#                  from local disk only
#   GPUS           processes (GPUs) on this node; default: nvidia-smi's GPU count, else 1
#   GLOBAL_BATCH   samples per step over all processes (default 1024, the paper's);
#                  each process gets GLOBAL_BATCH / GPUS
#   RUN_DIR        run directory (default runs/imagenet_vit_moco_v3); an existing last
#                  checkpoint there is resumed
#   PYTHON         interpreter (default: .venv/bin/python when present, else python3)
# Extra arguments are config overrides (a.b=value).
#
#   IMAGENET_ROOT=/data/imagenet PRETRAINED=/ckpt/vit-b-300ep.pth.tar GPUS=8 bash recipes/imagenet_vit_moco_v3.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

fail() { echo "imagenet_vit_moco_v3.sh: $*" >&2; exit 2; }

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi

if [[ -z "${IMAGENET_ROOT:-}" ]]; then
    fail "IMAGENET_ROOT is not set: point it at the ImageNet folder holding train/<wnid>/*.JPEG"
fi
[[ -d "$IMAGENET_ROOT/train" ]] || fail "IMAGENET_ROOT=$IMAGENET_ROOT has no train/ folder (expected ImageNet's train/<wnid>/ layout)"
init=()
if [[ -n "${PRETRAINED:-}" ]]; then
    [[ -f "$PRETRAINED" ]] || fail "PRETRAINED=$PRETRAINED: no such file (a local MoCo-v3 ViT-B checkpoint)"
    init=("encoder.kwargs.pretrained=$PRETRAINED")
fi

detected=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
[[ "$detected" =~ ^[1-9][0-9]*$ ]] || detected=0
GPUS="${GPUS:-$((detected > 0 ? detected : 1))}"
[[ "$GPUS" =~ ^[1-9][0-9]*$ ]] || fail "GPUS must be a positive integer, got '$GPUS'"
GLOBAL_BATCH="${GLOBAL_BATCH:-1024}"
[[ "$GLOBAL_BATCH" =~ ^[1-9][0-9]*$ && $((GLOBAL_BATCH % GPUS)) -eq 0 ]] \
    || fail "GLOBAL_BATCH ($GLOBAL_BATCH) must be a positive multiple of GPUS ($GPUS)"
RUN_DIR="${RUN_DIR:-runs/imagenet_vit_moco_v3}"

resume=()
# any checkpoint (last.pt or step_*.pt): pretrain --resume takes the newest intact one
if compgen -G "$RUN_DIR/checkpoints/*.pt" >/dev/null; then
    resume=(--resume) && echo "resuming from the newest intact checkpoint in $RUN_DIR/checkpoints"
fi

echo "== pre-training AI-MoCo-v3 (Prompt-ViT-B/16) on $GPUS process(es), $GLOBAL_BATCH images per step: $RUN_DIR"
"$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$GPUS" -m aivision.cli pretrain \
    --config recipes/imagenet_vit_moco_v3.yaml "${resume[@]}" \
    "run_dir=$RUN_DIR" "data.dataset=folder:$IMAGENET_ROOT/train" "train.batch_size=$((GLOBAL_BATCH / GPUS))" \
    "${init[@]}" "$@"

echo "== exporting the encoder: $RUN_DIR/encoder.pt"
"$PYTHON" -m aivision.cli export --checkpoint "$RUN_DIR/checkpoints/last.pt" --out "$RUN_DIR/encoder.pt"
echo "done: $RUN_DIR"
