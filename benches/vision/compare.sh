#!/usr/bin/env bash
# Compares classproof's face pipeline with the same models run from Python onnxruntime, on the
# same inputs, on this machine: per stage, Rust/Python time ratios (< 1 means classproof is
# faster). Installs what the Python side needs in a venv (target/vision-bench-venv) and builds
# benches/vision/ftz.c with the C compiler (cc) so that the Python side runs with FTZ/DAZ set,
# as classproof does (src/vision/fpu.rs). Set VISION_BENCH_FTZ=0 to run
# the Python side without the flags (to see what they are worth; classproof always sets them).
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

ftz_args=()
if [ "${VISION_BENCH_FTZ:-1}" != 0 ]; then
    mkdir -p "$repo/target"
    cc -O2 -shared -fPIC -o "$repo/target/vision-bench-ftz.so" benches/vision/ftz.c
    ftz_args=(--ftz-lib "$repo/target/vision-bench-ftz.so")
fi

export CLASSPROOF_MODELS_DIR=$models
# One core on both sides: numpy's OpenBLAS would otherwise spread the 1:N search over threads
# that spin against each other on a loaded machine (measured: 460 µs instead of 28 µs).
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
# Rust first, then Python, one after the other so they do not compete for the cores.
cargo bench --bench vision -- --warm-up-time 1 --measurement-time "$seconds" >&2
"$venv/bin/python" benches/vision/pybench.py --models "$models" --shared "$shared" \
    --seconds "$seconds" --json target/vision-bench-python.json --criterion target/criterion "${ftz_args[@]}"
