#!/usr/bin/env python3
"""Counts the subnormal float32 weights (initializers) of ONNX models: the values that cost a
micro-code assist per multiplication on Intel CPUs unless FTZ/DAZ are set (src/vision/fpu.rs).

    benches/vision/subnormals.py MODEL.onnx...
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper

tiny = np.finfo(np.float32).tiny
for path in sys.argv[1:]:
    m = onnx.load(path)
    total = sub = 0
    worst = []
    for init in m.graph.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype != np.float32:
            continue
        n = int(np.count_nonzero((a != 0) & (np.abs(a) < tiny)))
        total += a.size
        sub += n
        if n:
            worst.append((n, init.name))
    worst.sort(reverse=True)
    top = ", ".join(f"{name} {n}" for n, name in worst[:3])
    print(f"{path.rsplit('/', 1)[-1]}: {sub:,} subnormal of {total:,} float32 weights" + (f" (most in: {top})" if top else ""))
