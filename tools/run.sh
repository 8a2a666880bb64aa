#!/usr/bin/env bash
# The main job: installs missing packages (as root), builds the release preset and runs
# the example cluster node (examples/cluster1) until SIGINT/SIGTERM.
#   tools/run.sh [CONFIG]       default: examples/cluster1/config.yaml
# Call it from another shell:  build/release/tools/cli/cppskynet call 127.0.0.1:2528 @echo hi 42
# The node runs alone until the supervisor issue puts it under a supervisor.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-examples/cluster1/config.yaml}
tools/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target cppskynet-node cppskynet
exec build/release/worker/cppskynet-node "$config"
