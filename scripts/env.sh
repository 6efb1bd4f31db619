#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install the pinned
# requirements plus this package (editable). Re-installs only when requirements.txt or
# setup.py changed since the last install. Source it or run it; prints the python path.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${AI_VENV:-$root/.venv}"
python_bin="${PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null 2>&1 || python_bin=python3
if ! "$python_bin" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "env.sh: Python 3.11 is required, $python_bin is $("$python_bin" -V 2>&1)" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "env.sh: creating virtual environment $venv" >&2
  "$python_bin" -m venv "$venv"
fi
stamp="$venv/.installed"
want="$(cat "$root/requirements.txt" "$root/setup.py" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "env.sh: installing requirements into $venv (first time: several minutes)" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet -r "$root/requirements.txt" >&2
  "$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$root" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
