#!/usr/bin/env bash
# Runs a Python test with the interpreter of the cached Hugging Face environment (scripts/hf_env.sh installs
# it the first time: torch, transformers, lm-eval), so those packages stay out of the plain build.
# Usage: tests/run_with_hf_env.sh TEST.py [ARGS...]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$("$root/scripts/hf_env.sh")"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$root/tests${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" "$@" </dev/null
