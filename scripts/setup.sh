#!/usr/bin/env bash
# Installs the Debian packages Quiver needs for one purpose:
#   scripts/setup.sh server   build and run quiverd and the quiver CLI (default)
#   scripts/setup.sh test     + GoogleTest/GoogleMock, python3-torch (the
#                             reference outputs some tests compare against),
#                             clang-format (the lint gate), Node.js and npm
#                             (the official OpenAI client the compatibility
#                             tests drive; scripts/test.sh installs it),
#                             python3-grpcio and python3-protobuf (the Python
#                             example client's test), clang and its sanitizer
#                             runtimes (scripts/sanitize.sh: ASan, UBSan,
#                             TSan, libFuzzer)
#   scripts/setup.sh bench    + the benchmark peers (hnswlib, faiss, Xapian, torch)
# Idempotent: packages already present are skipped; apt-get update runs once
# only when something is missing.
set -euo pipefail

profile=${1:-server}
server=(
  build-essential cmake pkg-config git
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev libabsl-dev libopenblas-dev libicu-dev libcpp-httplib-dev
)
test=(libgtest-dev libgmock-dev googletest python3-torch python3-grpcio python3-protobuf clang-format clang libclang-rt-14-dev nodejs
      openssl)
# npm: Debian's package, unless a Node.js from elsewhere (NodeSource) already
# brings its own (Debian's npm would conflict with it).
if ! command -v npm >/dev/null 2>&1; then test+=(npm); fi
bench=(libhnswlib-dev libfaiss-dev libxapian-dev)
case "$profile" in
  server) packages=("${server[@]}") ;;
  test) packages=("${server[@]}" "${test[@]}") ;;
  bench) packages=("${server[@]}" "${test[@]}" "${bench[@]}") ;;
  *) echo "setup: unknown profile '$profile' (server, test or bench)" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup ($profile): all ${#packages[@]} packages already installed"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "setup ($profile): installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
