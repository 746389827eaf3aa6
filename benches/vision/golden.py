#!/usr/bin/env python3
"""Makes the golden embedding of tests/it/vision.rs (`GOLDEN_EMBEDDING`) with an implementation
independent of classproof: Python, onnxruntime 1.31.1, numpy.

The aligned crop is sampled by integer index arithmetic only (no OpenCV warp, whose bilinear
rounding differs between OpenCV 4.6 and 5.0 by up to 3 grey levels), so the Rust test rebuilds
exactly the same 112x112 bytes:

    crop[y][x] = obama.jpg[Y0 + (10*y)//3][X0 + (10*x)//3]      (BGR, as decoded by OpenCV)

Usage: benches/vision/golden.py [SHARED_DIR]   (run inside the venv of benches/vision/compare.sh)
"""
import hashlib
import sys

import cv2
import numpy as np
import onnxruntime as ort

shared = sys.argv[1] if len(sys.argv) > 1 else "../shared"
X0, Y0 = 311, 41

img = cv2.imread(f"{shared}/models/testdata/obama.jpg")
ys = Y0 + (10 * np.arange(112)) // 3
xs = X0 + (10 * np.arange(112)) // 3
crop = np.ascontiguousarray(img[ys][:, xs])
print("crop sha256", hashlib.sha256(crop.tobytes()).hexdigest())

so = ort.SessionOptions()
so.intra_op_num_threads = 1
sess = ort.InferenceSession(f"{shared}/models/fr_feature.onnx", so)
x = ((crop.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
e = sess.run(None, {"input": x})[0][0]
e = e / np.linalg.norm(e)
print("onnxruntime", ort.__version__)
for i in range(0, 512, 8):
    print("    " + ", ".join("%.6f" % v for v in e[i : i + 8]) + ",")
