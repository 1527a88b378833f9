#!/usr/bin/env bash
# The GPU timing check (tools/gpu_check.py) on a machine lent a GPU, from the repository root:
#   bash tools/gpu_check.sh OUT [gpu_check arguments]      (OUT defaults to $OUT)
# The device has torch, transformers and most of what the lab needs, but not trl or datasets: the
# wheels under .whl/ (carried along; ignored by git) add them and what they need, at this venv's
# versions, into /tmp/site, which PYTHONPATH puts first. Nothing is downloaded. The wheels are made here,
# from the repository root, at the versions `python -m pip list` shows (all four are pure Python):
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 -d .whl trl==V datasets==V dill==V multiprocess==V
# datasets also wants huggingface_hub >= 1.31 and fsspec <= 2026.9.0; those come from the device as they are
# (shipping hub would shadow the one its transformers was installed with); the environment stage records
# every library's version and whether it imports.
set -euo pipefail
out=${1:-${OUT:?give an output folder or set OUT}}
shift $(( $# > 0 ? 1 : 0 ))
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
python3 -m tools.gpu_check --out "$out" "$@" 2>&1 | tee -a "$out/console.log"
