#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite. Safe to re-run.
# Tests labelled "gpu" run only where a GPU is visible (nvidia-smi lists one).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

step "install Debian packages"
install_debian_packages
step "install Python packages"
install_python_packages
step "configure and build ($SOFTPICK_BUILD)"
configure_and_build

step "run the tests"
exclude=(-LE gpu)
if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q GPU; then
  exclude=()
  echo "GPU found: gpu tests included"
else
  echo "no GPU: gpu tests excluded"
fi
cd "$SOFTPICK_BUILD"
# One test at a time: each one uses every core through OpenMP, and two at once would oversubscribe them.
ctest --output-on-failure "${exclude[@]}"
