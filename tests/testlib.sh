# Shared by the shell tests (tests/test_*.sh): a work directory removed at exit, counted checks, random
# token shards, and the closing count line. Source it after setting SOFTPICK and ROOT.

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

check() {  # check NAME COMMAND...: runs a check, counts it
  local name="$1"
  shift
  if "$@"; then
    echo "ok   $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    failed=$((failed + 1))
  fi
}

# write_shards SEED MAX_TOKEN: $work/d_train.bin (200,000 tokens) and $work/d_val.bin (20,000), uint16
# tokens uniform in [3, MAX_TOKEN] with a BOS (1) at 2% of the positions
write_shards() {
  python3 - "$work" "$1" "$2" <<'PY'
import random, struct, sys
random.seed(int(sys.argv[2]))
hi = int(sys.argv[3])
for name, n in (("train", 200000), ("val", 20000)):
    t = [1 if random.random() < 0.02 else random.randint(3, hi) for _ in range(n)]
    h = [0] * 256
    h[0], h[1], h[2] = 20240520, 1, n
    open(f"{sys.argv[1]}/d_{name}.bin", "wb").write(struct.pack("<256i", *h) + struct.pack(f"<{n}H", *t))
PY
}

# Prints the logs' tails if a check failed, the count line, and returns the result.
finish() {
  if [ "$failed" -ne 0 ]; then
    for f in "$work"/*.log; do echo "---- $f"; tail -n 15 "$f"; done
  fi
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
