#!/usr/bin/env bash
# Installs what softpick needs (Debian and Python packages) and builds it. Safe to re-run.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

step "install Debian packages"
install_debian_packages
step "install Python packages"
install_python_packages
step "configure and build ($SOFTPICK_BUILD)"
configure_and_build
echo "built $SOFTPICK_BUILD/softpick"
