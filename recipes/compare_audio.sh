#!/usr/bin/env bash
# AI-SimCLR against its baselines (SimCLR, frequency-only and time-only SimCLR, LooC, LooC++,
# AugSelf) with one pre-training budget, then few-shot and linear-probe accuracy of every
# model on every task: the built-in synthetic tasks (family, pitch, onset, duration,
# loudness, noise) and each real dataset whose path is set. Writes results.json,
# comparison.md (tables with 95 % intervals, average, mean rank; learned descriptors) and
# comparison.png to OUT. Finished models are reused, an interrupted one is resumed.
#
# Environment (all optional):
#   OUT           output directory (default runs/compare_audio)
#   CONFIG        base pre-training YAML shared by every model (default
#                 aiaudio/configs/quickstart.yaml: synthetic audio, width-16 ResNet18, CPU-sized)
#   MODELS        models to compare, space- or comma-separated (default: all seven)
#   STEPS, BATCH  budget of every model: train.steps and train.batch_size (default: CONFIG's,
#                 600 x 64 for the quickstart config: 3-8 min per model, about 40 min for
#                 all seven on a 2-core CPU; STEPS=150 takes about 11 min in all)
#   SEED          pre-training seed of every model (default: CONFIG's)
#   EPISODES      few-shot test episodes per task and model (default 100)
#   SYNTHETIC     0 to skip the synthetic tasks (real datasets only)
#   DEVICE        device of the evaluation: auto (default), cpu or cuda
#   PYTHON        interpreter (default: the project's .venv, created by scripts/env.sh)
#   ESC50_ROOT, NSYNTH_ROOT, VOXCELEB_ROOT, FSDKAGGLE_ROOT
#                 real datasets to evaluate on (each optional), with optional MetaAudio
#                 class-split pickles ESC50_SPLIT, NSYNTH_SPLIT, VOXCELEB_SPLIT, FSDKAGGLE_SPLIT
#   AUDIO_CACHE   optional directory for their decoded 16 kHz clips
# Extra arguments go to `aiaudio compare`: flags (e.g. --probe-epochs 30) or config overrides
# applied to every model (a.b=value, e.g. encoder.kwargs.width=32).
#
#   bash recipes/compare_audio.sh                                   # synthetic tasks, CPU
#   STEPS=150 MODELS="ai_simclr simclr looc" bash recipes/compare_audio.sh
#   ESC50_ROOT=/data/ESC-50 NSYNTH_ROOT=/data/nsynth bash recipes/compare_audio.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

fail() { echo "compare_audio.sh: $*" >&2; exit 2; }

if [[ -z "${PYTHON:-}" ]]; then
    PYTHON="$(bash "$REPO/scripts/env.sh")"
fi
OUT="${OUT:-runs/compare_audio}"
CONFIG="${CONFIG:-aiaudio/configs/quickstart.yaml}"
[[ -f "$CONFIG" ]] || fail "CONFIG=$CONFIG: no such file"
DEVICE="${DEVICE:-auto}"
[[ "$DEVICE" =~ ^(auto|cpu|cuda)$ ]] || fail "DEVICE must be auto, cpu or cuda, got '$DEVICE'"

args=(--out "$OUT" --config "$CONFIG" --device "$DEVICE")
if [[ -n "${MODELS:-}" ]]; then
    read -r -a models <<< "${MODELS//,/ }"
    args+=(--models "${models[@]}")
fi
if [[ -n "${EPISODES:-}" ]]; then
    [[ "$EPISODES" =~ ^[1-9][0-9]*$ ]] || fail "EPISODES must be a positive integer, got '$EPISODES'"
    args+=(--episodes "$EPISODES")
fi
case "${SYNTHETIC:-1}" in
    1) ;;
    0) args+=(--no-synthetic) ;;
    *) fail "SYNTHETIC must be 0 or 1, got '$SYNTHETIC'" ;;
esac
[[ -n "${AUDIO_CACHE:-}" ]] && args+=(--cache "$AUDIO_CACHE")

datasets=0
for name in esc50 nsynth voxceleb fsdkaggle; do
    upper="${name^^}"
    root_var="${upper}_ROOT"
    split_var="${upper}_SPLIT"
    root="${!root_var:-}"
    [[ -n "$root" ]] || continue
    [[ -d "$root" ]] || fail "$root_var=$root: no such folder"
    args+=(--dataset "$name:$root")
    if [[ -n "${!split_var:-}" ]]; then
        [[ -f "${!split_var}" ]] || fail "$split_var=${!split_var}: no such file"
        args+=(--split-file "$name=${!split_var}")
    fi
    datasets=$((datasets + 1))
done
if [[ "${SYNTHETIC:-1}" == 0 && "$datasets" -eq 0 ]]; then
    fail "SYNTHETIC=0 and no dataset path set: set ESC50_ROOT, NSYNTH_ROOT, VOXCELEB_ROOT or FSDKAGGLE_ROOT"
fi

overrides=()
for knob in STEPS BATCH SEED; do
    value="${!knob:-}"
    [[ -n "$value" ]] || continue
    [[ "$value" =~ ^[0-9]+$ ]] || fail "$knob must be a non-negative integer, got '$value'"
    case "$knob" in
        STEPS) overrides+=("train.steps=$value") ;;
        BATCH) overrides+=("train.batch_size=$value") ;;
        SEED) overrides+=("seed=$value") ;;
    esac
done

echo "== aiaudio compare: $OUT (config $CONFIG, ${datasets} real dataset(s))"
exec "$PYTHON" -m aiaudio.cli compare "${args[@]}" "$@" "${overrides[@]}"
