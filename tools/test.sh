#!/usr/bin/env bash
# The one command that builds cppskynet and passes all its tests on a fresh
# Debian 12 machine: installs missing packages (as root), then for each preset
# configures, builds and runs ctest.
#   tools/test.sh              presets dev, asan (ASan + UBSan) and tsan
#   tools/test.sh tsan         only the given presets
set -euo pipefail
cd "$(dirname "$0")/.."

presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(dev asan tsan)

extras=()
for p in "${presets[@]}"; do [ "$p" = fuzz ] && extras+=(fuzz); done
tools/install-deps.sh "${extras[@]}"

for p in "${presets[@]}"; do
  echo "=== preset $p"
  cmake --preset "$p"
  cmake --build --preset "$p"
  ctest --preset "$p"
done
