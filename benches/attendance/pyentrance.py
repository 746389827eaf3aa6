#!/usr/bin/env python3
"""The Python reference for benches/attendance/entrance.sh: an entrance camera analysed at a given
rate, the way a Python implementation would do it with the same models (benches/vision/pybench.py's
Pipeline: onnxruntime 1.31.1, one thread per session, FTZ/DAZ through benches/vision/ftz.c), on the
same video: every frame decoded (cv2.VideoCapture, like the daemon's sampler on a stream whose
keyframes are too rare), one frame per 1/fps kept and analysed (detect, align, liveness, embed).

Prints one JSON object: the CPU seconds used (process time) per second of video, i.e. the share
of one core the camera costs, and the frames analysed.
"""
import argparse
import ctypes
import json
import os
import sys
import time

import cv2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "vision"))
import pybench  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("--video", required=True)
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds of video (looped)")
    ap.add_argument("--ftz-lib")
    a = ap.parse_args()
    if a.ftz_lib:
        pybench.FLUSH_SUBNORMALS = True
        lib = ctypes.CDLL(a.ftz_lib)
        lib.classproof_flush_subnormals()
        assert lib.classproof_subnormals_flushed() == 1
    cv2.setNumThreads(1)
    p = pybench.Pipeline(a.models)
    cap = cv2.VideoCapture(a.video)
    rate = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(a.seconds * rate)
    period = 1.0 / a.fps
    next_t = 0.0
    analysed = faces = 0
    t0 = time.process_time()
    for i in range(total):
        ok, frame = cap.read()
        if not ok:
            cap.release()
            cap = cv2.VideoCapture(a.video)
            ok, frame = cap.read()
        t = i / rate
        if t + 1e-6 < next_t:
            continue
        next_t += period
        faces += len(p.analyse(frame))
        analysed += 1
    cpu = time.process_time() - t0
    print(json.dumps({"cpu_s": cpu, "video_s": a.seconds, "core_share": cpu / a.seconds,
                      "frames_analysed": analysed, "faces": faces}))


if __name__ == "__main__":
    main()
