#!/usr/bin/python3
"""Steady-state CPU of the recorder against the reference, on the same RTSP stream, same run.

Reference: `ffmpeg -rtsp_transport tcp -i URL -c copy -f segment -segment_time 60 …`, one
           process recording N streams (N inputs, N segment outputs).
Ours:      `classproof run` with N cameras (stream copy into fragmented MP4 segments, sha256 on
           the fly, fdatasync every second, SQLite index and evidence log, its jobs).

Both record the same loopback camera (gst-rtsp-server, 640x360 H.264 at 800 kbit/s, 25 fps,
one shared stream) at the same time, for N = 1 and N = 4. After a warm-up (start-up: loading
libraries, opening the database, connecting), the CPU of each whole process (user + system, all
threads) is read from /proc/PID/stat at the start and the end of a window of --window seconds:
the steady state, start-up excluded. The start-up CPU (everything before the window) and the
peak RSS are printed too, and classproof's CPU per thread (/proc/PID/task/*/stat).

Usage: benches/recorder_vs_ffmpeg.py [--window 40] [--warmup 10] [--rounds 1] [--cameras 1,4]
                                     [--binary target/release/classproof] [--session]
--session gives classproof a daily session whose class hours cover the whole day, so that the
class-hour judge is live (stepping every 250 ms) during the window.
Needs: ffmpeg, python3-gi with gst-rtsp-server (deploy/setup.sh installs them).
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HZ = os.sysconf("SC_CLK_TCK")


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
        p.wait()
        sys.exit(f"the RTSP camera did not start (exit {p.returncode}); its error is above")
    return p


def cpu_s(pid):
    """utime + stime of the whole process (all threads, live and exited), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def threads_cpu(pid):
    """{thread name: CPU s} of the live threads."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / HZ
    return out


def classproof_config(work, urls, session):
    data = os.path.join(work, "data")
    cams = "".join(
        f'[[camera]]\nid = "cam{i}"\nurl = "{u}"\nsegment = "60s"\n' for i, u in enumerate(urls))
    if session:
        # A class hour running all the time (the demo's session): the judge is live throughout.
        ids = ", ".join(f'"cam{i}"' for i in range(len(urls)))
        cams += ('[rules]\nprofile = "henan"\n\n[[session]]\nid = "allday"\nclass_id = "c1"\n'
                 f'kind = "practical"\ncameras = [{ids}]\nstart = "00:00"\nclass_hours = 24\n'
                 'class_hour = "60m"\nbreak = "0s"\n')
    path = os.path.join(work, "classproof.toml")
    with open(path, "w") as f:
        f.write(f'[device]\nid = "bench"\ndata_dir = "{data}"\n\n[vision]\nenabled = false\n\n{cams}')
    return path


def ffmpeg_cmd(work, urls):
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error"]
    for u in urls:
        cmd += ["-rtsp_transport", "tcp", "-i", u]
    for i in range(len(urls)):
        os.makedirs(os.path.join(work, f"ffmpeg{i}"))
        cmd += ["-map", f"{i}:v", "-c", "copy", "-f", "segment", "-segment_time", "60",
                "-reset_timestamps", "1", os.path.join(work, f"ffmpeg{i}", "out%03d.mp4")]
    return cmd


def stop(p, sig):
    """Stops p with sig; its peak RSS in MB."""
    p.send_signal(sig)
    try:
        _, _, ru = os.wait4(p.pid, 0)
    except ChildProcessError:
        return float("nan")
    return ru.ru_maxrss / 1024.0


def one_round(binary, url, n, warmup, window, session):
    with tempfile.TemporaryDirectory() as work:
        urls = [url] * n
        ff = subprocess.Popen(ffmpeg_cmd(work, urls), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cp = subprocess.Popen([binary, "run", "--config", classproof_config(work, urls, session)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        time.sleep(warmup)
        for p, what in [(ff, "ffmpeg"), (cp, "classproof")]:
            if p.poll() is not None:
                sys.exit(f"{what} exited during the warm-up (status {p.returncode})")
        ff0, cp0, th0 = cpu_s(ff.pid), cpu_s(cp.pid), threads_cpu(cp.pid)
        time.sleep(window)
        ff1, cp1, th1 = cpu_s(ff.pid), cpu_s(cp.pid), threads_cpu(cp.pid)
        ff_rss = stop(ff, signal.SIGINT)
        cp_rss = stop(cp, signal.SIGTERM)
        segs = sum(len(files) for _, _, files in os.walk(os.path.join(work, "data", "video")))
        if segs == 0:
            sys.exit("classproof recorded nothing: check the camera")
    threads = {k: v - th0.get(k, 0.0) for k, v in th1.items()}
    return {
        "ff": ff1 - ff0, "cp": cp1 - cp0, "ff_start": ff0, "cp_start": cp0,
        "ff_rss": ff_rss, "cp_rss": cp_rss, "threads": threads,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--window", type=int, default=40, help="seconds measured, after the warm-up")
    ap.add_argument("--warmup", type=int, default=10, help="seconds after start not measured")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--cameras", default="1,4", help="camera counts, comma-separated")
    ap.add_argument("--binary", default=os.path.join(REPO, "target/release/classproof"))
    ap.add_argument("--bitrate", type=int, default=800)
    ap.add_argument("--session", action="store_true",
                    help="give classproof a class hour that runs all the time (the judge is live)")
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        sys.exit(f"{args.binary} not found: cargo build --release first")
    counts = [int(c) for c in args.cameras.split(",")]

    port = free_port()
    cam = start_camera(port, args.bitrate)
    url = f"rtsp://127.0.0.1:{port}/cam"
    results = {n: [] for n in counts}
    try:
        for r in range(args.rounds):
            for n in counts:
                res = one_round(args.binary, url, n, args.warmup, args.window, args.session)
                results[n].append(res)
                print(f"round {r + 1}, {n} camera(s): ffmpeg {res['ff']:.2f} s, classproof "
                      f"{res['cp']:.2f} s, ratio {res['cp'] / max(res['ff'], 1e-9):.2f}",
                      file=sys.stderr, flush=True)
    finally:
        cam.terminate()
        cam.wait()

    w = args.window
    print(f"640x360 H.264 at {args.bitrate} kbit/s over RTSP/TCP (one loopback camera, shared); "
          f"both recorders at once; CPU = user+system of the whole process over {w} s after "
          f"a {args.warmup} s warm-up; {args.rounds} round(s), median [min-max]"
          + ("; classproof judges a live class hour throughout" if args.session else ""))
    print(f"{'cameras':>7}  {'ffmpeg CPU s':>14}  {'classproof CPU s':>18}  {'ratio':>16}  "
          f"{'start-up CPU s ff/cp':>20}  {'peak RSS MB ff/cp':>17}")
    for n in counts:
        rs = results[n]
        ff = [x["ff"] for x in rs]
        cp = [x["cp"] for x in rs]
        ratio = [x["cp"] / max(x["ff"], 1e-9) for x in rs]

        def show(v, width, fmt="{:.2f}"):
            text = fmt.format(statistics.median(v))
            if len(v) > 1:
                text += " [" + fmt.format(min(v)) + "-" + fmt.format(max(v)) + "]"
            return f"{text:>{width}}"

        start = f"{statistics.median(x['ff_start'] for x in rs):.2f}/" \
                f"{statistics.median(x['cp_start'] for x in rs):.2f}"
        rss = f"{max(x['ff_rss'] for x in rs):.0f}/{max(x['cp_rss'] for x in rs):.0f}"
        print(f"{n:>7}  {show(ff, 14)}  {show(cp, 18)}  {show(ratio, 16)}  {start:>20}  {rss:>17}")
    print("classproof CPU per thread in the window (s, median):")
    for n in counts:
        names = sorted({k for x in results[n] for k in x["threads"]})
        parts = [f"{k} {statistics.median(x['threads'].get(k, 0.0) for x in results[n]):.2f}"
                 for k in names]
        print(f"  {n} camera(s): " + ", ".join(parts))
    print("target: ratio <= 1.0 with 1 camera (DESIGN.md)")


if __name__ == "__main__":
    main()
