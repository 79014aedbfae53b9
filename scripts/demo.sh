#!/usr/bin/env bash
# The main job on the built-in default: installs what is missing, builds, prepares the demo corpus (English
# text from the Debian `fortunes` package, byte-level tokens), checks the shards, then trains a small
# softpick model and a small softmax model on the CPU (about ten minutes on 2 cores). Safe to re-run.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

step "install Debian packages"
install_debian_packages
step "install Python packages"
install_python_packages
step "configure and build ($SOFTPICK_BUILD)"
configure_and_build

step "prepare and validate the demo corpus ($SOFTPICK_DEMO_DATA)"
prepare_demo_data

# Train the demo models on the CPU: softpick first, then softmax for comparison. Each prints its progress,
# validation loss and text samples; metrics land in runs/demo_*/metrics.jsonl. Extra arguments are passed
# on as config overrides (e.g. scripts/demo.sh --training.steps=200).
for attention in softpick softmax; do
  run_dir="$SOFTPICK_ROOT/runs/demo_$attention"
  step "train configs/demo_$attention.json on the CPU (run directory $run_dir)"
  rm -rf "$run_dir"  # the demo always starts fresh
  (cd "$SOFTPICK_ROOT" && "$SOFTPICK_BUILD/softpick" train "configs/demo_$attention.json" \
    --training.run_dir="$run_dir" "$@")
done

step "measure what the paper measures: sink rate, kurtosis, activations, attention sparsity"
for attention in softpick softmax; do
  "$SOFTPICK_BUILD/softpick" analyze "$SOFTPICK_ROOT/runs/demo_$attention" --samples 16 \
    --dump-attention 3:0 --dump-dir "$SOFTPICK_ROOT/runs/demo_$attention/analysis"
done

step "compare the two runs (table, loss curves, activations, attention maps)"
compare="$SOFTPICK_ROOT/runs/demo_compare"
mkdir -p "$compare"
python3 "$SOFTPICK_ROOT/scripts/compare_runs.py" "$SOFTPICK_ROOT/runs/demo_softpick" "$SOFTPICK_ROOT/runs/demo_softmax" \
  --out-dir "$compare"
python3 "$SOFTPICK_ROOT/scripts/plot_attention.py" "$SOFTPICK_ROOT/runs/demo_softmax/analysis/attention_L3_H0.npy" \
  "$SOFTPICK_ROOT/runs/demo_softpick/analysis/attention_L3_H0.npy" --titles softmax softpick \
  --out "$compare/attention_L3_H0.png"
echo "pictures in $compare"

step "what the demo reproduced of the paper's claims"
python3 "$SOFTPICK_ROOT/scripts/demo_summary.py" "$SOFTPICK_ROOT/runs/demo_softmax" "$SOFTPICK_ROOT/runs/demo_softpick"
