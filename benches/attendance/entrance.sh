#!/usr/bin/env bash
# issue 9's benchmark: what face check-in costs in the running daemon.
#
# 1. CPU of one entrance camera analysed at 5 fps, as a share of one core, with 1 and 3 faces in
#    view (faces-dev videos/liveportrait_d9.mp4, and the same video tiled three times side by
#    side), measured as the daemon's CPU with `analyze = "entrance"` minus the same daemon with
#    `analyze = "off"` (recording only), beside the Python reference on the same frames
#    (benches/attendance/pyentrance.py: same models, same FTZ/DAZ flags); frames dropped.
# 2. The daemon's peak RSS (VmHWM) with 4 cameras, 2 of them analysed (target < 300 MB).
#
#   benches/attendance/entrance.sh [SECONDS]      (default 20 s per run)
#
# Needs target/release/classproof, the models (CLASSPROOF_MODELS_DIR), ../shared/faces-dev, and
# the Python venv of benches/vision/compare.sh (created here the same way if missing).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
seconds=${1:-20}
# shellcheck source=benches/attendance/common.sh
. benches/attendance/common.sh

one=$work/one.mp4
three=$work/three.mp4
cp "$shared/faces-dev/videos/liveportrait_d9.mp4" "$one"
ffmpeg -loglevel error -y -i "$one" -filter_complex "[0:v][0:v][0:v]hstack=inputs=3,scale=1536:480" \
    -c:v libx264 -preset veryfast -g 30 -pix_fmt yuv420p "$three"

ticks=$(getconf CLK_TCK)
# CPU seconds (user + system) of a process so far.
cpu_of() { awk -v t="$ticks" '{print ($14 + $15) / t}' "/proc/$1/stat"; }

# run_daemon NAME CONFIG-BODY: runs the daemon for $seconds after a 5 s warm-up; prints
# "cpu_s peak_rss_kb" and leaves the data dir in $work/NAME.
run_daemon() {
    local name=$1 body=$2 dir=$work/$1
    mkdir -p "$dir"
    printf '[device]\nid = "bench"\ndata_dir = "%s/data"\n[vision]\nmodels_dir = "%s"\n%s\n' \
        "$dir" "$models" "$body" >"$dir/c.toml"
    "$bin" run --config "$dir/c.toml" 2>"$dir/log" &
    local pid=$!
    sleep 5
    local c0
    c0=$(cpu_of $pid)
    sleep "$seconds"
    local c1 rss
    c1=$(cpu_of $pid)
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    kill -TERM $pid
    wait $pid || true
    echo "$(echo "$c1 - $c0" | bc -l) $rss"
}

cam() { # id file analyze
    printf '[[camera]]\nid = "%s"\nurl = "file://%s"\nloop = true\nrealtime = true\nanalyze = "%s"\n' "$1" "$2" "$3"
}

printf '%-28s %10s %10s %10s %10s\n' "entrance camera, 5 fps" "classproof" "python" "ratio" "dropped"
for faces in one three; do
    video=$work/$faces.mp4
    read -r base _ < <(run_daemon "off-$faces" "$(cam door "$video" off)")
    read -r with _ < <(run_daemon "on-$faces" "$(cam door "$video" entrance)")
    rust=$(echo "($with - $base) / $seconds" | bc -l)
    dropped=$("$venv/bin/python" -c "import json,sys; print(sum(c['frames_dropped'] for c in json.load(open(sys.argv[1]))['cameras']))" "$work/on-$faces/data/analysis.json")
    py=$("$venv/bin/python" benches/attendance/pyentrance.py --models "$models" --video "$video" \
        --fps 5 --seconds "$seconds" --ftz-lib "$repo/target/vision-bench-ftz.so" |
        "$venv/bin/python" -c "import json,sys; print(json.load(sys.stdin)['core_share'])")
    printf '%-28s %9.1f%% %9.1f%% %10.2f %10s\n' "$faces face(s)" \
        "$(echo "$rust * 100" | bc -l)" "$(echo "$py * 100" | bc -l)" "$(echo "$rust / $py" | bc -l)" "$dropped"
done

# 4 cameras, 2 analysed: peak RSS.
body="$(cam a "$one" entrance)
$(cam b "$three" entrance)
$(cam c "$one" off)
$(cam d "$three" off)"
read -r _ rss < <(run_daemon four "$body")
printf 'daemon peak RSS, 4 cameras (2 analysed): %d MB (target < 300 MB)\n' $((rss / 1024))
