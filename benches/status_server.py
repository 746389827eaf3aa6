#!/usr/bin/python3
"""CPU cost of the status server (issue 12), same run, server off against server on.

Two `classproof run` daemons record the same loopback camera (gst-rtsp-server, 640x360 H.264 at
800 kbit/s, 25 fps) at the same time: A with `[status] enabled = false`, B with the server on and
a client that, every second, scrapes /metrics and loads the page as a browser does (/ and the
camera's thumbnail /camera/cam0/still.jpg, decoded at most every 5 s). After a warm-up, the CPU
(user + system) of each process, of B's `status` thread and tokio blocking threads, and of each
camera thread, is read from /proc at the start and the end of a --window seconds window.

Usage: benches/status_server.py [--window 60] [--warmup 10] [--rounds 2]
                                [--binary target/release/classproof]
Needs: python3-gi with gst-rtsp-server (deploy/setup.sh installs it).
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recorder_vs_ffmpeg import REPO, cpu_s, free_port, start_camera, stop, threads_cpu  # noqa: E402


def config(work, name, url, status_port):
    data = os.path.join(work, name)
    status = (f'[status]\nlisten = "127.0.0.1:{status_port}"\n' if status_port
              else '[status]\nenabled = false\n')
    path = os.path.join(work, f"{name}.toml")
    with open(path, "w") as f:
        f.write(f'[device]\nid = "bench-{name}"\ndata_dir = "{data}"\n\n[vision]\nenabled = false\n\n'
                f'{status}\n[[camera]]\nid = "cam0"\nurl = "{url}"\nsegment = "60s"\n')
    return path


def client(port, stop_at, counts):
    base = f"http://127.0.0.1:{port}"
    while time.time() < stop_at:
        t = time.time()
        for path in ["/metrics", "/", "/camera/cam0/still.jpg"]:
            try:
                with urllib.request.urlopen(base + path, timeout=5) as r:
                    r.read()
                    counts[path] = counts.get(path, 0) + 1
            except OSError:
                counts["errors"] = counts.get("errors", 0) + 1
        time.sleep(max(0.0, 1.0 - (time.time() - t)))


def one_round(binary, url, warmup, window):
    with tempfile.TemporaryDirectory() as work:
        port = free_port()
        procs = {
            name: subprocess.Popen([binary, "run", "--config", config(work, name, url, p)],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
            for name, p in [("off", None), ("on", port)]
        }
        counts = {}
        t = threading.Thread(target=client, args=(port, time.time() + warmup + window + 1, counts))
        t.start()
        time.sleep(warmup)
        for name, p in procs.items():
            if p.poll() is not None:
                sys.exit(f"daemon {name} exited during the warm-up (status {p.returncode})")
        c0 = {n: cpu_s(p.pid) for n, p in procs.items()}
        t0 = {n: threads_cpu(p.pid) for n, p in procs.items()}
        counts.clear()
        time.sleep(window)
        c1 = {n: cpu_s(p.pid) for n, p in procs.items()}
        t1 = {n: threads_cpu(p.pid) for n, p in procs.items()}
        served = dict(counts)
        t.join()
        for p in procs.values():
            stop(p, signal.SIGTERM)
    th = {n: {k: v - t0[n].get(k, 0.0) for k, v in t1[n].items()} for n in procs}
    return {
        "total": {n: c1[n] - c0[n] for n in procs},
        "camera": {n: th[n].get("camera-cam0", 0.0) for n in procs},
        "status": th["on"].get("status", 0.0)
        + sum(v for k, v in th["on"].items() if k.startswith("tokio-runtime")),
        "served": served,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--window", type=float, default=60)
    ap.add_argument("--warmup", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--binary", default=os.path.join(REPO, "target/release/classproof"))
    a = ap.parse_args()
    cam_port = free_port()
    cam = start_camera(cam_port, 800)
    url = f"rtsp://127.0.0.1:{cam_port}/cam"
    try:
        print(f"window {a.window:.0f} s, warm-up {a.warmup:.0f} s; CPU as % of one core")
        print(f"{'round':>5}  {'off total':>9}  {'on total':>8}  {'on-off':>7}  {'status thr':>10}  "
              f"{'cam off':>7}  {'cam on':>6}  served")
        for i in range(a.rounds):
            r = one_round(a.binary, url, a.warmup, a.window)
            pct = lambda s: 100.0 * s / a.window  # noqa: E731
            print(f"{i + 1:>5}  {pct(r['total']['off']):>9.2f}  {pct(r['total']['on']):>8.2f}  "
                  f"{pct(r['total']['on'] - r['total']['off']):>7.2f}  {pct(r['status']):>10.2f}  "
                  f"{pct(r['camera']['off']):>7.2f}  {pct(r['camera']['on']):>6.2f}  {r['served']}")
    finally:
        cam.terminate()
        cam.wait()


if __name__ == "__main__":
    main()
