#!/usr/bin/env bash
# The main job: installs missing packages (as root), builds the release preset and
# runs a node with the examples' config until SIGINT/SIGTERM.
#   tools/run.sh [CONFIG]       default: examples/service/config.yaml
# Today the node is the hello example running alone; the supervisor and the
# cluster node take its place when their issues land.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-examples/service/config.yaml}
tools/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target hello-node
exec build/release/examples/service/hello-node "$config"
