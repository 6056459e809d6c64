#!/usr/bin/env bash
# The checks that need a GPU, in one run (for a machine with nvcc and a
# visible NVIDIA GPU): builds with the CUDA backend, runs the CUDA op tests
# and the BERT-vs-PyTorch test on CUDA (they must pass, not skip), then the
# embedding benchmark on the GPU (target: within 2x of the GEMM bound it
# prints). Output goes to stdout and, when $OUT is set, to $OUT/gpu-check.log.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { if [[ -n "${OUT:-}" ]]; then tee -a "$OUT/gpu-check.log"; else cat; fi; }
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  scripts/build.sh -DQUIVER_ENABLE_CUDA=ON
  # GTest prints "[  SKIPPED ]" for a skip: a GPU run must have none.
  for t in "build/tests/nn_test --gtest_filter=*cuda*" "build/tests/embed_test --gtest_filter=*Cuda*"; do
    out=$($t 2>&1) || { echo "$out"; echo "FAILED: $t"; exit 1; }
    echo "$out" | tail -4
    if echo "$out" | grep -q "SKIPPED \]"; then echo "SKIPPED (no GPU visible?): $t"; exit 1; fi
  done
  build/bench/embed_bench --device=cuda
} 2>&1 | log
