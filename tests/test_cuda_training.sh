#!/usr/bin/env bash
# Training on the CUDA backend (on the CUDA execution harness without a GPU, on the device with one):
# the demo configs follow the CPU's loss curve, checkpoints move between cuda and cpu runs in both
# directions, activation checkpointing repeats a run exactly, the atomic attention backward follows the
# deterministic one (within 1e-3: its dq sums run in another order, and the tiny config trains softpick),
# and 2 ranks over NCCL equal one process with the doubled batch, with and without ZeRO-1.
# Usage: tests/test_cuda_training.sh BUILD/softpick
#
# Tolerances (relative, per step's train loss):
#   * cuda against cpu: 2e-2. The CUDA backend keeps activations and working weights in bf16 (8 bits of
#     mantissa), the CPU in fp32; at the demo's learning rate the two trajectories drift apart slowly
#     (about 1e-3 after 20 steps, measured).
#   * bf16 gradient reduction against fp32 on 2 ranks: 1e-3 (6e-5 measured over 12 steps).
#   * 2 ranks against 1 on cuda: 1e-4, with softmax attention. Each row's bf16 arithmetic is the same; only
#     the fp32 sums of the weight gradients over rows run in another order (5e-11 relative at step 0). Once
#     such a one-ulp difference in a master weight flips the bf16 rounding of its working copy, the runs
#     drift: slowly for softmax (1.2e-5 after 12 steps, measured), but softpick and rectified softmax are
#     discontinuous at a score of 0, and at init-scale scores a flipped near-zero score changes a row's
#     gradient by O(1) (measured after 12 steps: 9e-4 softpick, 2.6e-4 rectified). So the 2-rank checks
#     use softmax, where the tolerance tests the reduction rather than the normaliser's conditioning.
# The runs use small batches and skip the periodic analysis and samples: under the harness every kernel
# runs on the CPU, a few hundred times slower than the CPU backend.
set -uo pipefail
SOFTPICK="$(realpath "$1")"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/tests/testlib.sh"
write_shards 5 200

quiet=(--data.train_files="$work/d_train.bin" --data.val_files="$work/d_val.bin" --logging.analysis_interval=null
       --logging.sample_interval=1000000 --logging.eval_tokens=1024 --logging.log_interval=1 --logging.level=info
       --training.threads=2)
run() {  # run NAME CONFIG ARGS...: a training run into $work/NAME
  local name="$1" config="$2"
  shift 2
  "$SOFTPICK" train "$config" "${quiet[@]}" --training.run_dir="$work/$name" "$@" >>"$work/$name.log" 2>&1
}
close_losses() {  # close_losses A B TOL [FROM]: train losses of the steps both have (from step FROM) within TOL
  python3 - "$work/$1/metrics.jsonl" "$work/$2/metrics.jsonl" "$3" "${4:-0}" <<'PY'
import json, sys
def losses(p):
    return {r["step"]: r["loss"] for r in map(json.loads, open(p)) if r["type"] == "train"}
a, b, tol, start = losses(sys.argv[1]), losses(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
steps = [s for s in sorted(set(a) & set(b)) if s >= start]
if not steps or sorted(a) != sorted(b):
    sys.exit(f"steps differ: {sorted(a)} vs {sorted(b)}")
worst = max(abs(a[s] - b[s]) / abs(b[s]) for s in steps)
print(f"     {len(steps)} steps, largest relative difference {worst:.2e} (tolerance {tol:g})")
sys.exit(0 if worst <= tol else 1)
PY
}

# ---- the demo configs: 50 steps on cuda follow the CPU ----
for cfg in demo_softpick demo_softmax; do
  for dev in cpu cuda; do
    run "${cfg}_$dev" "$ROOT/configs/$cfg.json" --training.device=$dev --training.steps=50 --training.batch_size=4 \
      --logging.eval_interval=25
  done
  check "$cfg: 50 steps on cuda follow the cpu loss curve" close_losses "${cfg}_cuda" "${cfg}_cpu" 2e-2
  # random tokens of 198 kinds: from ln(259) = 5.56 towards ln(198) = 5.29 at best
  check "$cfg: the cuda run learned the token distribution (loss fell by 3%)" python3 -c "
import json, sys
l = [r['loss'] for r in map(json.loads, open('$work/${cfg}_cuda/metrics.jsonl')) if r['type'] == 'train']
sys.exit(0 if l[-1] < 0.97 * l[0] else 1)"
done

# ---- the memory the backend holds, against what `softpick config` predicts (within 10%) ----
memory_predicted() {  # memory_predicted LOG: the trainer's "memory: X MiB in use ...; predicted Y MiB"
  python3 - "$work/$1.log" <<'PY'
import re, sys
m = re.search(r"memory: ([0-9.]+) MiB in use .*predicted ([0-9.]+) MiB", open(sys.argv[1], errors="replace").read())
if not m:
    sys.exit("no memory line in the log")
used, predicted = map(float, m.groups())
print(f"     {used:.2f} MiB in use, {predicted:.2f} MiB predicted ({predicted / used - 1:+.1%})")
sys.exit(0 if abs(predicted - used) <= 0.1 * used else 1)
PY
}
check "demo_softpick on cuda: the memory in use is the predicted one" memory_predicted demo_softpick_cuda

# ---- checkpoints move between devices: cuda -> cpu and cpu -> cuda ----
# Each hop trains steps 0-5 on one device (a checkpoint at step 6) and then 6-11 on the other; the steps
# after the hop must follow a straight run on the first device (the checkpoint holds the fp32 master
# weights and moments, so the second device continues the same run).
tiny=("$ROOT/tests/configs/tiny.json" --model.hidden_size=64 --model.num_heads=2 --model.num_kv_heads=1
      --training.steps=12 --checkpoint.interval=6 --lr_scheduler.warmup_steps=2 --logging.eval_interval=6)
for pair in "cuda cpu" "cpu cuda"; do
  set -- $pair
  first=$1 second=$2
  SOFTPICK_FAULT=error-at-step:6 run "hop_${first}_${second}" "${tiny[@]}" --training.device=$first
  run "hop_${first}_${second}" "${tiny[@]}" --training.device=$second
  check "a $first checkpoint resumes on $second" grep -q "resuming from .*step_00000006" "$work/hop_${first}_${second}.log"
  run "straight_$first" "${tiny[@]}" --training.device=$first
  [ "$first" = cuda ] && check "tiny on cuda: the memory in use is the predicted one" memory_predicted straight_cuda
  check "after the hop, $second continues the $first run's curve" close_losses "hop_${first}_${second}" "straight_$first" 2e-2 6
done

# ---- the other sink remedies train on cuda along the cpu's curve (the gated run in the predicted memory) ----
for variant in attention=softmax1 attention=sink attention_gate=true; do
  name="${variant//[=_]/-}"
  for dev in cpu cuda; do run "remedy_${name}_$dev" "${tiny[@]}" --model.$variant --training.device=$dev; done
  check "model.$variant: 12 steps on cuda follow the cpu loss curve" close_losses "remedy_${name}_cuda" \
    "remedy_${name}_cpu" 2e-2
done
check "model.attention_gate on cuda: the memory in use is the predicted one" memory_predicted \
  remedy_attention-gate-true_cuda

# ---- activation checkpointing: the same run, bit for bit, in the predicted (smaller) memory ----
for ac in attention full; do
  run "recompute_$ac" "${tiny[@]}" --training.device=cuda --training.activation_checkpointing=$ac
  check "activation_checkpointing=$ac on cuda repeats the run exactly" close_losses "recompute_$ac" straight_cuda 0
  check "activation_checkpointing=$ac on cuda: the memory in use is the predicted one" memory_predicted "recompute_$ac"
done

# ---- the atomic attention backward: the same run up to the order of dq's fp32 sums ----
# At T = 160 (three key blocks of 64) every dq row gets up to three atomic additions.
run deterministic_t160 "${tiny[@]}" --training.device=cuda --training.seq_len=160
run atomic_dq "${tiny[@]}" --training.device=cuda --training.seq_len=160 --training.attention_backward=atomic
check "attention_backward=atomic on cuda follows the deterministic run" close_losses atomic_dq deterministic_t160 1e-3
check "attention_backward=atomic on cuda: the memory in use is the predicted one" memory_predicted atomic_dq

# ---- 2 GPUs over NCCL equal one GPU with the doubled batch; ZeRO-1 equals stage 0 ----
if [ "${SOFTPICK_TEST_NO_MPI:-0}" = 1 ]; then
  echo "the 2-rank checks are not run: SOFTPICK_TEST_NO_MPI=1 (a build without MPI)"
elif command -v mpirun >/dev/null; then
  run one_b8 "${tiny[@]}" --model.attention=softmax --training.device=cuda --training.batch_size=8
  for z in 0 1; do
    mpirun -np 2 --bind-to none "$SOFTPICK" train "${tiny[@]}" --model.attention=softmax "${quiet[@]}" --training.device=cuda \
      --training.batch_size=4 --distributed.zero_stage=$z --training.run_dir="$work/two_b4_z$z" >"$work/two_b4_z$z.log" 2>&1
  done
  check "2 ranks reduce over NCCL" grep -q "2 rank(s) (nccl)" "$work/two_b4_z1.log"
  check "2 cuda ranks x B=4 equal 1 cuda rank x B=8" close_losses two_b4_z0 one_b8 1e-4
  check "ZeRO-1 equals zero_stage 0 on 2 cuda ranks" close_losses two_b4_z1 two_b4_z0 1e-4
  mpirun -np 2 --bind-to none "$SOFTPICK" train "${tiny[@]}" --model.attention=softmax "${quiet[@]}" --training.device=cuda \
    --training.batch_size=4 --distributed.reduce_dtype=bf16 --training.run_dir="$work/two_b4_bf16" >"$work/two_b4_bf16.log" 2>&1
  check "gradients reduced in bf16 follow the fp32 reduction on 2 cuda ranks" close_losses two_b4_bf16 two_b4_z1 1e-3
  check "gradients reduced in bf16 are rounded (the curve is not the fp32 one)" python3 -c "
import json, sys
l = lambda n: [r['loss'] for r in map(json.loads, open('$work/' + n + '/metrics.jsonl')) if r['type'] == 'train']
sys.exit(0 if l('two_b4_bf16') != l('two_b4_z1') else 1)"
fi

finish
