#!/usr/bin/env python3
"""The reference for benches/vision.rs: the same models, on the same inputs, from Python
onnxruntime 1.31.1 (one intra-op and one inter-op thread per session, like classproof's
`vision.threads = 1`), written the way a Python implementation would: numpy decoding,
cv2.dnn.NMSBoxes, cv2.estimateAffinePartial2D + cv2.warpAffine, numpy matrix-vector search.

Prints the mean time per stage and writes them as JSON (keys = the criterion ids of
benches/vision.rs). With --criterion DIR it also reads classproof's criterion results and
prints Rust/Python ratios.

With --ftz-lib (benches/vision/ftz.c built as a shared library; compare.sh does it) the FTZ and
DAZ bits of MXCSR are set on this thread before any session runs, as classproof does on every
thread that runs inference (src/vision/fpu.rs): fr_feature has 8,938 subnormal weights, which
cost a micro-code assist per multiplication otherwise. Sessions then also get onnxruntime's
`session.set_denormal_as_zero`, like classproof's. Without --ftz-lib neither is set.
"""
import ctypes
import argparse
import glob
import json
import os
import time

import cv2
import numpy as np
import onnx
import onnxruntime as ort

TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


FLUSH_SUBNORMALS = False


def session(path_or_bytes):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    if FLUSH_SUBNORMALS:
        so.add_session_config_entry("session.set_denormal_as_zero", "1")
    return ort.InferenceSession(path_or_bytes, so, providers=["CPUExecutionProvider"])


def dynamic_batch(path, dim):
    """fr_feature with a symbolic batch dimension (what classproof's onnx_edit does)."""
    m = onnx.load(path)
    g = m.graph
    g.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    g.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    reshape_shapes = {n.input[1] for n in g.node if n.op_type == "Reshape"}
    for init in g.initializer:
        if init.name in reshape_shapes:
            init.CopyFrom(onnx.numpy_helper.from_array(np.array([-1, dim], dtype=np.int64), init.name))
    return m.SerializeToString()


class Pipeline:
    def __init__(self, models):
        self.det = session(f"{models}/face_detection_yunet_2023mar.onnx")
        self.rec = session(dynamic_batch(f"{models}/fr_feature.onnx", 512))
        self.live = [
            (session(f"{models}/2.7_80x80_MiniFASNetV2.onnx"), 2.7),
            (session(f"{models}/4_0_0_80x80_MiniFASNetV1SE.onnx"), 4.0),
        ]

    def detect(self, frame, score_thr=0.6, nms=0.3):
        h, w = frame.shape[:2]
        s = min(640 / w, 640 / h)
        canvas = np.zeros((640, 640, 3), np.uint8)
        nw, nh = round(w * s), round(h * s)
        canvas[:nh, :nw] = frame if (nw, nh) == (w, h) else cv2.resize(frame, (nw, nh))
        blob = canvas.transpose(2, 0, 1)[None].astype(np.float32)
        out = dict(zip([o.name for o in self.det.get_outputs()], self.det.run(None, {"input": blob})))
        boxes, scores, kps = [], [], []
        for st in (8, 16, 32):
            cols = 640 // st
            cls, obj = out[f"cls_{st}"][0, :, 0], out[f"obj_{st}"][0, :, 0]
            score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
            keep = np.where(score >= score_thr)[0]
            if len(keep) == 0:
                continue
            col, row = (keep % cols).astype(np.float32), (keep // cols).astype(np.float32)
            b = out[f"bbox_{st}"][0, keep]
            cx, cy = (col + b[:, 0]) * st, (row + b[:, 1]) * st
            bw, bh = np.exp(b[:, 2]) * st, np.exp(b[:, 3]) * st
            boxes.append(np.stack([cx - bw / 2, cy - bh / 2, bw, bh], 1))
            k = out[f"kps_{st}"][0, keep].reshape(-1, 5, 2)
            k = np.stack([(col[:, None] + k[:, :, 0]) * st, (row[:, None] + k[:, :, 1]) * st], 2)
            kps.append(k)
            scores.append(score[keep])
        if not boxes:
            return []
        boxes, scores, kps = np.concatenate(boxes), np.concatenate(scores), np.concatenate(kps)
        idx = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), score_thr, nms)
        return [(boxes[i] / s, scores[i], kps[i] / s) for i in np.array(idx).reshape(-1)]

    @staticmethod
    def align(frame, lm):
        m, _ = cv2.estimateAffinePartial2D(lm.astype(np.float32), TEMPLATE, method=cv2.LMEDS)
        return cv2.warpAffine(frame, m, (112, 112))

    def embed(self, crops):
        x = ((np.stack(crops).astype(np.float32) - 127.0) / 128.0).transpose(0, 3, 1, 2)
        e = self.rec.run(None, {"input": np.ascontiguousarray(x)})[0]
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    def liveness(self, frame, box):
        fh, fw = frame.shape[:2]
        x, y, bw, bh = box
        probs = []
        for sess, scale in self.live:
            sc = min(scale, (fh - 1) / bh, (fw - 1) / bw)
            nw, nh = bw * sc, bh * sc
            cx, cy = x + bw / 2, y + bh / 2
            x0, y0, x1, y1 = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
            if x0 < 0:
                x1, x0 = x1 - x0, 0
            if y0 < 0:
                y1, y0 = y1 - y0, 0
            if x1 > fw - 1:
                x0, x1 = x0 - (x1 - fw + 1), fw - 1
            if y1 > fh - 1:
                y0, y1 = y0 - (y1 - fh + 1), fh - 1
            x0, y0, x1, y1 = int(x0), int(y0), int(x1), int(y1)
            crop = cv2.resize(frame[y0 : y1 + 1, x0 : x1 + 1], (80, 80))
            logits = sess.run(None, {"input": crop.transpose(2, 0, 1)[None].astype(np.float32)})[0][0]
            p = np.exp(logits - logits.max())
            probs.append(p / p.sum())
        return (probs[0] + probs[1]) / 2

    def analyse(self, frame):
        faces = self.detect(frame)
        crops = [self.align(frame, k) for _, _, k in faces]
        live = [self.liveness(frame, b) for b, _, _ in faces]
        emb = self.embed(crops) if crops else []
        return list(zip(faces, live, emb))


def bench_frame(shared):
    """benches/vision.rs `frame()`: obama_and_biden.jpg letterboxed into 640x640."""
    img = cv2.imread(f"{shared}/faces-dev/groups/obama_and_biden.jpg")
    h, w = img.shape[:2]
    s = min(640 / w, 640 / h)
    nw, nh = int(w * s), int(h * s)
    out = np.zeros((640, 640, 3), np.uint8)
    out[:nh, :nw] = cv2.resize(img, (nw, nh))
    return out


def mean_time(f, seconds):
    f()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 5:
        f()
        n += 1
    return (time.perf_counter() - t0) / n


def random_gallery(n, dim=512, seed=1):
    m = np.random.default_rng(seed).uniform(-0.5, 0.5, (n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def search(matrix, q):
    s = matrix @ q
    top2 = np.argpartition(-s, 1)[:2]
    top2 = top2[np.argsort(-s[top2])]
    return top2[0], s[top2[0]], s[top2[0]] - s[top2[1]]


def criterion_means(directory):
    out = {}
    for bj in glob.glob(f"{directory}/**/new/benchmark.json", recursive=True):
        with open(bj) as f:
            full_id = json.load(f)["full_id"]
        with open(os.path.join(os.path.dirname(bj), "estimates.json")) as f:
            out[full_id] = json.load(f)["mean"]["point_estimate"] / 1e9
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.environ.get("CLASSPROOF_MODELS_DIR", "/usr/local/share/classproof/models"))
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--json", help="write the Python means here")
    ap.add_argument("--criterion", help="classproof's target/criterion: print Rust/Python ratios")
    ap.add_argument("--ftz-lib", help="benches/vision/ftz.c built as a .so: set FTZ/DAZ on this thread")
    a = ap.parse_args()
    ftz = "off"
    if a.ftz_lib:
        global FLUSH_SUBNORMALS
        FLUSH_SUBNORMALS = True
        lib = ctypes.CDLL(a.ftz_lib)
        lib.classproof_flush_subnormals()
        assert lib.classproof_subnormals_flushed() == 1, "FTZ/DAZ did not stick on this thread"
        ftz = "on"

    p = Pipeline(a.models)
    frame = bench_frame(a.shared)
    faces = p.detect(frame)
    assert len(faces) == 3, f"expected 3 faces in the benchmark frame, got {len(faces)}"
    crops = [p.align(frame, k) for _, _, k in faces]
    crops8 = (crops * 3)[:8]
    q = random_gallery(1, seed=7)[0]
    py = {
        "vision/detect_640x640": mean_time(lambda: p.detect(frame), a.seconds),
        "vision/embed/batch/1": mean_time(lambda: p.embed(crops8[:1]), a.seconds),
        "vision/embed/batch/8": mean_time(lambda: p.embed(crops8), a.seconds),
        "vision/liveness_per_face": mean_time(lambda: p.liveness(frame, faces[0][0]), a.seconds),
        "vision/pipeline/frame_3_faces": mean_time(lambda: p.analyse(frame), a.seconds),
    }
    for n in (1000, 10000, 100000):
        m = random_gallery(n)
        py[f"vision/search/templates/{n}"] = mean_time(lambda: search(m, q), a.seconds / 2)

    print(f"onnxruntime {ort.__version__}, opencv {cv2.__version__}, numpy {np.__version__}, FTZ/DAZ {ftz}")
    rust = criterion_means(a.criterion) if a.criterion else {}
    print(f"{'stage':<34} {'python':>12} {'classproof':>12} {'rust/python':>12}")
    for k, v in py.items():
        r = rust.get(k)
        print(f"{k:<34} {v * 1e3:>9.3f} ms {(r * 1e3 if r else float('nan')):>9.3f} ms {(r / v if r else float('nan')):>12.2f}")
    if a.ftz_lib:
        assert lib.classproof_subnormals_flushed() == 1, "FTZ/DAZ were cleared during the run"
    if a.json:
        with open(a.json, "w") as f:
            json.dump(py, f, indent=1)


if __name__ == "__main__":
    main()
