"""ggml_codec.py encodes float32 values with ggml's own C code, from the libggml-base.so that
node-llama-cpp ships, so that alignkit's F16 and Q8_0 encoders can be compared with llama.cpp byte for byte.

    python3 ggml_codec.py {f16|q8_0} IN.f32 OUT.bin N_PER_ROW

IN.f32 is raw little-endian float32; OUT.bin receives ggml_fp32_to_fp16_row's output (f16) or
ggml_quantize_chunk(GGML_TYPE_Q8_0, ...)'s blocks (q8_0), the function llama.cpp's quantizer calls.
"""
import ctypes
import os
import sys

GGML_TYPE_Q8_0 = 8
HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(HERE, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64", "libggml-base.so")


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("f16", "q8_0"):
        sys.exit("usage: ggml_codec.py {f16|q8_0} IN.f32 OUT.bin N_PER_ROW")
    kind, src_path, dst_path, per_row = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    lib = ctypes.CDLL(LIB)
    with open(src_path, "rb") as f:
        raw = f.read()
    n = len(raw) // 4
    src = (ctypes.c_float * n).from_buffer_copy(raw)
    if kind == "f16":
        lib.ggml_fp32_to_fp16_row.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        lib.ggml_fp32_to_fp16_row.restype = None
        dst = ctypes.create_string_buffer(2 * n)
        lib.ggml_fp32_to_fp16_row(src, dst, n)
        out = dst.raw
    else:
        if per_row % 32 or n % per_row:
            sys.exit(f"q8_0 needs rows of a multiple of 32 values, got {per_row} per row and {n} values")
        lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                            ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
        lib.ggml_quantize_chunk.restype = ctypes.c_size_t
        dst = ctypes.create_string_buffer(n // 32 * 34)
        size = lib.ggml_quantize_chunk(GGML_TYPE_Q8_0, src, dst, 0, n // per_row, per_row, None)
        if size != n // 32 * 34:
            sys.exit(f"ggml_quantize_chunk wrote {size} bytes, want {n // 32 * 34}")
        out = dst.raw
    with open(dst_path, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main()
