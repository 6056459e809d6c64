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
# The real clients the compatibility tests drive, from the npm registry,
# pinned; kept in the build directory (skipped when already there).
clients="${QUIVER_BUILD_DIR:-build}/npm-clients"
if [[ ! -f "$clients/node_modules/openai/package.json" ||
      ! -f "$clients/node_modules/@pinecone-database/pinecone/package.json" ]]; then
  mkdir -p "$clients"
  npm install --prefix "$clients" --no-audit --no-fund --silent openai@7.60.0 \
      @pinecone-database/pinecone@8.2.0 ||
    echo "test: npm install failed; the client compatibility tests will skip" >&2
fi
# For the 30-minute CI budget: -g1 (line tables, enough for backtraces)
# rather than -g compiles a quarter faster and links much faster; the
# tests' own sources at -O1 (QUIVER_TEST_OPT; the code under test stays
# -O2); the benchmarks are not built (scripts/build.sh builds them, those
# whose peers scripts/setup.sh bench installs).
scripts/build.sh -DQUIVER_BUILD_TESTS=ON -DQUIVER_BUILD_BENCH=OFF -DQUIVER_WERROR=ON \
    -DQUIVER_TEST_OPT=-O1 \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG"
# The sanitizer gate (clang): unit suites under ASan + UBSan, every fuzzer
# for 10 s, the common, ann and db suites under TSan. QUIVER_SANITIZE_GATE=0 skips it
# (a quick local loop); CI runs it.
if [[ "${QUIVER_SANITIZE_GATE:-1}" != 0 ]]; then
  scripts/sanitize.sh "${QUIVER_FUZZ_SECONDS:-10}"
fi
cd "${QUIVER_BUILD_DIR:-build}"
ctest --output-on-failure -j "${QUIVER_JOBS:-$(nproc)}" --timeout 600
