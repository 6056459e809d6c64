#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz; clang with ASan + UBSan) into
# build-sanitize and runs each for SECONDS, two at a time, from a working copy
# of its seed corpus (tests/fuzz/corpus/NAME is only read). A crash, leak,
# sanitizer report, timeout or out-of-memory stops that fuzzer and fails the
# script; the reproducer is left in build-sanitize/fuzz-artifacts/.
#   scripts/fuzz.sh [SECONDS (default 15)] [TARGET...]
# Long local runs: scripts/fuzz.sh 3600 http_fuzz json_fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}
shift || true
build=${QUIVER_SANITIZE_DIR:-build-sanitize}
if [[ ! -x "$build/tests/fuzz/json_fuzz" || "${QUIVER_FUZZ_REBUILD:-1}" == 1 ]]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DQUIVER_SANITIZE=address,undefined,fuzzer-no-link -DQUIVER_FUZZ=ON \
      -DQUIVER_BUILD_BENCH=OFF -DQUIVER_ENABLE_CUDA=OFF -DQUIVER_WERROR=OFF >/dev/null
  cmake --build "$build" -j "${QUIVER_JOBS:-$(nproc)}" --target fuzzers
fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(json_fuzz filter_fuzz record_fuzz analyzer_fuzz tokenizer_json_fuzz
           safetensors_fuzz gguf_fuzz llama2c_fuzz chat_template_fuzz http_fuzz)
fi
mkdir -p "$build/fuzz-artifacts"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
run() {
  local t=$1 corpus="$build/fuzz-corpus/$1"
  mkdir -p "$corpus"
  cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  if "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$t-" \
      "$corpus" >"$build/fuzz-artifacts/$t.log" 2>&1; then
    echo "fuzz: $t ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' \
        "$build/fuzz-artifacts/$t.log" | grep -o '[0-9]*$') runs in ${seconds} s)"
  else
    echo "fuzz: $t FAILED; log: $build/fuzz-artifacts/$t.log" >&2
    tail -40 "$build/fuzz-artifacts/$t.log" >&2
    return 1
  fi
}
status=0
pids=()
for t in "${targets[@]}"; do
  run "$t" &
  pids+=($!)
  if [[ ${#pids[@]} -ge 2 ]]; then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
