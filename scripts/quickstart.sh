#!/usr/bin/env bash
# The quickstart: pre-train AI-SimCLR and the default SimCLR baseline on the built-in
# synthetic audio (CPU, a few minutes each), then evaluate every synthetic task few-shot and
# print accuracy per task and model with the descriptor each task chose. Outputs go to
# runs/quickstart/ (see README). Extra arguments go to `aiaudio quickstart` (see
# `bash scripts/quickstart.sh --help`), e.g. `--episodes 50 train.steps=300`.
# `bash scripts/quickstart.sh vision [...]` runs the vision quickstart instead (`aivision
# quickstart`: AI-SimCLR vs SimCLR on the built-in synthetic images, runs/quickstart_vision/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$(bash "$root/scripts/env.sh")"
cd "$root"
if [[ "${1:-}" == "vision" ]]; then
    shift
    exec "$python" -m aivision.cli quickstart "$@"
fi
exec "$python" -m aiaudio.cli quickstart "$@"
