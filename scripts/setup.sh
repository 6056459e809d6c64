#!/usr/bin/env bash
# Installs the Debian packages Quiver needs to build, test and benchmark.
# Idempotent: packages already present are skipped; apt-get update runs once
# only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev libabsl-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libopenblas-dev libomp-dev libicu-dev
)
if [[ "${QUIVER_SETUP_BENCH_PEERS:-1}" == "1" ]]; then
  packages+=(libhnswlib-dev libfaiss-dev libxapian-dev python3-torch)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
