#!/usr/bin/env bash
# The installed package end to end: `cmake --install` this build into a temp prefix, build
# examples/external (a user's own worker, greeter-worker) against it with find_package,
# start a node under the installed supervisor with the installed stock worker, add the
# greeter's services to the config, and `cppskynet upgrade --worker greeter-worker`: the
# node now answers with the user's service, on the same port, without a restart.
#
# usage: external_test.sh BUILD_DIR SOURCE_DIR
# Waits are polls with deadlines (no fixed sleeps); every step's output is in $work.
set -euo pipefail
build=$1
src=$2
work=$(mktemp -d /tmp/csk_install_test.XXXXXX)
sup_pid=""
cleanup() {
  if [ -n "$sup_pid" ] && kill -0 "$sup_pid" 2>/dev/null; then
    kill -TERM "$sup_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$sup_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$sup_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.log; do echo "--- $f" >&2; tail -n 40 "$f" >&2; done
  exit 1
}
# until CMD...: retries every 0.1 s for at most 30 s
until_ok() {
  for _ in $(seq 300); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  return 1
}

cmake --install "$build" --prefix "$work/prefix" > "$work/install.log" 2>&1 || fail "cmake --install"
[ -f "$work/prefix/lib/cmake/cppskynet/cppskynetConfig.cmake" ] || fail "no package config installed"
[ -f "$work/prefix/include/cppskynet/worker/worker_main.hpp" ] || fail "headers not installed"
cmake -S "$src/examples/external" -B "$work/ext" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  > "$work/configure.log" 2>&1 || fail "configuring examples/external against the package"
cmake --build "$work/ext" > "$work/build.log" 2>&1 || fail "building greeter-worker"
[ -x "$work/ext/greeter-worker" ] || fail "no greeter-worker"

cli="$work/prefix/bin/cppskynet"
cat > "$work/names.yaml" <<YAML
__nowaiting: true
YAML
write_config() {  # $1: extra services
  cat > "$work/node.yaml" <<YAML
runtime: {threads: 2}
cluster: {self: n1, listen: "127.0.0.1:0", names_file: names.yaml}
supervisor:
  worker: $work/prefix/bin/cppskynet-worker
  control_socket: $work/ctl.sock
services:
  - {type: echo, names: ["@echo"]}
$1
YAML
}
write_config ""
"$cli" run -c "$work/node.yaml" > "$work/supervisor.log" 2>&1 &
sup_pid=$!
until_ok grep -q "ready in" "$work/supervisor.log" || fail "the node did not get ready"
port=$(sed -n 's/.*listener cluster bound to 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/supervisor.log" | head -n 1)
[ -n "$port" ] || fail "no cluster port in the log"
"$cli" call "127.0.0.1:$port" @echo hi > "$work/call1.log" 2>&1 || fail "calling the stock worker"
grep -q '"hi"' "$work/call1.log" || fail "unexpected echo answer"
if "$cli" call "127.0.0.1:$port" @greeter greet bob > "$work/call2.log" 2>&1; then
  fail "the stock worker has no greeter service, yet it answered"
fi

# The user's services, for the new worker (a worker reads the config when it starts).
write_config '  - {type: greeter, names: ["@greeter"]}
  - {type: "entity:greeter.visits", names: [.visits]}'
"$cli" upgrade --socket "$work/ctl.sock" --worker "$work/ext/greeter-worker" > "$work/upgrade.log" 2>&1 \
  || fail "cppskynet upgrade --worker greeter-worker"
grep -q "upgrade: ok" "$work/upgrade.log" || fail "no verdict"
"$cli" call "127.0.0.1:$port" @greeter greet bob > "$work/call3.log" 2>&1 || fail "calling the user's service"
grep -q 'hello, bob (from greeter-worker)' "$work/call3.log" || fail "unexpected greeting"
"$cli" call "127.0.0.1:$port" @greeter greet bob > "$work/call4.log" 2>&1 || fail "second greeting"
grep -q ',2\]' "$work/call4.log" || fail "the visit count did not reach 2"
"$cli" status --socket "$work/ctl.sock" --json > "$work/status.log" 2>&1 || fail "status"
grep -q 'greeter-worker' "$work/status.log" || fail "status does not name the new worker binary"
"$cli" stop --socket "$work/ctl.sock" > "$work/stop.log" 2>&1 || fail "stop"
sup_pid=""
echo "ok: installed package -> greeter-worker built -> node upgraded to it on port $port"
