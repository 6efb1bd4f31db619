#!/usr/bin/env bash
# Real sound on the CPU: build a corpus of recorded sound from Debian packages, pre-train
# SimCLR and AI-SimCLR on its unlabelled pool with one budget, and compare them (with log-mel
# statistics and an untrained encoder as calibration rows) on four held-out tasks: pitch
# (pitch-sensitive), instrument (timbre, pitch-invariant), speaker (voice) and word (spoken
# phrase across voices). Writes OUT/corpus/ (corpus.json lists every package, licence and
# count), OUT/<model>/ run directories, and OUT/comparison.md, comparison.png, results.json.
# A finished corpus and finished models are reused, an interrupted model is resumed.
#
# Packages (installed with apt-get when missing and the script runs as root, else the script
# prints the command): fluidsynth timgm6mb-soundfont flite festival, the festvox voices below,
# colobot-common-sounds bucklespring-data hedgewars-data. See docs/real_audio.md.
#
# Environment (all optional):
#   OUT        output directory (default runs/real_audio)
#   CORPUS     corpus directory (default OUT/corpus; share one between runs with other settings)
#   CONFIG     pre-training YAML (default recipes/real_audio.yaml)
#   STEPS      train.steps of both models (default: CONFIG's)
#   EPISODES   few-shot test episodes per task and model (default 300)
#   INSTALL    0 to never run apt-get (default 1: install missing packages when root)
#   PYTHON     interpreter (default: the project's .venv, created by scripts/env.sh)
# Extra arguments go to `aiaudio compare`: flags or config overrides (a.b=value).
#
#   bash recipes/real_audio.sh
#   STEPS=1000 EPISODES=100 bash recipes/real_audio.sh          # a quicker look
#   OUT=runs/real_audio_bands2 CORPUS=runs/real_audio/corpus bash recipes/real_audio.sh encoder.kwargs.bands=2
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

fail() { echo "real_audio.sh: $*" >&2; exit 2; }

PACKAGES=(fluidsynth timgm6mb-soundfont flite festival colobot-common-sounds bucklespring-data hedgewars-data
          festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-ca-ona-hts festvox-czech-dita
          festvox-czech-krb festvox-czech-machac festvox-czech-ph festvox-suopuhe-lj festvox-suopuhe-mv
          festvox-italp16k festvox-itapc16k festvox-ru)
missing=()
for package in "${PACKAGES[@]}"; do
    dpkg -s "$package" > /dev/null 2>&1 || missing+=("$package")
done
if (( ${#missing[@]} )); then
    command="apt-get install -y --no-install-recommends ${missing[*]}"
    if [[ "${INSTALL:-1}" == 1 && "$(id -u)" == 0 ]] && command -v apt-get > /dev/null; then
        echo "== installing ${#missing[@]} package(s): ${missing[*]}"
        apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive $command > /dev/null || fail "'$command' failed"
    else
        fail "missing Debian packages; install them with: sudo $command"
    fi
fi

if [[ -z "${PYTHON:-}" ]]; then
    PYTHON="$(bash "$REPO/scripts/env.sh")"
fi
OUT="${OUT:-runs/real_audio}"
CONFIG="${CONFIG:-recipes/real_audio.yaml}"
[[ -f "$CONFIG" ]] || fail "CONFIG=$CONFIG: no such file"
EPISODES="${EPISODES:-300}"
[[ "$EPISODES" =~ ^[1-9][0-9]*$ ]] || fail "EPISODES must be a positive integer, got '$EPISODES'"
overrides=()
if [[ -n "${STEPS:-}" ]]; then
    [[ "$STEPS" =~ ^[1-9][0-9]*$ ]] || fail "STEPS must be a positive integer, got '$STEPS'"
    overrides+=("train.steps=$STEPS")
fi

CORPUS="${CORPUS:-$OUT/corpus}"
echo "== corpus: $CORPUS"
"$PYTHON" -m aiaudio.corpus "$CORPUS"

args=(--out "$OUT" --config "$CONFIG" --models simclr ai_simclr --no-synthetic --evaluations fewshot
      --episodes "$EPISODES" --queries 5 --dataset-seconds 1.5 --train-episodes 200 --inner-steps 60)
for task in pitch instrument speaker word; do
    args+=(--dataset "$task=folder:$CORPUS/tasks/$task")
done
echo "== aiaudio compare: $OUT (config $CONFIG)"
exec "$PYTHON" -m aiaudio.cli compare "${args[@]}" "data.dataset=files:$CORPUS/pool" \
    "data.monitor=folder:$CORPUS/monitor" "${overrides[@]}" "$@"
