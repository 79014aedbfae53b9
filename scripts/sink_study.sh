#!/usr/bin/env bash
# The sink study: trains a list of attention variants on the same data, seed and recipe (the demo's model
# and corpus, on the CPU), analyses each as the paper measures (sink rate, kurtosis, activation extremes,
# attention sparsity) and prints one table, with plots: 19 minutes on 2 cores with the defaults
# (docs/reproducing.md has the run and its results).
#
#   scripts/sink_study.sh [--variants softmax,softpick,softmax1,sink,gated_softmax] [--out DIR] [--config FILE]
#                         [--skip-setup] [--section.key=value ...]
#
# A variant is [gated_][scaled_]NORMALISER: NORMALISER is model.attention (softmax, softpick, rectified,
# softmax1, sink), gated_ adds the attention output gate, scaled_ adds SSMax. Every variant trains from
# --config (default configs/demo_softmax.json) with its attention settings and the overrides given, into
# DIR/NAME (default DIR: runs/sink_study); the table and plots go to DIR/compare. Safe to re-run: each
# variant starts fresh. --skip-setup uses the binary in $SOFTPICK_BUILD as it is and the data the config
# names (no build, no demo corpus).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

variants="softmax,softpick,softmax1,sink,gated_softmax"
out="$SOFTPICK_ROOT/runs/sink_study"
config="$SOFTPICK_ROOT/configs/demo_softmax.json"
overrides=()
setup=true
while [ $# -gt 0 ]; do
  case "$1" in
    --variants) variants="${2:?--variants needs a comma-separated list}"; shift 2 ;;
    --variants=*) variants="${1#*=}"; shift ;;
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --out=*) out="${1#*=}"; shift ;;
    --config) config="${2:?--config needs a file}"; shift 2 ;;
    --config=*) config="${1#*=}"; shift ;;
    --skip-setup) setup=false; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --*.*=*) overrides+=("$1"); shift ;;
    *) echo "sink_study.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# NAME -> the attention overrides of that variant (one per line), or a message and exit status 2
variant_overrides() {
  local rest="$1" gate=false ssmax=false
  [[ "$rest" == gated_* ]] && { gate=true; rest="${rest#gated_}"; }
  [[ "$rest" == scaled_* ]] && { ssmax=true; rest="${rest#scaled_}"; }
  case "$rest" in
    softmax|softpick|rectified|softmax1|sink) ;;
    *) echo "sink_study.sh: variant '$1': use [gated_][scaled_]NORMALISER with NORMALISER one of softmax," \
         "softpick, rectified, softmax1, sink" >&2
       return 2 ;;
  esac
  printf '%s\n' "--model.attention=$rest" "--model.attention_gate=$gate" "--model.ssmax=$ssmax"
}

IFS=',' read -r -a names <<< "$variants"
[ ${#names[@]} -gt 0 ] || { echo "sink_study.sh: --variants is empty" >&2; exit 2; }
for name in "${names[@]}"; do variant_overrides "$name" > /dev/null || exit 2; done
[ -f "$config" ] || { echo "sink_study.sh: --config $config: no such file" >&2; exit 2; }

if $setup; then
  step "configure and build ($SOFTPICK_BUILD)"
  configure_and_build
  step "prepare and validate the demo corpus ($SOFTPICK_DEMO_DATA)"
  prepare_demo_data
fi

runs=()
start=$SECONDS
for name in "${names[@]}"; do
  mapfile -t own < <(variant_overrides "$name")
  run_dir="$out/$name"
  step "train $name (${own[*]}) into $run_dir"
  rm -rf "$run_dir"
  (cd "$SOFTPICK_ROOT" && "$SOFTPICK_BUILD/softpick" train "$config" "${own[@]}" "${overrides[@]}" \
    --training.run_dir="$run_dir")
  step "analyse $name"
  "$SOFTPICK_BUILD/softpick" analyze "$run_dir" --samples 16 > "$run_dir/analysis.txt"
  sed -n '1,/^all/p' "$run_dir/analysis.txt"
  runs+=("$run_dir")
done

step "compare the ${#names[@]} variants (same data, seed and recipe; $((SECONDS - start)) s of training and analysis)"
python3 "$SOFTPICK_ROOT/scripts/compare_runs.py" "${runs[@]}" --labels "${names[@]}" --out-dir "$out/compare"
echo "table above; plots (loss.png, analysis.png, summary.png) and each variant's analysis.txt in $out"
