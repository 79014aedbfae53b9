#!/usr/bin/env bash
# Runs lm-evaluation-harness on a directory written by `softpick export`, in the cached environment of
# scripts/hf_env.sh (installed on first use). The model's attention comes with it: the exported modeling
# code is loaded with trust_remote_code, so nothing has to be installed into lm-eval (docs/evaluation.md).
#
#   scripts/lm_eval.sh DIR TASKS [LM_EVAL_ARGS ...]
#
#   DIR      an export (softpick export RUN --out DIR)
#   TASKS    lm-eval task names, comma-separated (arc_easy,arc_challenge,lambada_openai,piqa,sciq,wikitext)
#   LM_EVAL_ARGS are passed on, e.g. --limit 100, --include_path tests/lm_eval, --log_samples
#
# Settings (environment): DEVICE (cpu, or cuda where there is a GPU; default: cuda if one is visible),
# DTYPE (float32 | bfloat16; default float32), BATCH_SIZE (default 16), OUT (results directory, default
# DIR/lm_eval), BOS (1: every request starts with BOS as in training, the default; 0: lm-eval's default of
# no BOS), LOGITS_CACHE (0, the default: lm-eval's HF logits cache off; see below). Zero-shot unless
# --num_fewshot is passed.
#
# The logits cache is off because lm-eval 0.4.13 scores two requests whose context + continuation are the
# same tokens split differently ("the quick brown" + " fox" and "the quick" + " brown fox") from one
# cached forward and gets the shorter continuation's log-likelihood wrong (tests/lm_eval/tiny_qa.jsonl has
# such a pair; tests/test_hf_interop.py compares every log-likelihood with softpick eval). Off, every
# request gets its own forward: slower only for tasks whose choices are single tokens.
set -euo pipefail
if [ $# -lt 2 ]; then
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
fi
dir="$1"; tasks="$2"; shift 2
if [ ! -f "$dir/config.json" ]; then
  echo "lm_eval.sh: $dir/config.json is missing; pass a directory written by softpick export" >&2
  exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$("$root/scripts/hf_env.sh")"
device="${DEVICE:-$(command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q GPU && echo cuda || echo cpu)}"
bos=$([ "${BOS:-1}" = 1 ] && echo True || echo False)
export TOKENIZERS_PARALLELISM=false
exec "$py" -m lm_eval run --model hf \
  --model_args "pretrained=$dir,trust_remote_code=True,add_bos_token=$bos,dtype=${DTYPE:-float32},logits_cache=$([ "${LOGITS_CACHE:-0}" = 1 ] && echo True || echo False)" \
  --trust_remote_code --tasks "$tasks" --device "$device" --batch_size "${BATCH_SIZE:-16}" \
  --output_path "${OUT:-$dir/lm_eval}" "$@"
