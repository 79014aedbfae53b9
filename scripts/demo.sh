#!/usr/bin/env bash
# The main job on the built-in default: installs what is missing, builds, prepares the demo corpus (English
# text from the Debian `fortunes` package, byte-level tokens) and checks the shards. Safe to re-run.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

step "install Debian packages"
install_debian_packages
step "install Python packages"
install_python_packages
step "configure and build ($SOFTPICK_BUILD)"
configure_and_build

DEMO_DIR="$SOFTPICK_ROOT/data/demo"
step "prepare the demo corpus ($DEMO_DIR)"
if ls "$DEMO_DIR"/demo_train_*.bin >/dev/null 2>&1 && ls "$DEMO_DIR"/demo_val_*.bin >/dev/null 2>&1; then
  echo "already prepared (delete $DEMO_DIR to rebuild it)"
else
  fortunes=()
  for f in /usr/share/games/fortunes/*; do
    case "$f" in *.dat|*.u8) continue ;; esac
    [ -f "$f" ] && fortunes+=("$f")
  done
  python3 "$SOFTPICK_ROOT/scripts/prepare_data.py" --input "${fortunes[@]}" --format text --doc-separator % --encoding-errors replace \
    --tokenizer byte --val-fraction 0.05 --out-dir "$DEMO_DIR" --name demo
fi

step "validate the demo shards"
"$SOFTPICK_BUILD/softpick" data inspect "$DEMO_DIR"/demo_train_*.bin "$DEMO_DIR"/demo_val_*.bin \
  --vocab-size=259 --decode=200
