# Sourced by entrance.sh and classroom.sh (with $repo set and the working directory there):
# the inputs, a scratch dir removed on exit, and the Python reference of
# benches/vision/compare.sh (its venv, created the same way if missing, and the FTZ/DAZ helper),
# one thread each.
models=${CLASSPROOF_MODELS_DIR:-/usr/local/share/classproof/models}
shared=${CLASSPROOF_SHARED:-$repo/../shared}
venv=${VISION_BENCH_VENV:-$repo/target/vision-bench-venv}
bin=$repo/target/release/classproof
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet onnxruntime==1.31.1 numpy opencv-python-headless onnx
cc -O2 -shared -fPIC -o "$repo/target/vision-bench-ftz.so" benches/vision/ftz.c
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
