#!/usr/bin/env bash
# The GPU timing check (training/gpu_check.py) on a machine lent a GPU, from the repository root:
#   bash training/gpu_check.sh OUT [gpu_check arguments]      (OUT defaults to $OUT)
# The device has torch, transformers and most of what the lab needs, but not trl or datasets: the
# wheels under .whl/ (carried along; ignored by git) add them and what they need, at this venv's
# versions, into /tmp/site, which PYTHONPATH puts first. Nothing is downloaded.
set -euo pipefail
out=${1:-${OUT:?give an output folder or set OUT}}
shift $(( $# > 0 ? 1 : 0 ))
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1
python3 -m training.gpu_check --out "$out" "$@" 2>&1 | tee -a "$out/console.log"
