#!/usr/bin/env bash
# Data-parallel training with mpirun (OpenMPI): equivalence with one process, ZeRO-1, resume across world
# sizes, and a failing rank. Usage: tests/test_distributed.sh BUILD/softpick
#
# Tolerance: runs that split the same global batch differently sum the same terms in another order, so
# their fp32 losses agree to rounding, which grows slowly over steps; over these 20 steps they agree to a
# relative 1e-5. (Same-layout runs are bit-identical; that is tested elsewhere.)
set -uo pipefail
SOFTPICK="$(realpath "$1")"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOL=1e-5
source "$ROOT/tests/testlib.sh"
MPIRUN=(mpirun -np 2 --oversubscribe --bind-to none)
write_shards 3 80

base=(train "$ROOT/tests/configs/tiny.json" --data.train_files="$work/d_train.bin" --data.val_files="$work/d_val.bin"
      --training.threads=1 --training.steps=20 --logging.eval_interval=10 --checkpoint.interval=10
      --lr_scheduler.warmup_steps=2)
run() {  # run NAME NP ARGS...: a training run into $work/NAME
  local name="$1" np="$2"
  shift 2
  if [ "$np" = 1 ]; then
    "$SOFTPICK" "${base[@]}" --training.run_dir="$work/$name" "$@" >"$work/$name.log" 2>&1
  else
    "${MPIRUN[@]}" "$SOFTPICK" "${base[@]}" --training.run_dir="$work/$name" "$@" >"$work/$name.log" 2>&1
  fi
}
same_losses() {  # same_losses A B: train losses step by step within TOL
  python3 - "$work/$1/metrics.jsonl" "$work/$2/metrics.jsonl" "$TOL" <<'PY'
import json, sys
def losses(p):
    return {r["step"]: r["loss"] for r in map(json.loads, open(p)) if r["type"] == "train"}
a, b, tol = losses(sys.argv[1]), losses(sys.argv[2]), float(sys.argv[3])
if sorted(a) != sorted(b) or not a:
    sys.exit(f"steps differ: {sorted(a)[:3]}... vs {sorted(b)[:3]}...")
worst = max(abs(a[s] - b[s]) / abs(b[s]) for s in a)
print(f"     {len(a)} steps, largest relative difference {worst:.2e}")
sys.exit(0 if worst <= tol else 1)
PY
}

# the same global batch of 8 sequences, three ways
run one_b8 1 --training.batch_size=8
run two_b4 2 --training.batch_size=4 --distributed.zero_stage=0
run one_b4_accum2 1 --training.batch_size=4 --training.gradient_accumulation_steps=2
run two_b4_zero1 2 --training.batch_size=4 --distributed.zero_stage=1 --logging.level=info
check "2 ranks x B=4 equals 1 rank x B=8" same_losses two_b4 one_b8
check "1 rank x B=4 x 2 accumulation steps equals 1 rank x B=8" same_losses one_b4_accum2 one_b8
check "ZeRO-1 equals zero_stage 0 on 2 ranks" same_losses two_b4_zero1 two_b4
check "the 2-rank run sharded the optimizer state" grep -q "2 rank(s) (mpi) x 1 threads, ZeRO-1" "$work/two_b4_zero1.log"
check "only rank 0 writes checkpoints and metrics" test -f "$work/two_b4_zero1/checkpoints/step_00000020/model.safetensors"

# resume across world sizes: 2 ranks (ZeRO-1) stop at step 10 -> 1 rank (B = 8) stops at step 15 -> 2 ranks
# finish. The stops are injected failures, so every leg keeps the same training.steps (and LR schedule).
SOFTPICK_FAULT=error-at-step:10 run hop 2 --training.batch_size=4 --checkpoint.interval=5
SOFTPICK_FAULT=error-at-step:15 run hop 1 --training.batch_size=8 --checkpoint.interval=5 --logging.level=info
cp "$work/hop.log" "$work/hop_1rank.log"
run hop 2 --training.batch_size=4 --checkpoint.interval=5 --logging.level=info
check "resume 2 -> 1 -> 2 ranks continues the same loss curve" same_losses hop one_b8
check "the 1-rank leg resumed the 2-rank checkpoint" grep -q "resuming from .*step_00000010 .* on 1 rank" "$work/hop_1rank.log"
check "the last leg resumed the 1-rank checkpoint on 2 ranks" grep -q "resuming from .*step_00000015 .* on 2 rank" "$work/hop.log"

# a rank that fails ends the whole job, naming the rank
start=$(date +%s)
"${MPIRUN[@]}" bash -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then exec "$0" "$@" --training.steps=200000 & pid=$!; sleep 3; kill -9 $pid; wait $pid; exit 137; else exec "$0" "$@" --training.steps=200000; fi' \
  "$SOFTPICK" "${base[@]}" --training.run_dir="$work/killed" >"$work/killed.log" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))
check "killing rank 1 ends the job (exit $rc) within 30 s (took ${elapsed} s)" test "$rc" -ne 0 -a "$elapsed" -le 30
# a rank killed outright cannot speak; mpirun reports it as process [[JOB,1],1], that is rank 1
check "the launcher's message names the killed rank" grep -qE "Process name: \[\[[0-9]+,[0-9]+\],1\]" "$work/killed.log"

start=$(date +%s)
"${MPIRUN[@]}" bash -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then export SOFTPICK_FAULT=error-at-step:3; fi; exec "$0" "$@"' \
  "$SOFTPICK" "${base[@]}" --training.run_dir="$work/err" --training.steps=200000 >"$work/err.log" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))
check "an error on rank 1 ends the job (exit $rc) within 30 s (took ${elapsed} s)" test "$rc" -ne 0 -a "$elapsed" -le 30
check "the error is reported by rank 1 with its cause" grep -q "\[rank 1\] \[error\] .*injected" "$work/err.log"

# ranks started with different configs are refused at start-up
"${MPIRUN[@]}" bash -c 'if [ "$OMPI_COMM_WORLD_RANK" = 1 ]; then exec "$0" "$@" --optimizer.lr=1e-3; else exec "$0" "$@"; fi' \
  "$SOFTPICK" "${base[@]}" --training.run_dir="$work/mismatch" >"$work/mismatch.log" 2>&1
rc=$?
check "different configs on the ranks are refused (exit $rc)" test "$rc" -ne 0
check "the message names the rank and the config" grep -q "rank 1 was started with a different config" "$work/mismatch.log"

finish
