"""Goldens for core/quant: the block formats as llama.cpp's own library
writes and reads them.

Loads libggml-base (the CPU build node-llama-cpp ships; `npm install` in
tools/gguf-check brings it, or set GGML_BASE_LIB), quantizes a fixed set of
rows with ggml_quantize_chunk (no importance matrix: the reference
quantizers llama-quantize uses) and dequantizes the result with
dequantize_row_*. Writes core/quant/testdata/: input.f32 (the rows),
TYPE.bin (the blocks) and TYPE.f32 (what llama.cpp reads back).
"""
import ctypes
import glob
import os
import platform
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "core", "quant", "testdata")
TYPES = {"Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8,
         "Q2_K": 10, "Q3_K": 11, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14}
BLOCK = {"Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22), "Q5_1": (32, 24), "Q8_0": (32, 34),
         "Q2_K": (256, 84), "Q3_K": (256, 110), "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210)}
COLS = 512


def find_lib():
    lib = os.environ.get("GGML_BASE_LIB")
    if lib:
        return lib
    arch = {"x86_64": "x64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    pat = os.path.join(ROOT, "tools", "gguf-check", "node_modules", "@node-llama-cpp", "linux-" + arch, "bins", "*", "libggml-base.so")
    hits = sorted(glob.glob(pat))
    if not hits:
        sys.exit("libggml-base.so not found: run npm install in tools/gguf-check or set GGML_BASE_LIB")
    return hits[0]


def rows():
    rng = np.random.default_rng(19)
    r = [
        rng.standard_normal(COLS) * 0.02,                      # a typical weight row
        rng.standard_normal(COLS) * 0.02 + 0.01,               # shifted: minima matter
        rng.standard_t(3, COLS) * 0.05,                        # heavy tails
        np.abs(rng.standard_normal(COLS)),                     # all positive
        -np.abs(rng.standard_normal(COLS)) * 3,                # all negative
        rng.uniform(-1, 1, COLS) * np.repeat(10.0 ** rng.integers(-4, 2, COLS // 16), 16),  # scales vary by group
        np.zeros(COLS),                                        # all zero
        np.full(COLS, 0.125),                                  # constant
    ]
    x = np.stack(r).astype(np.float32)
    x[2, 7] = 4.0                                              # one outlier
    x[5, 100:116] = 0                                          # a zero group inside a row
    return x


def main():
    lib = ctypes.CDLL(find_lib())
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    x = rows()
    os.makedirs(OUT, exist_ok=True)
    x.tofile(os.path.join(OUT, "input.f32"))
    n = x.size
    for name, t in TYPES.items():
        bs, bb = BLOCK[name]
        dst = np.zeros(n // bs * bb, dtype=np.uint8)
        got = lib.ggml_quantize_chunk(t, x.ctypes.data, dst.ctypes.data, 0, x.shape[0], COLS, None)
        assert got == dst.size, (name, got, dst.size)
        y = np.zeros(n, dtype=np.float32)
        deq = getattr(lib, "dequantize_row_" + name.lower().replace("_k", "_K"))
        deq.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        deq(dst.ctypes.data, y.ctypes.data, n)
        dst.tofile(os.path.join(OUT, name + ".bin"))
        y.tofile(os.path.join(OUT, name + ".f32"))
        err = np.abs(y - x.ravel()).max()
        print(f"{name}: {dst.size} bytes, max |error| {err:.3g}")


if __name__ == "__main__":
    main()
