#!/usr/bin/env bash
# scripts/sink_study.sh on a tiny model and random shards: every variant trains and is analysed, the table
# has one row per variant with its analysis, the plots are written, and bad arguments are refused.
# Usage: tests/test_sink_study.sh BUILD/softpick
set -uo pipefail
SOFTPICK="$(realpath "$1")"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/tests/testlib.sh"
write_shards 5 200

study=(env SOFTPICK_BUILD="$(dirname "$SOFTPICK")" "$ROOT/scripts/sink_study.sh" --skip-setup
       --config "$ROOT/tests/configs/tiny.json" --out "$work/study" --data.train_files="$work/d_train.bin"
       --data.val_files="$work/d_val.bin" --training.steps=12 --logging.eval_interval=6 --training.threads=1)
check "three variants train and compare" "${study[@]}" --variants softmax,gated_softpick,scaled_sink \
  > "$work/study.log" 2>&1
row() { grep -E "^$1 " "$work/study.log"; }
check "a row per variant, analysed" bash -c "[ \$(grep -cE '^(softmax|gated_softpick|scaled_sink) +12 ' \
  '$work/study.log') = 3 ] && ! grep -E '^(softmax|gated_softpick|scaled_sink) ' '$work/study.log' | grep -q ' - '"
check "the gated run has the gate" grep -q '"attention_gate": true' "$work/study/gated_softpick/config.json"
check "the scaled run has SSMax" grep -q '"ssmax": true' "$work/study/scaled_sink/config.json"
check "its analysis reports the gate" grep -q "output gate" "$work/study/gated_softpick/analysis.txt"
check "softpick's maps have exact zeros, softmax's none" bash -c "
  $(declare -f row); work='$work'
  [ \"\$(row softmax | grep -oE '[0-9.]+%' | tail -1)\" = 0.00% ] &&
  [ \"\$(row gated_softpick | grep -oE '[0-9.]+%' | tail -1)\" != 0.00% ]"
for png in loss summary; do
  check "$png.png written" test -s "$work/study/compare/$png.png"
done

check "an unknown variant is refused" bash -c "! '$ROOT/scripts/sink_study.sh' --variants softmax,quiet 2> '$work/bad.log' &&
  grep -q \"variant 'quiet'\" '$work/bad.log'"
check "an unknown argument is refused" bash -c "! '$ROOT/scripts/sink_study.sh' --bogus 2> '$work/bad2.log' &&
  grep -q \"unknown argument '--bogus'\" '$work/bad2.log'"
finish
