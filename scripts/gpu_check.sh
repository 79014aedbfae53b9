#!/usr/bin/env bash
# The GPU check (docs/gpu.md): on a machine with an NVIDIA GPU, the CUDA toolkit, CMake and Python but none
# of this project's Debian development packages, it builds for the local GPU, runs the CUDA backend's tests
# on the device (the backend-op table against the CPU's fp64 reference, a training step against the CPU,
# tests/test_cuda_training.sh), compute-sanitizer (memcheck, racecheck) on the backend-op table, the
# training-step and attention benchmarks, the PyTorch peer (scripts/torch_peer.py) where PyTorch is
# installed, and a 200-step demo_softpick run on the GPU next to the same run on the CPU, and writes a short
# report.
#
#   scripts/gpu_check.sh --prepare     on a Debian machine with the package mirror and the demo corpus
#                                      (scripts/demo.sh makes it): downloads the build's Debian packages
#                                      into .gpu-deps/debs and copies the demo shards to .gpu-deps/data;
#                                      .gpu-deps/ is git-ignored and travels with the tree
#   scripts/gpu_check.sh [REPORT_DIR]  on the GPU machine; the report goes to REPORT_DIR/gpu_report.md
#                                      (default: $OUT if set, else build-gpu/)
#
# Expected to take about 10 minutes on a 16-core machine with an H100-class GPU (mostly the build and the
# PyTorch peer's compile). Every stage has a time limit (at most 24 minutes in all); a stage that fails or runs out of time is reported as
# such and the check goes on.
set -uo pipefail
# Every variable is exported: a stage that runs one of this script's functions runs it in a child bash
# (timeout(1) starts programs only), which needs the variables the function reads.
set -a

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$ROOT/.gpu-deps"
# Debian packages the build needs that a CUDA image lacks (MPI is left out: the check uses one GPU).
PACKAGES=(nlohmann-json3-dev libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 catch2 libopenblas-openmp-dev
          libopenblas0-openmp libgfortran5 libquadmath0)

if [ "${1:-}" = "--prepare" ]; then
  set -e
  mkdir -p "$DEPS/debs" "$DEPS/data"
  (cd "$DEPS/debs" && rm -f ./*.deb && apt-get download "${PACKAGES[@]}")
  if ! ls "$ROOT"/data/demo/demo_train_*.bin >/dev/null 2>&1; then
    echo "no demo corpus in data/demo: run scripts/demo.sh (or its data step) first" >&2
    exit 1
  fi
  cp "$ROOT"/data/demo/demo_*.bin "$DEPS/data/"
  du -sh "$DEPS"
  echo "prepared $DEPS: carry it to the GPU machine with the tree and run scripts/gpu_check.sh there"
  exit 0
fi

REPORT_DIR="${1:-${OUT:-$ROOT/build-gpu}}"
BUILD="$ROOT/build-gpu"
mkdir -p "$REPORT_DIR" "$BUILD"
REPORT="$REPORT_DIR/gpu_report.md"
LOG="$REPORT_DIR/gpu_check.log"
: >"$LOG"
START=$SECONDS

report() { printf '%s\n' "$*" >>"$REPORT"; }
# stage NAME LIMIT_S CMD...: runs CMD with a time limit, its output to the log, a status line to the report
stage() {
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS rc=0
  printf '\n==> %s\n' "$name" | tee -a "$LOG"
  if declare -F "$1" >/dev/null; then  # a function of this script: in a child bash that inherits it
    export -f "$1"
    timeout --kill-after=10 "$limit" bash -o pipefail -c '"$@"' stage "$@" >>"$LOG" 2>&1 || rc=$?
  else
    timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1 || rc=$?
  fi
  local status="ok"
  [ $rc -eq 124 ] && status="TIMED OUT after ${limit}s"
  [ $rc -ne 0 ] && [ $rc -ne 124 ] && status="FAILED (exit $rc)"
  report "- $name: $status, $((SECONDS - t0)) s"
  echo "    $status ($((SECONDS - t0)) s)"
  return $rc
}

{
  echo "# softpick GPU check"
  echo
  echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"
  echo "- nvcc: $(nvcc --version 2>/dev/null | tail -1)"
  echo
  echo "## Stages"
} >"$REPORT"

# ---- the Debian packages, unpacked under .gpu-deps/root (never into /) ----
PREFIX="$DEPS/root"
unpack() {
  ls "$DEPS"/debs/*.deb >/dev/null || { echo "no .gpu-deps/debs: run scripts/gpu_check.sh --prepare first"; return 1; }
  rm -rf "$PREFIX" && mkdir -p "$PREFIX"
  for f in "$DEPS"/debs/*.deb; do dpkg -x "$f" "$PREFIX"; done
}
stage "unpack the Debian packages" 60 unpack || { cat "$REPORT"; exit 1; }
ARCH_LIB="$PREFIX/usr/lib/x86_64-linux-gnu"
export LD_LIBRARY_PATH="$ARCH_LIB/openblas-openmp:$ARCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# ---- build for this GPU ----
configure() {
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSOFTPICK_CUDA=ON -DSOFTPICK_CUDA_EMU=OFF \
    -DSOFTPICK_MPI=OFF -DCMAKE_CUDA_ARCHITECTURES=native -DCMAKE_PREFIX_PATH="$PREFIX/usr" \
    -DOpenBLAS_LIBRARIES="$ARCH_LIB/openblas-openmp/libopenblas.so" \
    -DOpenBLAS_INCLUDE_DIRS="$PREFIX/usr/include/x86_64-linux-gnu/openblas-openmp"
}
stage "configure (nvcc, this GPU's architecture)" 120 configure || { cat "$REPORT"; exit 1; }
stage "build" 300 cmake --build "$BUILD" -j "$(nproc)" || { cat "$REPORT"; exit 1; }

# ---- tests on the device ----
# the build has no MPI (one GPU), so tests/test_cuda_training.sh leaves out its 2-rank checks
export SOFTPICK_TEST_NO_MPI=1
stage "gpu tests (ctest -L gpu)" 240 ctest --test-dir "$BUILD" -L gpu --output-on-failure
report "  $(grep -E 'tests passed|tests failed' "$LOG" | tail -1)"

# ---- compute-sanitizer on the kernel tests ----
TESTS="$BUILD/tests/softpick_tests"
if command -v compute-sanitizer >/dev/null; then
  stage "compute-sanitizer memcheck" 150 compute-sanitizer --tool memcheck --error-exitcode 3 "$TESTS" \
    "backend ops: cuda*"
  report "  $(grep -E 'ERROR SUMMARY' "$LOG" | tail -1)"
  stage "compute-sanitizer racecheck" 150 compute-sanitizer --tool racecheck --error-exitcode 3 "$TESTS" \
    "backend ops: cuda*"
  report "  $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' "$LOG" | tail -1)"
else
  report "- compute-sanitizer: not on this machine"
fi

# ---- benchmarks: softpick's, then the PyTorch peer's on the same GPU ----
BENCH_OUT="$REPORT_DIR/bench.txt"
bench() {  # the 340M preset at the paper's per-GPU batch (16 x 4096), then the 1.8B preset (full recomputation)
  "$BUILD/softpick" bench "$ROOT/configs/softpick_340m.json" --device=cuda --only=train --training.batch_size=16 \
    --training.seq_len=4096 | tee "$BENCH_OUT"
  "$BUILD/softpick" bench "$ROOT/configs/softpick_1.8b.json" --device=cuda --only=train --steps=2 | tee -a "$BENCH_OUT"
}
stage "training-step benchmark (340M and 1.8B, B 16, T 4096)" 180 bench
ATTN_OUT="$REPORT_DIR/bench_attention.txt"
bench_attention() {  # the attention table: softmax and softpick, forward and backward, head dims 64 and 128
  "$BUILD/softpick" bench "$ROOT/configs/softpick_340m.json" --device=cuda --only=attention --attention-D=64,128 \
    --attention-T=1024,4096,16384 | tee "$ATTN_OUT"
}
stage "attention benchmark (T 1024..16384, D 64 and 128)" 90 bench_attention
PEER_OUT="$REPORT_DIR/torch_peer.txt"
torch_peer() {  # SDPA flash, a naive softpick and a Llama-340M step (eager, torch.compile), with the ratios
  python3 "$ROOT/scripts/torch_peer.py" --config "$ROOT/configs/softpick_340m.json" --attention-D=64,128 \
    --attention-T=1024,4096,16384 --batch-size=16 --seq-len=4096 --softpick-bench "$ATTN_OUT" \
    --softpick-bench "$BENCH_OUT" --json "$REPORT_DIR/torch_peer.json" | tee "$PEER_OUT"
}
if python3 -c "import torch" 2>/dev/null; then
  stage "PyTorch peer (SDPA flash, naive softpick, Llama-340M eager and compiled)" 240 torch_peer
else
  report "- PyTorch peer: PyTorch is not installed on this machine"
fi

# ---- 200 steps of demo_softpick, on the GPU and on the CPU ----
DATA="$DEPS/data"
[ -d "$DATA" ] || DATA="$ROOT/data/demo"
demo() {  # demo DEVICE
  "$BUILD/softpick" train "$ROOT/configs/demo_softpick.json" --training.device="$1" --training.steps=200 \
    --training.run_dir="$BUILD/runs/demo_$1" --checkpoint.resume=never --overwrite \
    --data.train_files="$DATA/demo_train_*.bin" --data.val_files="$DATA/demo_val_*.bin"
}
stage "demo_softpick, 200 steps on cuda" 120 demo cuda
stage "demo_softpick, 200 steps on cpu" 120 demo cpu
compare() {
  python3 - "$BUILD/runs/demo_cuda/metrics.jsonl" "$BUILD/runs/demo_cpu/metrics.jsonl" <<'EOF'
import json, sys
def losses(path, kind, key):
    return {r["step"]: r[key] for r in map(json.loads, open(path)) if r.get("type") == kind}
gpu, cpu = (losses(p, "train", "loss") for p in sys.argv[1:3])
gval, cval = (losses(p, "eval", "val_loss") for p in sys.argv[1:3])
steps = sorted(set(gpu) & set(cpu))
worst = max(abs(gpu[s] - cpu[s]) / cpu[s] for s in steps)
tps = [r["tokens_per_s"] for r in map(json.loads, open(sys.argv[1])) if r.get("type") == "train"][10:]
print(f"  train loss at step {steps[-1]}: cuda {gpu[steps[-1]]:.4f}, cpu {cpu[steps[-1]]:.4f}; "
      f"largest relative difference over {len(steps)} steps {worst:.3%}")
print(f"  val loss: cuda {' -> '.join(f'{gval[s]:.4f}' for s in sorted(gval))}; "
      f"cpu {' -> '.join(f'{cval[s]:.4f}' for s in sorted(cval))}")
if tps: print(f"  cuda tokens/s (median after step 10): {sorted(tps)[len(tps) // 2]:.0f}")
EOF
}
if compare >>"$REPORT" 2>>"$LOG"; then :; else report "  (no loss comparison: a demo run failed)"; fi

report ""
report "## Benchmark output"
report '```'
[ -f "$BENCH_OUT" ] && cat "$BENCH_OUT" >>"$REPORT"
[ -f "$ATTN_OUT" ] && cat "$ATTN_OUT" >>"$REPORT"
[ -f "$PEER_OUT" ] && cat "$PEER_OUT" >>"$REPORT"
report '```'
report ""
report "Total: $((SECONDS - START)) s. Full log: gpu_check.log."
cat "$REPORT"
