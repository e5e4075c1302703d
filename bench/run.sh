#!/usr/bin/env bash
# bench/run.sh is `make bench`: alignkit against PyTorch (training) and llama.cpp (decoding) on this
# machine, one table of ratios against the project's targets, printed and written to bench/latest.md
# (the raw JSON lines beside it, bench/latest.jsonl).
#
#   bench/run.sh            the full run: every shape, REPS=2 alternations (A B A B)
#   QUICK=1 bench/run.sh    one alternation, fewer steps, smollm135m with one timed step
#   bench/run.sh settings   OPENBLAS_NUM_THREADS (1, 2) × Go threads (GOMAXPROCS 1, 2) × OPENBLAS_CORETYPE
#                           (Haswell, SKYLAKEX) on the reference shape and decode512, PyTorch under both
#                           kernels; written to bench/settings.md
#
# Knobs (environment): BIN (default bin/alignkit), SHARED (../shared), PY (/usr/bin/python3), REPS,
# THREADS (the most PyTorch and llama.cpp threads tried; default nproc), SKIP_SMOLLM=1, SKIP_LORA=1 (the
# llama3-1b LoRA and llama3-8b QLoRA rows, whose steps take minutes each on 2 cores), SKIP_QWEN3=1 (the
# qwen3-0.6b LoRA row), SKIP_DECODE1B=1 (llama3-1b decode: a 5 GB f32 GGUF written under TMPDIR, 10 GB of
# disk while it is converted, and about 5 GB of memory per engine), PEAK_GFLOPS=G
# (skip the peak measurement), OUT (the report file; default bench/latest.md, or bench/settings.md in
# settings mode). OPENBLAS_NUM_THREADS and OPENBLAS_CORETYPE are passed through as set, to alignkit
# and PyTorch alike (the Makefile exports OPENBLAS_NUM_THREADS=2 and, on an AVX-512 CPU,
# OPENBLAS_CORETYPE=SKYLAKEX; run directly, the script keeps the environment's).
#
# PyTorch and llama.cpp each run with 1 thread and with THREADS, and the table compares against the
# faster of the two: on a loaded machine their spin-waiting workers can make 2 threads several times
# slower than 1.
#
# The machine may be shared: engines alternate run by run, every run reports the median of its steps
# after warm-up, and the table shows medians over runs. Columns whose engine is missing (PyTorch:
# Debian's python3-torch; llama.cpp: `make conformance/llamacpp/node_modules`; ../shared for the real
# model and data) are skipped with a note saying why.
set -uo pipefail
cd "$(dirname "$0")/.."
# The whole script is one compound command, read before any of it runs, so editing this file while a
# long benchmark is under way cannot derail it.
{

MODE=${1:-table}
BIN=${BIN:-bin/alignkit}
SHARED=${SHARED:-../shared}
PY=${PY:-/usr/bin/python3}
THREADS=${THREADS:-$(nproc)}
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    REPS=${REPS:-1}; REF_STEPS=3; SMOL_STEPS=1; SFT_STEPS=3; GEN_RUNS=2; LORA_STEPS=1; QWEN3_STEPS=1
else
    REPS=${REPS:-2}; REF_STEPS=5; SMOL_STEPS=2; SFT_STEPS=5; GEN_RUNS=3; LORA_STEPS=2; QWEN3_STEPS=2
fi
# llama3-1b decode: a 1.2B-parameter f32 model reads its 5 GB of weights for every token, so a
# 2-core machine decodes a few tokens a second; 64 prompt tokens and 32 new ones keep each engine's
# run to about a minute.
DEC1B_PROMPT=64; DEC1B_NEW=32

if [ ! -x "$BIN" ]; then
    echo "bench/run.sh: $BIN not found: run make build (make bench does)" >&2
    exit 1
fi
case "$MODE" in table|settings) ;; *) echo "bench/run.sh: unknown mode $MODE (want: table or settings)" >&2; exit 2 ;; esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/alignkit-bench.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
RESULTS=$WORK/results.jsonl
LOG=$WORK/log
: >"$RESULTS"
NOTES=()
note() { NOTES+=("$1"); echo "bench: $1" >&2; }

# run LABEL CMD...: runs CMD, appends its JSON stdout to the results; a failure becomes a note.
run() {
    local label=$1 out rc
    shift
    echo "bench: $label" >&2
    out=$("$@" 2>>"$LOG")
    rc=$?
    if [ $rc -eq 0 ] && [ -n "$out" ]; then
        printf '%s\n' "$out" >>"$RESULTS"
    else
        note "$label failed (exit $rc): $(tail -n 1 "$LOG")"
    fi
}

HAVE_TORCH=0
if [ -x "$PY" ] && "$PY" -c 'import torch' 2>/dev/null; then
    HAVE_TORCH=1
else
    note "PyTorch columns skipped: $PY cannot import torch (Debian: apt-get install -y python3-torch)"
fi
HAVE_LLAMA=0
if command -v node >/dev/null && [ -d conformance/llamacpp/node_modules/node-llama-cpp ]; then
    HAVE_LLAMA=1
else
    note "llama.cpp columns skipped: node or conformance/llamacpp/node_modules missing (make conformance/llamacpp/node_modules)"
fi
HAVE_SHARED=0
if [ -f "$SHARED/models/stories260K/config.json" ] && [ -f "$SHARED/data/no_robots_test_sft.parquet" ]; then
    HAVE_SHARED=1
else
    note "stories260K and SFT rows skipped: $SHARED/models/stories260K or $SHARED/data/no_robots_test_sft.parquet not found"
fi

CPU=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
FAMILY=$(lscpu | sed -n 's/^CPU family: *//p' | head -n 1)
AVX512=$(grep -qw avx512f /proc/cpuinfo && echo ", AVX-512" || echo "")
MACHINE="$CPU (family ${FAMILY:-?}), $(nproc) cores$AVX512, $(free -g | awk '/^Mem:/{print $2}') GB RAM"
LIB=$(readlink -f "$(ldconfig -p 2>/dev/null | awk '/libopenblas\.so\.0 /{print $NF; exit}')" 2>/dev/null)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
VERSION=$("$BIN" version 2>/dev/null | head -n 1)

# The fp32 peak divides every engine's GFLOP/s: the best of a 2048³ sgemm on every core, with the
# OpenBLAS kernel in effect and, on an AVX-512 machine, with SKYLAKEX's AVX-512 kernel (OpenBLAS 0.3.21
# predates Zen 5). PEAK_GFLOPS=G skips the measurement.
if [ -n "${PEAK_GFLOPS:-}" ]; then
    PEAK=$PEAK_GFLOPS
    note "fp32 peak given as PEAK_GFLOPS=$PEAK"
else
    run "fp32 peak (sgemm 2048³)" env OPENBLAS_NUM_THREADS="$THREADS" "$BIN" bench peak --reps 10 --json
    [ -n "$AVX512" ] && run "fp32 peak (sgemm 2048³, OPENBLAS_CORETYPE=SKYLAKEX)" \
        env OPENBLAS_NUM_THREADS="$THREADS" OPENBLAS_CORETYPE=SKYLAKEX "$BIN" bench peak --reps 10 --json
    PEAK=$(sed -n 's/.*"peak_gflops":\([0-9.eE+-]*\).*/\1/p' "$RESULTS" | sort -g | tail -n 1)
    NOTES+=("the fp32 peak is measured here, in the same session: on a loaded machine it comes out low and every peak share high; PEAK_GFLOPS=G divides by a known peak instead")
fi
PEAK=${PEAK:-0}
BLASNAME=$("$BIN" version 2>/dev/null | sed -n 's/^BLAS: *//p' | head -n 1)
BLAS="alignkit: ${BLASNAME:-?}${LIB:+ ($(basename "$LIB"))}; PyTorch: its own build's BLAS (see Runs); llama.cpp: ggml"

alignkit_train() { # preset steps [label-suffix]
    run "alignkit train $1 ${3:-}" "$BIN" bench train --preset "$1" --steps "$2" --warmup 1 --peak-gflops "$PEAK" --json -q
}
# PyTorch runs with 1 thread and with $THREADS: on a loaded machine its OpenMP workers can make more
# threads much slower, so its best count is the baseline.
TORCH_THREADS="1"
[ "$THREADS" -gt 1 ] && TORCH_THREADS="1 $THREADS"
torch_train() { # preset steps [label-suffix]
    [ $HAVE_TORCH = 1 ] || return 0
    local t
    for t in $TORCH_THREADS; do
        run "PyTorch train $1 (threads=$t) ${3:-}" "$PY" bench/torch_train.py --preset "$1" --steps "$2" --warmup 1 --threads "$t" --peak-gflops "$PEAK" -q
    done
}
# LoRA runs: alignkit_lora preset steps label [bench train flags...]; torch_lora likewise with
# torch_train.py's flags, at each PyTorch thread count.
alignkit_lora() {
    local p=$1 s=$2 l=$3
    shift 3
    run "alignkit train $p $l" "$BIN" bench train --preset "$p" --steps "$s" --warmup 1 --peak-gflops "$PEAK" --json -q "$@"
}
torch_lora() {
    [ $HAVE_TORCH = 1 ] || return 0
    local p=$1 s=$2 l=$3 t
    shift 3
    for t in $TORCH_THREADS; do
        run "PyTorch train $p (threads=$t) $l" "$PY" bench/torch_train.py --preset "$p" --steps "$s" --warmup 1 --threads "$t" --peak-gflops "$PEAK" -q "$@"
    done
}
alignkit_decode() { # dir name [label-suffix [generate flags...]]
    local m=$1 n=$2 l=${3:-}
    shift 2
    [ $# -gt 0 ] && shift
    run "alignkit decode $n $l" "$BIN" bench generate --model "$m" --name "$n" --runs "$GEN_RUNS" --json -q "$@"
}
llama_decode() { # gguf name threads [label-suffix [llamacpp_decode.mjs flags...]]
    [ $HAVE_LLAMA = 1 ] || return 0
    local m=$1 n=$2 t=$3 l=${4:-}
    shift 3
    [ $# -gt 0 ] && shift
    run "llama.cpp decode $n (threads=$t) $l" node bench/llamacpp_decode.mjs --model "$m" --name "$n" --runs "$GEN_RUNS" --threads "$t" "$@"
}
# llama.cpp runs with 1 thread and with $THREADS: ggml's workers spin-wait, which on a loaded machine can
# make more threads slower, so its best count is the baseline.
LLAMA_THREADS="1"
[ "$THREADS" -gt 1 ] && LLAMA_THREADS="1 $THREADS"

prepare_decode_model() {
    "$BIN" bench init --preset decode512 --out "$WORK/decode512" >>"$LOG" 2>&1 &&
        "$BIN" export --model "$WORK/decode512" --format gguf --dtype f32 --out "$WORK/decode512.gguf" >>"$LOG" 2>&1
}

if [ "$MODE" = settings ]; then
    prepare_decode_model || note "decode512 model could not be written: $(tail -n 1 "$LOG")"
    for rep in $(seq "$REPS"); do
        for core in Haswell SKYLAKEX; do
            for bt in 1 2; do
                for gp in 1 2; do
                    sfx="(GOMAXPROCS=$gp OPENBLAS_NUM_THREADS=$bt OPENBLAS_CORETYPE=$core, run $rep/$REPS)"
                    run "alignkit train ref $sfx" env GOMAXPROCS=$gp OPENBLAS_NUM_THREADS=$bt OPENBLAS_CORETYPE=$core \
                        "$BIN" bench train --preset ref --steps "$REF_STEPS" --warmup 1 --peak-gflops "$PEAK" --json -q
                    [ -d "$WORK/decode512" ] && run "alignkit decode decode512 $sfx" env GOMAXPROCS=$gp OPENBLAS_NUM_THREADS=$bt OPENBLAS_CORETYPE=$core \
                        "$BIN" bench generate --model "$WORK/decode512" --name decode512 --runs "$GEN_RUNS" --json -q
                done
            done
            for t in $TORCH_THREADS; do
                [ $HAVE_TORCH = 1 ] && run "PyTorch train ref (threads=$t OPENBLAS_CORETYPE=$core, run $rep/$REPS)" env OPENBLAS_CORETYPE=$core \
                    "$PY" bench/torch_train.py --preset ref --steps "$REF_STEPS" --warmup 1 --threads "$t" --peak-gflops "$PEAK" -q
            done
        done
    done
    NOTES+=("load average (1, 5, 15 min) before: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)")
    args=()
    for n in "${NOTES[@]}"; do args+=(--note "$n"); done
    OUT=${OUT:-bench/settings.md}
    cp "$RESULTS" "${OUT%.md}.jsonl"
    "$BIN" bench report --settings --in "$RESULTS" --out "$OUT" --date "$DATE" --machine "$MACHINE" --blas "$BLAS" --version "$VERSION" "${args[@]}"
    exit $?
fi

# Training: alignkit and PyTorch alternate per shape, REPS times.
for rep in $(seq "$REPS"); do
    alignkit_train ref "$REF_STEPS" "(run $rep/$REPS)"
    torch_train ref "$REF_STEPS" "(run $rep/$REPS)"
    if [ "${SKIP_SMOLLM:-0}" != 1 ]; then
        alignkit_train smollm135m "$SMOL_STEPS" "(run $rep/$REPS)"
        torch_train smollm135m "$SMOL_STEPS" "(run $rep/$REPS)"
    fi
done
# Full fine-tuning with gradient checkpointing, whose peak RSS is held against 4 GB (issue 15).
[ "${SKIP_SMOLLM:-0}" != 1 ] && alignkit_lora smollm135m "$SMOL_STEPS" "checkpointing" --gradient-checkpointing
[ "${SKIP_SMOLLM:-0}" = 1 ] && note "smollm135m skipped (SKIP_SMOLLM=1)"

# LoRA (issue 15): llama3-1b with a rank-16 adapter on every linear layer over a bfloat16 base, with
# gradient checkpointing, at 1×1024, against PyTorch's hand-written LoRA of the same shape (its base
# float32: no bitsandbytes); then llama3-8b QLoRA (nf4 base) with checkpointing at 1×512, alignkit
# alone (PyTorch's float32 8B would need 32 GB), whose peak RSS is held against 12 GB.
if [ "${SKIP_LORA:-0}" != 1 ]; then
    for rep in $(seq "$REPS"); do
        alignkit_lora llama3-1b "$LORA_STEPS" "LoRA r16 bf16 (run $rep/$REPS)" --lora-r 16 --base-dtype bfloat16 --gradient-checkpointing
        torch_lora llama3-1b "$LORA_STEPS" "LoRA r16 (run $rep/$REPS)" --lora-r 16 --gradient-checkpointing
    done
    alignkit_lora llama3-8b "$LORA_STEPS" "QLoRA r16 nf4" --lora-r 16 --base-dtype nf4 --gradient-checkpointing --seq-len 512
    NOTES+=("LoRA rows: $LORA_STEPS timed step(s) after 1 warm-up; llama3-8b QLoRA ran once. PyTorch's LoRA holds its base in float32; its peak share counts the same FLOPs (bench.StepFLOPsPerToken: 4N + 6P + 3A, plus the recomputed layer forward 2N_L + 2P + A with checkpointing)")
else
    note "llama3-1b LoRA and llama3-8b QLoRA skipped (SKIP_LORA=1)"
fi

# Qwen3 (issue 16): the qwen3-0.6b preset (Qwen3-0.6B's config: q/k RMSNorm, head_dim 128, tied 151936
# vocabulary) with a rank-16 LoRA on every decoder linear layer over a float32 base at 1×512, against
# PyTorch's hand-written LoRA of the same model (TestTorchSameLoss holds the two models to the same loss).
# Full fine-tuning would hold about 9.5 GB of weights, gradients and AdamW moments per engine before any
# activation; this LoRA peaked at 8.1 GB (alignkit) and 9.3 GB (PyTorch) on 2026-12-07.
if [ "${SKIP_QWEN3:-0}" != 1 ]; then
    for rep in $(seq "$REPS"); do
        alignkit_lora qwen3-0.6b "$QWEN3_STEPS" "LoRA r16 (run $rep/$REPS)" --lora-r 16
        torch_lora qwen3-0.6b "$QWEN3_STEPS" "LoRA r16 (run $rep/$REPS)" --lora-r 16
    done
else
    note "qwen3-0.6b LoRA skipped (SKIP_QWEN3=1)"
fi

# SFT through `alignkit sft` on real data: stories260K itself and a random model of the reference shape.
if [ $HAVE_SHARED = 1 ]; then
    DATA=$SHARED/data/no_robots_test_sft.parquet
    "$BIN" bench init --preset ref --out "$WORK/ref-model" >>"$LOG" 2>&1 || note "ref model could not be written: $(tail -n 1 "$LOG")"
    for rep in $(seq "$REPS"); do
        run "alignkit sft stories260K (run $rep/$REPS)" "$BIN" bench sft --model "$SHARED/models/stories260K" --dataset "$DATA" \
            --name stories260k --steps "$SFT_STEPS" --json
        torch_train stories260k "$SFT_STEPS" "(run $rep/$REPS)"
        [ -d "$WORK/ref-model" ] && run "alignkit sft ref shape (run $rep/$REPS)" "$BIN" bench sft --model "$WORK/ref-model" --dataset "$DATA" \
            --name ref --steps "$SFT_STEPS" --json
    done
fi

# Data parallel (issue 18), when alignkit was built with MPI (make build MPI=1) and mpirun is on the
# PATH: `alignkit sft` of the ref shape on 2 ranks of this machine, to compare with the 1-process rows
# above (the same 8×256 per rank, so twice the global batch; mpirun binds each rank to one core, the
# 1-process run uses every core: on 2 cores the point is the overhead, not a gain), and one step's
# gradient all-reduce on loopback for the ref shape (full) and llama3-1b LoRA r16.
# `alignkit version` prints "MPI: not compiled in (...)" for a build without MPI: only another MPI
# line means the ranks would talk to each other (two plain processes would each train alone).
if "$BIN" version 2>/dev/null | grep '^MPI: ' | grep -vq 'not compiled in' && command -v mpirun >/dev/null; then
    MPIRUN=(mpirun --oversubscribe)
    [ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
    if [ $HAVE_SHARED = 1 ] && [ -d "$WORK/ref-model" ]; then
        for rep in $(seq "$REPS"); do
            run "alignkit sft ref shape, 2 ranks (run $rep/$REPS)" "${MPIRUN[@]}" -np 2 -x OPENBLAS_NUM_THREADS=1 "$BIN" bench sft \
                --model "$WORK/ref-model" --dataset "$SHARED/data/no_robots_test_sft.parquet" --name ref --steps "$SFT_STEPS" --json
        done
    fi
    run "gradient all-reduce, ref full, 2 ranks" "${MPIRUN[@]}" -np 2 "$BIN" bench allreduce --preset ref --json
    if [ "${SKIP_LORA:-0}" != 1 ]; then
        run "gradient all-reduce, llama3-1b LoRA r16, 2 ranks" "${MPIRUN[@]}" -np 2 "$BIN" bench allreduce --preset llama3-1b --lora-r 16 --json
    fi
    NOTES+=("data-parallel rows: 2 MPI ranks on this machine's $(nproc) cores, each bound by mpirun to one core; the all-reduce runs on loopback (shared memory), so its time is a floor, and the link columns model real networks")
else
    note "data-parallel rows skipped: $BIN was built without MPI (make build MPI=1) or mpirun is not on the PATH"
fi

# Decoding: the same f32 GGUF (written by alignkit export) in both engines.
if prepare_decode_model; then
    HAVE_STORIES_GGUF=0
    if [ $HAVE_SHARED = 1 ] && "$BIN" export --model "$SHARED/models/stories260K" --format gguf --dtype f32 --out "$WORK/stories260K.gguf" >>"$LOG" 2>&1; then
        HAVE_STORIES_GGUF=1
    fi
    for rep in $(seq "$REPS"); do
        alignkit_decode "$WORK/decode512" decode512 "(run $rep/$REPS)"
        for t in $LLAMA_THREADS; do llama_decode "$WORK/decode512.gguf" decode512 "$t" "(run $rep/$REPS)"; done
        if [ $HAVE_STORIES_GGUF = 1 ]; then
            alignkit_decode "$SHARED/models/stories260K" stories260K "(run $rep/$REPS)"
            for t in $LLAMA_THREADS; do llama_decode "$WORK/stories260K.gguf" stories260K "$t" "(run $rep/$REPS)"; done
        fi
    done
else
    note "decode512 model could not be written: $(tail -n 1 "$LOG")"
fi

# llama3-1b decode (issue 16): a random Llama-3.2-1B-shaped model exported once to an f32 GGUF, which
# both engines load (alignkit reads the GGUF itself, so the weights are the same bytes); the HF
# directory is deleted as soon as the GGUF is written, and the GGUF when the rows are done.
if [ "${SKIP_DECODE1B:-0}" != 1 ]; then
    if "$BIN" bench init --preset llama3-1b --out "$WORK/llama3-1b" >>"$LOG" 2>&1 &&
        "$BIN" export --model "$WORK/llama3-1b" --format gguf --dtype f32 --out "$WORK/llama3-1b.gguf" >>"$LOG" 2>&1; then
        rm -rf "$WORK/llama3-1b"
        for rep in $(seq "$REPS"); do
            alignkit_decode "$WORK/llama3-1b.gguf" llama3-1b "(run $rep/$REPS)" --prompt-len "$DEC1B_PROMPT" --new-tokens "$DEC1B_NEW"
            for t in $LLAMA_THREADS; do
                llama_decode "$WORK/llama3-1b.gguf" llama3-1b "$t" "(run $rep/$REPS)" --prompt-len "$DEC1B_PROMPT" --new-tokens "$DEC1B_NEW"
            done
        done
    else
        note "llama3-1b model could not be written: $(tail -n 1 "$LOG")"
    fi
    rm -rf "$WORK/llama3-1b" "$WORK/llama3-1b.gguf"
    NOTES+=("llama3-1b decode: both engines load one f32 GGUF written by alignkit export (4.9 GB); $DEC1B_PROMPT-token random prompt, $DEC1B_NEW greedy tokens, $GEN_RUNS timed runs after a warm-up; decoding a model this size reads every weight per token, so its rate is the machine's memory bandwidth as much as either engine")
else
    note "llama3-1b decode skipped (SKIP_DECODE1B=1)"
fi

NOTES+=("load average (1, 5, 15 min) before: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg) — other work shared the $(nproc) cores, so absolute rates vary from run to run; the ratios come from alternated runs")
[ "$QUICK" = 1 ] && NOTES+=("QUICK=1: one alternation, $REF_STEPS timed steps for ref, $SMOL_STEPS for smollm135m, $SFT_STEPS for SFT, $GEN_RUNS decode runs")
[ $HAVE_SHARED = 1 ] && NOTES+=("SFT rows: tokens/s counts every non-padding position, as the training loop does, but only the assistant tokens carry loss (loss_mask assistant_only), and alignkit's log-softmax skips positions without loss, so these rows are not like-for-like with PyTorch's step that trains every position")
ENV="OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-unset}, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, GOMAXPROCS=${GOMAXPROCS:-unset (all cores)}; PyTorch set_num_threads: $TORCH_THREADS; llama.cpp threads: $LLAMA_THREADS (each baseline at its best)"
args=()
for n in "${NOTES[@]}"; do args+=(--note "$n"); done
OUT=${OUT:-bench/latest.md}
cp "$RESULTS" "${OUT%.md}.jsonl" # the raw results, to re-run `alignkit bench report` on
"$BIN" bench report --in "$RESULTS" --out "$OUT" --date "$DATE" --machine "$MACHINE" --blas "$BLAS" --env "$ENV" --version "$VERSION" "${args[@]}"
exit $?
}
