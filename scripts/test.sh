#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds Quiver with its tests and runs the
# whole suite; ends with ctest's summary. Fixtures are read from
# $QUIVER_FIXTURES (default ../shared/fixtures); tests needing absent
# fixtures or a GPU skip with a message.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
# The lint gate first (seconds): formatting and include order.
scripts/lint.sh
# Benchmarks whose peers are installed (scripts/setup.sh bench) build too;
# the others are skipped by CMake.
scripts/build.sh -DQUIVER_BUILD_TESTS=ON -DQUIVER_BUILD_BENCH=ON -DQUIVER_WERROR=ON
cd "${QUIVER_BUILD_DIR:-build}"
ctest --output-on-failure -j "${QUIVER_JOBS:-$(nproc)}" --timeout 600
