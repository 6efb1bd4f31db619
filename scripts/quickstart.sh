#!/usr/bin/env bash
# The quickstart: build a Hyper-ResNet18 for the seven audio augmentations and show how
# its features and kernels change with the invariance descriptor. Extra arguments go to
# `aiaudio demo` (see `aiaudio demo --help`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$(bash "$root/scripts/env.sh")"
cd "$root"
exec "$python" -m aiaudio.cli demo "$@"
