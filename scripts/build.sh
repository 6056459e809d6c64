#!/usr/bin/env bash
# Configures and builds Quiver into ./build (RelWithDebInfo by default).
# Usage: scripts/build.sh [extra cmake -D options]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${QUIVER_BUILD_DIR:-build}
BUILD_TYPE=${QUIVER_BUILD_TYPE:-RelWithDebInfo}
JOBS=${QUIVER_JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" "$@"
cmake --build "$BUILD_DIR" -j "$JOBS"
