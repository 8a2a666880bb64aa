#!/usr/bin/env bash
# The main job: installs missing packages (as root), builds the release preset and runs
# the example cluster node (examples/cluster1) under its supervisor, until SIGINT/SIGTERM:
#   cppskynet run -c CONFIG    (binds the listeners, runs cppskynet-worker, restarts it)
#   tools/run.sh [CONFIG]       default: examples/cluster1/config.yaml
# From another shell:  build/release/tools/cli/cppskynet call 127.0.0.1:2528 @echo hi 42
#                      build/release/tools/cli/cppskynet status -c examples/cluster1/config.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-examples/cluster1/config.yaml}
tools/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target cppskynet cppskynet-worker cppskynet-node
exec build/release/tools/cli/cppskynet run -c "$config"
