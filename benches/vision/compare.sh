#!/usr/bin/env bash
# Compares classproof's face pipeline with the same models run from Python onnxruntime, on the
# same inputs, on this machine: per stage, Rust/Python time ratios (< 1 means classproof is
# faster). Installs what the Python side needs in a venv (target/vision-bench-venv).
#
#   benches/vision/compare.sh [SECONDS_PER_STAGE]
#
# Models: CLASSPROOF_MODELS_DIR (default /usr/local/share/classproof/models); photos: ../shared.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
seconds=${1:-5}
venv=${VISION_BENCH_VENV:-$repo/target/vision-bench-venv}
models=${CLASSPROOF_MODELS_DIR:-/usr/local/share/classproof/models}
shared=${CLASSPROOF_SHARED:-$repo/../shared}

if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv "$venv" # Debian's Python (python3-venv), whatever is first on PATH
fi
"$venv/bin/pip" install --quiet onnxruntime==1.31.1 numpy opencv-python-headless onnx

export CLASSPROOF_MODELS_DIR=$models
# Rust first, then Python, one after the other so they do not compete for the cores.
cargo bench --bench vision -- --warm-up-time 1 --measurement-time "$seconds" >&2
"$venv/bin/python" benches/vision/pybench.py --models "$models" --shared "$shared" \
    --seconds "$seconds" --json target/vision-bench-python.json --criterion target/criterion
