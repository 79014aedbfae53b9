#!/usr/bin/env bash
# The quantization study: a softmax and a softpick checkpoint quantized with every method at every bit
# width (weights only), plus 8-bit activations on the full-precision weights; each evaluated on the same
# validation tokens (and task files, when given); then the paper's table (method x bits x {softmax,
# softpick}, with the full-precision row) and a plot of the degradation against bits. docs/quantization.md
# has the methods and a run on the demo checkpoints.
#
#   scripts/quant_study.sh [--softmax RUN] [--softpick RUN] [--val SHARDS] [--val-tokens N] [--tasks FILES]
#                          [--methods rtn,hqq,gptq,nf4,fp4,int8] [--bits 2,3,4,8] [--act-quant int8,fp8]
#                          [--calibration SHARDS] [--calibration-sequences N] [--out DIR] [--device cpu|cuda]
#                          [--skip-build]
#
# Defaults: runs/demo_softmax and runs/demo_softpick (scripts/demo.sh trains them), the demo's validation
# shards, every validation window, GPTQ calibrated on the demo's training shards (not on the windows it is
# evaluated on), DIR = runs/quant_study. rtn, hqq and gptq run at each of --bits; nf4 and
# fp4 are 4-bit and int8 8-bit by definition. Quantized checkpoints go to DIR/checkpoints (re-runs replace
# them), evaluations to DIR/eval, the table to DIR/table.md and table.json, the plot to DIR/degradation.png.
# --skip-build uses the binary in $SOFTPICK_BUILD as it is.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

softmax="$SOFTPICK_ROOT/runs/demo_softmax"
softpick="$SOFTPICK_ROOT/runs/demo_softpick"
val="$SOFTPICK_DEMO_DATA/demo_val_*.bin"
val_tokens=""
tasks=""
methods="rtn,hqq,gptq,nf4,fp4,int8"
bits="2,3,4,8"
acts="int8,fp8"
calib=""
calibration="$SOFTPICK_DEMO_DATA/demo_train_*.bin"
out="$SOFTPICK_ROOT/runs/quant_study"
device=""
build=true
need() { [ -n "${2:-}" ] || { echo "quant_study.sh: $1 needs a value (see --help)" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
  case "$1" in
    --softmax|--softpick|--val|--val-tokens|--tasks|--methods|--bits|--act-quant|--calibration|--calibration-sequences|--out|--device)
      need "$1" "${2:-}"; flag="$1"; value="$2"; shift 2 ;;
    --*=*) flag="${1%%=*}"; value="${1#*=}"; need "$flag" "$value"; shift ;;
    --skip-build) build=false; shift; continue ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quant_study.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  case "$flag" in
    --softmax) softmax="$value" ;; --softpick) softpick="$value" ;; --val) val="$value" ;;
    --val-tokens) val_tokens="$value" ;; --tasks) tasks="$value" ;; --methods) methods="$value" ;;
    --bits) bits="$value" ;; --act-quant) acts="$value" ;; --calibration-sequences) calib="$value" ;;
    --calibration) calibration="$value" ;;
    --out) out="$value" ;; --device) device="$value" ;;
    *) echo "quant_study.sh: unknown argument '$flag' (see --help)" >&2; exit 2 ;;
  esac
done

IFS=',' read -r -a method_list <<< "$methods"
IFS=',' read -r -a bit_list <<< "$bits"
IFS=',' read -r -a act_list <<< "${acts:-}"
for m in "${method_list[@]}"; do
  case "$m" in rtn|hqq|gptq|nf4|fp4|int8) ;; *) echo "quant_study.sh: --methods: unknown method '$m'" \
    "(rtn, hqq, gptq, nf4, fp4, int8)" >&2; exit 2 ;; esac
done
for b in "${bit_list[@]}"; do
  [[ "$b" =~ ^[2-8]$ ]] || { echo "quant_study.sh: --bits: '$b' is not a bit width from 2 to 8" >&2; exit 2; }
done
for r in "$softmax" "$softpick"; do
  [ -d "$r" ] || { echo "quant_study.sh: $r: no such run directory (scripts/demo.sh trains the demo ones;" \
    "or pass --softmax RUN --softpick RUN)" >&2; exit 2; }
done

if $build; then
  step "configure and build ($SOFTPICK_BUILD)"
  configure_and_build
fi
sp="$SOFTPICK_BUILD/softpick"

eval_args=(--val "$val")
[ -n "$val_tokens" ] && eval_args+=(--val-tokens "$val_tokens")
[ -n "$tasks" ] && eval_args+=(--tasks "$tasks")
[ -n "$device" ] && eval_args+=(--device "$device")
quant_args=(--overwrite)
[ -n "$device" ] && quant_args+=(--device "$device")
mkdir -p "$out/eval" "$out/checkpoints"
rm -f "$out"/eval/*.json
start=$SECONDS
for label in softmax softpick; do
  if [ "$label" = softmax ]; then run="$softmax"; else run="$softpick"; fi
  step "$label: full precision ($run)"
  "$sp" eval "$run" "${eval_args[@]}" --json "$out/eval/$label-full.json" | grep -E "^(validation|quantized)"
  for act in "${act_list[@]}"; do
    [ -n "$act" ] || continue
    step "$label: $act activations, full-precision weights"
    "$sp" eval "$run" "${eval_args[@]}" --act-quant "$act" --json "$out/eval/$label-act-$act.json" \
      | grep -E "^(validation|quantized)"
  done
  for m in "${method_list[@]}"; do
    case "$m" in nf4|fp4) widths=(4) ;; int8) widths=(8) ;; *) widths=("${bit_list[@]}") ;; esac
    for b in "${widths[@]}"; do
      step "$label: $m at $b bits"
      ckpt="$out/checkpoints/$label-$m$b"
      extra=()
      if [ "$m" = gptq ]; then
        extra+=(--calibration "$calibration")
        [ -n "$calib" ] && extra+=(--calibration-sequences "$calib")
      fi
      "$sp" quantize "$run" --method "$m" --bits "$b" --out "$ckpt" "${quant_args[@]}" "${extra[@]}" 2>&1 | tail -1
      "$sp" eval "$ckpt" "${eval_args[@]}" --json "$out/eval/$label-$m-$b.json" | grep -E "^(validation|quantized)"
    done
  done
done

step "the table ($((SECONDS - start)) s of quantization and evaluation)"
python3 "$SOFTPICK_ROOT/scripts/quant_table.py" "$out/eval" --out-dir "$out"
