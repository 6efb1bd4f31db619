#!/usr/bin/env bash
# Download the wheels that bench/gpu_check.sh installs on a GPU machine without package
# access whose Python 3.12 has PyTorch, timm, numpy/scipy/scikit-learn/numba, yaml, tqdm,
# matplotlib and tensorboard but not the audio libraries. About 2.5 MB into .device_wheels/
# (git-ignored); copy that folder beside the checkout on the GPU machine.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$(bash "$root/scripts/env.sh")"
dest="$root/.device_wheels"
mkdir -p "$dest"
"$python" -m pip download --quiet --no-deps --only-binary=:all: --implementation cp --python-version 3.12 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    -d "$dest" \
    soundfile==0.14.0 cffi pycparser soxr==0.5.0.post1 librosa==0.11.0 audioread decorator pooch platformdirs \
    audiomentations==0.43.1 numpy-minmax numpy-rms python-stretch
ls "$dest"
