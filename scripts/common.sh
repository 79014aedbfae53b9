# Shared by scripts/*.sh: step banners, a loud failure message naming the step, and the set-up steps.
# Source it; do not run it.

set -euo pipefail

SOFTPICK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SOFTPICK_BUILD="${SOFTPICK_BUILD:-$SOFTPICK_ROOT/build}"
SOFTPICK_DEMO_DATA="$SOFTPICK_ROOT/data/demo"
CURRENT_STEP="start"

step() {
  CURRENT_STEP="$*"
  printf '\n==> %s\n' "$*"
}

on_error() {
  printf '\nFAILED at step: %s (see the output above)\n' "$CURRENT_STEP" >&2
}
trap on_error ERR

# Debian packages the build and the tests need (Debian bookworm names).
DEBIAN_PACKAGES=(build-essential cmake pkg-config nlohmann-json3-dev libspdlog-dev catch2 libopenmpi-dev
                 openmpi-bin libopenblas-openmp-dev python3 python3-pip fortunes fortunes-min)
# PyPI packages the Python scripts and tests need.
PYTHON_PACKAGES=(tokenizers safetensors numpy matplotlib)

install_debian_packages() {
  local missing=()
  for p in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "Debian packages: all present"
    return
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; return 1; }
    sudo="sudo"
  fi
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_python_packages() {
  local missing=()
  for p in "${PYTHON_PACKAGES[@]}"; do
    python3 -c "import $p" 2>/dev/null || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "Python packages: all present"
    return
  fi
  echo "pip installing: ${missing[*]}"
  python3 -m pip install -q "${missing[@]}" || python3 -m pip install -q --break-system-packages "${missing[@]}"
}

# True when an NVIDIA GPU is visible here.
gpu_visible() {
  command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q GPU
}

# The CUDA backend of the default build: the real one (nvcc) where a GPU is visible, else the same CUDA
# sources over the CUDA execution harness (docs/cuda_harness.md) where the toolkit's headers exist, so
# --training.device=cuda runs everywhere. SOFTPICK_CMAKE_ARGS overrides (e.g. -DSOFTPICK_CUDA_EMU=OFF).
default_cuda_flags() {
  if gpu_visible; then
    echo "-DSOFTPICK_CUDA_EMU=OFF"
  elif [ -f /usr/local/cuda/include/cuda_runtime.h ] || [ -f "${CUDA_HOME:-/nonexistent}/include/cuda_runtime.h" ]; then
    echo "-DSOFTPICK_CUDA_EMU=ON"
  else
    echo "-DSOFTPICK_CUDA_EMU=OFF"
  fi
}

configure_and_build() {
  # shellcheck disable=SC2046  # the flags are words
  cmake -S "$SOFTPICK_ROOT" -B "$SOFTPICK_BUILD" -DCMAKE_BUILD_TYPE=Release $(default_cuda_flags) ${SOFTPICK_CMAKE_ARGS:-}
  cmake --build "$SOFTPICK_BUILD" -j "$(nproc)"
}

# The real nvcc build for sm_80 and sm_90, with warnings as errors, in its own tree: compiled where nvcc
# exists even without a GPU (the harness build does not exercise nvcc).
SOFTPICK_NVCC_BUILD="${SOFTPICK_NVCC_BUILD:-$SOFTPICK_ROOT/build-nvcc}"
nvcc_available() {
  [ -x /usr/local/cuda/bin/nvcc ] || command -v nvcc >/dev/null
}
build_nvcc_check() {
  cmake -S "$SOFTPICK_ROOT" -B "$SOFTPICK_NVCC_BUILD" -DCMAKE_BUILD_TYPE=Release -DSOFTPICK_CUDA_EMU=OFF \
    -DSOFTPICK_CUDA=ON -DSOFTPICK_WERROR=ON
  cmake --build "$SOFTPICK_NVCC_BUILD" -j "$(nproc)" --target softpick
}

# The demo corpus in $SOFTPICK_DEMO_DATA (English text from the Debian `fortunes` package, byte-level
# tokens; the demo and the sink study train on it), made once, then validated. Needs the build.
prepare_demo_data() {
  local dir="$SOFTPICK_DEMO_DATA"
  if ls "$dir"/demo_train_*.bin >/dev/null 2>&1 && ls "$dir"/demo_val_*.bin >/dev/null 2>&1; then
    echo "already prepared (delete $dir to rebuild it)"
  else
    local fortunes=()
    for f in /usr/share/games/fortunes/*; do
      case "$f" in *.dat|*.u8) continue ;; esac
      [ -f "$f" ] && fortunes+=("$f")
    done
    python3 "$SOFTPICK_ROOT/scripts/prepare_data.py" --input "${fortunes[@]}" --format text --doc-separator % \
      --encoding-errors replace --tokenizer byte --val-fraction 0.05 --out-dir "$dir" --name demo
  fi
  "$SOFTPICK_BUILD/softpick" data inspect "$dir"/demo_train_*.bin "$dir"/demo_val_*.bin --vocab-size=259 --decode=200
}
