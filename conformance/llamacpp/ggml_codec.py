"""ggml_codec.py encodes and decodes values with ggml's own C code, from the libggml-base.so that
node-llama-cpp ships, so that alignkit's codecs can be compared with llama.cpp byte for byte.

    python3 ggml_codec.py {f16|bf16|q8_0|q4_0|q4_k|q6_k} IN.f32 OUT.bin N_PER_ROW
    python3 ggml_codec.py dequant-{f16|bf16|q8_0|q4_0|q4_k|q6_k} IN.bin OUT.f32 N_VALUES

IN.f32 is raw little-endian float32. Encoding writes ggml_fp32_to_fp16_row's output (f16),
ggml_fp32_to_bf16_row_ref's (bf16), or ggml_quantize_chunk(type, ...)'s blocks, the function llama.cpp's
quantizer calls (without an importance matrix it runs quantize_row_*_ref). dequant-TYPE decodes
N_VALUES values of IN.bin with ggml-quants.c's dequantize_row_* (ggml_fp16_to_fp32_row /
ggml_bf16_to_fp32_row for the float types) into OUT.f32.
"""
import ctypes
import os
import sys

# ggml_type ids and block shapes (ggml.c type_traits: values per block, bytes per block).
TYPES = {"f16": (1, 1, 2), "bf16": (30, 1, 2), "q8_0": (8, 32, 34), "q4_0": (2, 32, 18),
         "q4_k": (12, 256, 144), "q6_k": (14, 256, 210)}
DEQUANT = {"f16": "ggml_fp16_to_fp32_row", "bf16": "ggml_bf16_to_fp32_row", "q8_0": "dequantize_row_q8_0",
           "q4_0": "dequantize_row_q4_0", "q4_k": "dequantize_row_q4_K", "q6_k": "dequantize_row_q6_K"}
HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(HERE, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64", "libggml-base.so")
USAGE = ("usage: ggml_codec.py {f16|bf16|q8_0|q4_0|q4_k|q6_k} IN.f32 OUT.bin N_PER_ROW\n"
         "       ggml_codec.py dequant-{f16|bf16|q8_0|q4_0|q4_k|q6_k} IN.bin OUT.f32 N_VALUES")


def encode(lib, kind, raw, per_row):
    n = len(raw) // 4
    src = (ctypes.c_float * n).from_buffer_copy(raw)
    typ, block, size = TYPES[kind]
    if kind in ("f16", "bf16"):
        fn = lib.ggml_fp32_to_fp16_row if kind == "f16" else lib.ggml_fp32_to_bf16_row_ref
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        fn.restype = None
        dst = ctypes.create_string_buffer(2 * n)
        fn(src, dst, n)
        return dst.raw
    if per_row % block or n % per_row:
        sys.exit(f"{kind} needs rows of a multiple of {block} values, got {per_row} per row and {n} values")
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    want = n // block * size
    dst = ctypes.create_string_buffer(want)
    got = lib.ggml_quantize_chunk(typ, src, dst, 0, n // per_row, per_row, None)
    if got != want:
        sys.exit(f"ggml_quantize_chunk wrote {got} bytes, want {want}")
    return dst.raw


def decode(lib, kind, raw, n):
    typ, block, size = TYPES[kind]
    if n % block or len(raw) != n // block * size:
        sys.exit(f"dequant-{kind}: {len(raw)} bytes do not hold {n} values")
    fn = getattr(lib, DEQUANT[kind])
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn.restype = None
    src = ctypes.create_string_buffer(raw, len(raw))
    dst = (ctypes.c_float * n)()
    fn(src, dst, n)
    return bytes(dst)


def main():
    if len(sys.argv) != 5:
        sys.exit(USAGE)
    kind, src_path, dst_path, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    dequant = kind.startswith("dequant-")
    if dequant:
        kind = kind[len("dequant-"):]
    if kind not in TYPES:
        sys.exit(USAGE)
    lib = ctypes.CDLL(LIB)
    with open(src_path, "rb") as f:
        raw = f.read()
    out = decode(lib, kind, raw, count) if dequant else encode(lib, kind, raw, count)
    with open(dst_path, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main()
