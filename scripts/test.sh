#!/usr/bin/env bash
# Run the test suite (CPU only) in the project's virtual environment; extra arguments go
# to pytest, e.g. `bash scripts/test.sh -k encoders`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$(bash "$root/scripts/env.sh")"
cd "$root"
exec "$python" -m pytest "$@"
