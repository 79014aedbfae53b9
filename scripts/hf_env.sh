#!/usr/bin/env bash
# Creates (once per machine) or reuses the virtual environment of the Hugging Face interop tests and of
# scripts/lm_eval.sh: torch, transformers, lm-eval, hqq and bitsandbytes from python/requirements-hf.txt. Prints the path of its
# python on stdout; progress goes to stderr. Safe to run concurrently (a lock serialises installs).
#
#   SOFTPICK_HF_VENV   where the environment lives (default ~/.cache/softpick/hf-venv)
#
# The first run downloads several GB (the PyPI torch wheel with its CUDA libraries, transformers, lm-eval and
# their dependencies) and takes a few minutes; later runs only check that the pinned versions are there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${SOFTPICK_HF_VENV:-$HOME/.cache/softpick/hf-venv}"
req="$root/python/requirements-hf.txt"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
stamp="$venv/.softpick-requirements"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
  echo "$venv/bin/python"
  exit 0
fi
echo "hf_env: installing $req into $venv (the first time downloads several GB)" >&2
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
# DISABLE_CUDA: hqq's setup.py otherwise tries to compile its optional CUDA kernels (the tests use its torch code)
DISABLE_CUDA=1 "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
cp "$req" "$stamp"
echo "$venv/bin/python"
