#!/usr/bin/env bash
# AI-SimCLR on FSD50K: Hyper-ResNet18 on log-mels, the paper's K=7 audio space, then the
# MetaAudio 5-way 1-shot evaluation on every dataset whose path is set.
#
# Environment:
#   FSD50K_ROOT   (required) folder holding FSD50K.dev_audio/ and FSD50K.ground_truth/
#   GPUS          processes (GPUs) on this node; default: nvidia-smi's GPU count, else 1
#   DEVICE        device of the few-shot evaluation (default: cuda when a GPU is seen, else cpu)
#   GLOBAL_BATCH  clips per step over all processes (default 256, CLAR's); each process
#                 gets GLOBAL_BATCH / GPUS
#   RUN_DIR       run directory (default runs/fsd50k_simclr); an existing last checkpoint
#                 there is resumed
#   FSD50K_CACHE  optional directory for decoded 16 kHz clips (about 18 GB for the dev set)
#   PYTHON        interpreter (default: .venv/bin/python when present, else python3)
#   ESC50_ROOT, NSYNTH_ROOT, VOXCELEB_ROOT, FSDKAGGLE_ROOT
#                 MetaAudio datasets for the few-shot evaluation (each optional), with
#                 optional MetaAudio class-split pickles ESC50_SPLIT, NSYNTH_SPLIT,
#                 VOXCELEB_SPLIT, FSDKAGGLE_SPLIT
# Extra arguments are config overrides (a.b=value), e.g. train.steps=2000.
#
#   FSD50K_ROOT=/data/FSD50K ESC50_ROOT=/data/ESC-50 bash recipes/fsd50k_simclr.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

fail() { echo "fsd50k_simclr.sh: $*" >&2; exit 2; }

if [[ -z "${FSD50K_ROOT:-}" ]]; then
    fail "FSD50K_ROOT is not set: point it at the FSD50K folder holding FSD50K.dev_audio/ and FSD50K.ground_truth/ (Zenodo record 4060432)"
fi
for part in FSD50K.dev_audio FSD50K.ground_truth/dev.csv FSD50K.ground_truth/vocabulary.csv; do
    [[ -e "$FSD50K_ROOT/$part" ]] || fail "FSD50K_ROOT=$FSD50K_ROOT has no $part (expected the FSD50K layout: FSD50K.dev_audio/, FSD50K.ground_truth/{dev.csv,vocabulary.csv})"
done

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
detected=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
[[ "$detected" =~ ^[1-9][0-9]*$ ]] || detected=0
GPUS="${GPUS:-$((detected > 0 ? detected : 1))}"
if [[ -z "${DEVICE:-}" ]]; then
    if [[ "$detected" -gt 0 ]]; then DEVICE=cuda; else DEVICE=cpu; fi
fi
[[ "$GPUS" =~ ^[1-9][0-9]*$ ]] || fail "GPUS must be a positive integer, got '$GPUS'"
GLOBAL_BATCH="${GLOBAL_BATCH:-256}"
[[ "$GLOBAL_BATCH" =~ ^[1-9][0-9]*$ && $((GLOBAL_BATCH % GPUS)) -eq 0 ]] \
    || fail "GLOBAL_BATCH ($GLOBAL_BATCH) must be a positive multiple of GPUS ($GPUS)"
RUN_DIR="${RUN_DIR:-runs/fsd50k_simclr}"

overrides=("run_dir=$RUN_DIR" "data.dataset=fsd50k:$FSD50K_ROOT?split=dev"
           "train.batch_size=$((GLOBAL_BATCH / GPUS))")
[[ -n "${FSD50K_CACHE:-}" ]] && overrides+=("data.cache=$FSD50K_CACHE")
resume=()
# any checkpoint (last.pt or step_*.pt): pretrain --resume takes the newest intact one
if compgen -G "$RUN_DIR/checkpoints/*.pt" >/dev/null; then
    resume=(--resume) && echo "resuming from the newest intact checkpoint in $RUN_DIR/checkpoints"
fi

echo "== pre-training AI-SimCLR on $GPUS process(es), $GLOBAL_BATCH clips per step: $RUN_DIR"
# python -m torch.distributed.run is torchrun, run with the chosen interpreter.
"$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$GPUS" -m aiaudio.cli pretrain \
    --config recipes/fsd50k_simclr.yaml "${resume[@]}" "${overrides[@]}" "$@"

echo "== exporting the encoder: $RUN_DIR/encoder.pt"
"$PYTHON" -m aiaudio.cli export --checkpoint "$RUN_DIR/checkpoints/last.pt" --out "$RUN_DIR/encoder.pt"

# MetaAudio few-shot evaluation: 5-way 1-shot, 15 queries, 600 episodes, descriptor learned
# per episode; one JSON per dataset.
evaluated=0
for name in esc50 nsynth voxceleb fsdkaggle; do
    upper="${name^^}"
    root_var="${upper}_ROOT"
    split_var="${upper}_SPLIT"
    root="${!root_var:-}"
    [[ -n "$root" ]] || continue
    split_args=()
    [[ -n "${!split_var:-}" ]] && split_args=(--split-file "${!split_var}")
    echo "== few-shot evaluation on $name ($root)"
    "$PYTHON" -m aiaudio.cli fewshot --encoder "$RUN_DIR/encoder.pt" --dataset "$name:$root" \
        "${split_args[@]}" --split test --ways 5 --shots 1 --queries 15 --episodes 600 \
        --descriptor episode --device "$DEVICE" --json "$RUN_DIR/fewshot_$name.json"
    evaluated=$((evaluated + 1))
done
if [[ "$evaluated" -eq 0 ]]; then
    echo "few-shot evaluation skipped: set ESC50_ROOT, NSYNTH_ROOT, VOXCELEB_ROOT or FSDKAGGLE_ROOT (optionally *_SPLIT) to run it"
fi
echo "done: $RUN_DIR"
