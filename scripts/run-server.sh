#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds Quiver and starts quiverd with its
# embedded defaults (data in ./quiver-data, gRPC on 127.0.0.1:50051).
# Extra arguments go to quiverd, e.g. scripts/run-server.sh --sync=always
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh server
# Its own build directory (Release, no tests): the test command's build/
# (RelWithDebInfo, tests) is left alone, so neither rebuilds the other.
export QUIVER_BUILD_DIR=${QUIVER_BUILD_DIR:-build-release}
QUIVER_BUILD_TYPE=${QUIVER_BUILD_TYPE:-Release} scripts/build.sh -DQUIVER_BUILD_TESTS=OFF -DQUIVER_BUILD_BENCH=OFF
exec "$QUIVER_BUILD_DIR/server/quiverd" "$@"
