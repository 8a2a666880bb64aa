#!/usr/bin/env bash
# Installs the Debian 12 packages cppskynet builds and tests with, when missing.
# Needs root for apt-get; prints what is missing and fails otherwise.
#   tools/install-deps.sh            build + test dependencies
#   tools/install-deps.sh fuzz       also clang and its libFuzzer runtime
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libasio-dev libspdlog-dev libyaml-cpp-dev libcereal-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libhiredis-dev redis-server
  libmariadb-dev mariadb-server
  libgoogle-perftools-dev google-perftools
  liblua5.4-dev
  make  # the live interop tests build the real Lua skynet peer (../shared/skynet-peer/build.sh)
)
for extra in "$@"; do
  case "$extra" in
    fuzz) packages+=(clang libclang-rt-14-dev) ;;
    *) echo "install-deps: unknown extra '$extra'" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
