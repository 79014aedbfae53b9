#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite. Safe to re-run.
# Tests labelled "gpu" run only where a GPU is visible (nvidia-smi lists one); without one, the build's
# CUDA backend runs on the CUDA execution harness and the "cuda" tests exercise it, and the real nvcc
# build is compiled (not run) where nvcc exists.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

step "install Debian packages"
install_debian_packages
step "install Python packages"
install_python_packages
step "configure and build ($SOFTPICK_BUILD)"
configure_and_build

if nvcc_available && ! gpu_visible; then
  step "compile the nvcc build for sm_80 and sm_90, warnings as errors ($SOFTPICK_NVCC_BUILD)"
  build_nvcc_check
fi

step "run the tests"
exclude=(-LE gpu)
if gpu_visible; then
  exclude=()
  echo "GPU found: gpu tests included"
else
  echo "no GPU: gpu tests excluded; the cuda tests run on the CUDA execution harness"
fi
cd "$SOFTPICK_BUILD"
# One test at a time: each one uses every core through OpenMP, and two at once would oversubscribe them.
ctest --output-on-failure "${exclude[@]}"
