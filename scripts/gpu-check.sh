#!/usr/bin/env bash
# The checks that need a GPU, in one run (for a machine with nvcc and a
# visible NVIDIA GPU): builds with the CUDA backend, runs the CUDA op tests,
# the BERT-vs-PyTorch test on CUDA and the CUDA decode engine's tests (they
# must pass, not skip for want of a GPU), then the embedding benchmark on the
# GPU in float32 and TF32 (target: within 2x of the GEMM bound it prints) and the generation
# benchmark on the GPU. Output goes to stdout and, when $OUT is set, to
# $OUT/gpu-check.log.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { if [[ -n "${OUT:-}" ]]; then tee -a "$OUT/gpu-check.log"; else cat; fi; }
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  scripts/build.sh -DQUIVER_ENABLE_CUDA=ON
  # GTest prints "[  SKIPPED ]" for a skip: a GPU run must have none.
  for t in "build/tests/nn_test --gtest_filter=*BackendTest.*/1:NewBackendTest.*" "build/tests/embed_test --gtest_filter=*Cuda*"; do
    out=$($t 2>&1) || { echo "$out"; echo "FAILED: $t"; exit 1; }
    echo "$out" | tail -4
    if echo "$out" | grep -q "SKIPPED \]"; then echo "SKIPPED (no GPU visible?): $t"; exit 1; fi
  done
  # The decode engine against the CPU one; the scheduler tests on CUDA skip
  # only where the stories260K fixture is absent.
  t="build/tests/llm_test --gtest_filter=CudaEngine*:*SchedulerDevice*/cuda"
  out=$($t 2>&1) || { echo "$out"; echo "FAILED: $t"; exit 1; }
  echo "$out" | grep -E "^\[ +(OK|SKIPPED|FAILED|PASSED) +\]|Skipped|fixture" || true
  if echo "$out" | grep -q "no CUDA GPU visible"; then echo "SKIPPED (no GPU visible?): $t"; exit 1; fi
  build/bench/embed_bench --device=cuda
  build/bench/embed_bench --device=cuda --precision=tf32
  build/bench/generate_bench --device=cuda --quantized=q8_0,f16
} 2>&1 | log
