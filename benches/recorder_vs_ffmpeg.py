#!/usr/bin/python3
"""Whole-process benchmark of the recorder against the reference, on the same RTSP stream.

Reference: `ffmpeg -rtsp_transport tcp -i URL -c copy -f segment -segment_time 60 …`.
Ours:      `classproof run` with the same camera (stream copy into fragmented MP4 segments,
           sha256 on the fly, fdatasync every second, SQLite index and evidence log).

Both run for the same wall time against the same loopback camera (gst-rtsp-server, 640x360
H.264 at 800 kbit/s, 25 fps). CPU is user+system time from wait4(2); memory is peak RSS. Then
classproof records 4 such cameras at once for its peak RSS.

Usage: benches/recorder_vs_ffmpeg.py [--seconds 60] [--binary target/release/classproof]
Needs: ffmpeg, python3-gi with gst-rtsp-server (deploy/setup.sh test installs them).
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_camera(port, bitrate):
    p = subprocess.Popen(
        ["/usr/bin/python3", os.path.join(REPO, "tests/support/rtsp_server.py"),
         "--port", str(port), "--bitrate", str(bitrate)],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    if not line.startswith("READY"):
        sys.exit(f"RTSP server did not start: {line!r}")
    return p


def run_for(cmd, seconds, stop_signal, cwd=None):
    """Runs cmd for `seconds`, stops it with `stop_signal`, returns (cpu_s, peak_rss_mb)."""
    p = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    p.send_signal(stop_signal)
    _, status, ru = os.wait4(p.pid, 0)
    if os.WEXITSTATUS(status) not in (0, 255) and not os.WIFSIGNALED(status):
        print(f"warning: {cmd[0]} exited with status {status}", file=sys.stderr)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0


def classproof_config(work, urls):
    data = os.path.join(work, "data")
    cams = "".join(
        f'[[camera]]\nid = "cam{i}"\nurl = "{u}"\nsegment = "60s"\n' for i, u in enumerate(urls))
    path = os.path.join(work, "classproof.toml")
    with open(path, "w") as f:
        f.write(f'[device]\nid = "bench"\ndata_dir = "{data}"\n\n[vision]\nenabled = false\n\n{cams}')
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--binary", default=os.path.join(REPO, "target/release/classproof"))
    ap.add_argument("--bitrate", type=int, default=800)
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: cargo build --release first")

    port = free_port()
    cam = start_camera(port, args.bitrate)
    url = f"rtsp://127.0.0.1:{port}/cam"
    try:
        with tempfile.TemporaryDirectory() as work:
            os.makedirs(os.path.join(work, "ffmpeg"))
            ff_cpu, ff_rss = run_for(
                ["ffmpeg", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url, "-c", "copy",
                 "-f", "segment", "-segment_time", "60", "-reset_timestamps", "1",
                 os.path.join(work, "ffmpeg", "out%03d.mp4")],
                args.seconds, signal.SIGINT)
            cfg = classproof_config(work, [url])
            cp_cpu, cp_rss = run_for([args.binary, "run", "--config", cfg], args.seconds, signal.SIGTERM)
        with tempfile.TemporaryDirectory() as work:
            cfg = classproof_config(work, [url] * 4)
            cp4_cpu, cp4_rss = run_for([args.binary, "run", "--config", cfg],
                                       max(20, args.seconds // 2), signal.SIGTERM)
    finally:
        cam.terminate()
        cam.wait()

    s = args.seconds
    print(f"one 640x360 H.264 camera at {args.bitrate} kbit/s over RTSP/TCP, {s} s each")
    print(f"{'recorder':<44} {'CPU s':>7} {'% core':>7} {'peak RSS MB':>12}")
    print(f"{'ffmpeg -c copy -f segment (reference)':<44} {ff_cpu:7.2f} {100 * ff_cpu / s:7.2f} {ff_rss:12.1f}")
    print(f"{'classproof run':<44} {cp_cpu:7.2f} {100 * cp_cpu / s:7.2f} {cp_rss:12.1f}")
    print(f"CPU ratio classproof / ffmpeg: {cp_cpu / ff_cpu:.2f} (target <= 1.0)")
    print(f"classproof with 4 cameras: peak RSS {cp4_rss:.1f} MB (target < 300 MB), "
          f"CPU {100 * cp4_cpu / max(20, s // 2):.2f} % of one core")


if __name__ == "__main__":
    main()
