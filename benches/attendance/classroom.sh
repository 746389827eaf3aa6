#!/usr/bin/env bash
# issue 11's benchmark: what classroom presence costs in the running daemon.
#
# One classroom camera analysed at 1 fps, one 1280x720 frame of 30 faces (30 faces-dev photos
# tiled 6 x 5 with ffmpeg's xstack, temporal noise so that frames differ as a live camera's do),
# every face detected on the full frame, then liveness and embedding of each (identification
# against a roster is a dot product per template, not measured): the daemon's CPU with
# `analyze = "classroom"` minus the same daemon with `analyze = "off"`, as a share of one core,
# beside the Python reference (benches/attendance/pyentrance.py at 1 fps: same models, same
# FTZ/DAZ flags) on the same video. From the daemon's per-model counters (analysis.json): the
# time of one frame with 80 faces (detection + 80 x per-face cost), which bounds how often
# every face of an 80-face classroom can be looked at, i.e. how short a spot-check window one
# worker can serve.
#
#   benches/attendance/classroom.sh [SECONDS]      (default 30 s per run)
#
# Needs target/release/classproof, the models (CLASSPROOF_MODELS_DIR), ../shared/faces-dev, and
# the Python venv of benches/vision/compare.sh (created here the same way if missing).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
seconds=${1:-30}
# shellcheck source=benches/attendance/common.sh
. benches/attendance/common.sh

# The 30-face frame: 30 photos, each fit into a 212 x 144 tile.
mapfile -t photos < <(ls "$shared"/faces-dev/identities/*/* "$shared"/faces-dev/singletons/*/* | head -30)
[ "${#photos[@]}" -eq 30 ] || { echo "need 30 photos, found ${#photos[@]}" >&2; exit 1; }
inputs=() graph="" stack="" layout=""
for i in $(seq 0 29); do
    inputs+=(-i "${photos[$i]}")
    graph+="[$i:v]scale=212:144:force_original_aspect_ratio=decrease,pad=212:144:(ow-iw)/2:(oh-ih)/2:color=gray,setsar=1,format=yuv420p[t$i];"
    stack+="[t$i]"
    layout+="$(( (i % 6) * 212 ))_$(( (i / 6) * 144 ))|"
done
graph+="${stack}xstack=inputs=30:layout=${layout%|},pad=1280:720[out]"
ffmpeg -loglevel error -y "${inputs[@]}" -filter_complex "$graph" -map "[out]" -frames:v 1 "$work/room.png"
video=$work/room.mp4
ffmpeg -loglevel error -y -loop 1 -t 20 -i "$work/room.png" -vf "fps=10,noise=alls=20:allf=t,format=yuv420p" \
    -c:v libx264 -preset veryfast -g 10 "$video"

ticks=$(getconf CLK_TCK)
cpu_of() { awk -v t="$ticks" '{print ($14 + $15) / t}' "/proc/$1/stat"; }

# run_daemon NAME CONFIG-BODY: runs the daemon for $seconds after a 5 s warm-up; prints the CPU
# seconds and leaves the data dir in $work/NAME.
run_daemon() {
    local name=$1 body=$2 dir=$work/$1
    mkdir -p "$dir"
    printf '[device]\nid = "bench"\ndata_dir = "%s/data"\n[vision]\nmodels_dir = "%s"\nmin_face = 24\n%s\n' \
        "$dir" "$models" "$body" >"$dir/c.toml"
    "$bin" run --config "$dir/c.toml" 2>"$dir/log" &
    local pid=$!
    sleep 5
    local c0 c1
    c0=$(cpu_of $pid)
    sleep "$seconds"
    c1=$(cpu_of $pid)
    kill -TERM $pid
    wait $pid || true
    echo "$c1 - $c0" | bc -l
}

cam() { # extra keys
    printf '[[camera]]\nid = "room"\nurl = "file://%s"\nloop = true\nrealtime = true\n%s\n' "$video" "$1"
}

off_keys='analyze = "off"'
on_keys=$(printf 'analyze = "classroom"\nanalyze_fps = 1')
base=$(run_daemon off "$(cam "$off_keys")")
with=$(run_daemon on "$(cam "$on_keys")")
rust=$(echo "($with - $base) / $seconds" | bc -l)
py_json=$("$venv/bin/python" benches/attendance/pyentrance.py --models "$models" --video "$video" \
    --fps 1 --seconds "$seconds" --ftz-lib "$repo/target/vision-bench-ftz.so")
py=$(echo "$py_json" | "$venv/bin/python" -c "import json,sys; print(json.load(sys.stdin)['core_share'])")
py_faces=$(echo "$py_json" | "$venv/bin/python" -c "import json,sys; d=json.load(sys.stdin); print(round(d['faces']/max(d['frames_analysed'],1),1))")
printf '%-34s %10s %10s %10s\n' "classroom camera, 1 fps" "classproof" "python" "ratio"
printf '%-34s %9.1f%% %9.1f%% %10.2f\n' "30 faces (python found $py_faces/frame)" \
    "$(echo "$rust * 100" | bc -l)" "$(echo "$py * 100" | bc -l)" "$(echo "$rust / $py" | bc -l)"
"$venv/bin/python" - "$work/on/data/analysis.json" "$py_faces" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["cameras"][0]
n = max(c["frames_analysed"], 1)
faces = max(float(sys.argv[2]), 1.0)  # faces per frame (the same detector, the same frame)
detect = c["detect_seconds"] / n
per_face = (c["liveness_seconds"] + c["embed_seconds"]) / n / faces
t80 = detect + 80 * per_face
print(f"per frame: detect {detect*1000:.0f} ms, per face (liveness + embed) {per_face*1000:.1f} ms; "
      f"frames analysed {c['frames_analysed']}, dropped {c['frames_dropped']}")
print(f"80 faces: {t80:.2f} s of one core per frame: one worker looks at every face of an "
      f"80-face classroom every {t80:.1f} s at best, so a spot_check_window shorter than ~{2*t80:.0f} s "
      f"risks a miss per camera")
PY
