// A host emulation of the part of the CUDA programming model our kernels
// use, so that the CUDA engines' code runs (slowly, exactly as written) on
// machines without a GPU: the kernels of llm/cuda_kernels.cu and
// nn/cuda_kernels.cu compiled by the host compiler (kernels.cc includes them
// after this header), and the CUDA runtime and cuBLAS calls of
// llm/cuda_engine.cc and nn/cuda_backend.cc answered by runtime.cc and
// cublas.cc instead of libcudart / libcublas (the emulation test binary
// links those objects ahead of the real libraries).
//
// Semantics kept: every thread of a block is a fiber on one OS thread;
// __syncthreads() is a block barrier, __shfl_xor_sync() a warp barrier
// with the exchange; __shared__ variables are shared by a block's threads.
// Blocks run one after another, a launch runs to completion before it
// returns (stream order trivially holds).
//
// Checked, aborting with a message (a GPU would misbehave silently):
//   - a __syncthreads() some threads of the block never reach, or reach
//     after others exited;
//   - a full-warp shuffle some lanes never reach (exited, or waiting on a
//     block barrier), or whose lanes disagree on the lane mask;
//   - a kernel argument of pointer type that is neither null nor inside a
//     device allocation (a host pointer passed to a kernel);
//   - cudaMemcpy whose source / destination kind does not match where the
//     pointers live;
//   - writes past either end of a device allocation (guard bytes checked
//     after every launch and at cudaFree); an access that lands on the
//     inaccessible page on either side of every allocation faults.
// Fresh device memory is filled with 0xFF bytes (NaN floats, -1 ints), so a
// kernel that reads what nobody wrote shows it in its results.
#ifndef QUIVER_TESTS_CUDA_EMULATION_EMULATOR_H_
#define QUIVER_TESTS_CUDA_EMULATION_EMULATOR_H_

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>

#include "tests/cuda_emulation/device_memory.h"

namespace quiver::cuda_emulation {

// The running thread's coordinates (valid inside a kernel).
extern uint3 thread_idx, block_idx;
extern dim3 block_dim, grid_dim;

// Block barrier.
void SyncThreads();
// Lane (lane ^ lane_mask)'s `bits` for every lane of the warp.
uint32_t ShuffleXor(uint32_t bits, int lane_mask);

// Reports a misuse of the programming model (see above) and aborts.
[[noreturn]] void Fail(const char* what);

// True when [p, p + bytes) lies inside one device allocation.
bool IsDeviceMemory(const void* p, size_t bytes = 1);
// Fails unless p is null or device memory.
void CheckKernelPointer(const void* p);
// Fails if anything wrote over the guard bytes around a device allocation.
void CheckDeviceGuards();

// Runs body() as every thread of every block of the grid.
void RunGrid(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body);

template <typename T>
void CheckArgument(const T& value) {
  if constexpr (std::is_pointer_v<T>) CheckKernelPointer(value);
}

// What kernel<<<grid, block, shared, stream>>> becomes: a callable taking
// the kernel's arguments.
template <typename... Params>
auto Launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
            cudaStream_t /*stream*/) {
  return [=](auto&&... args) {
    std::tuple<std::decay_t<Params>...> params(args...);
    std::apply([](const auto&... p) { (CheckArgument(p), ...); }, params);
    RunGrid(grid, block, shared_bytes, [&] { std::apply(kernel, params); });
  };
}

}  // namespace quiver::cuda_emulation

// The device-side names the kernels use.
#define threadIdx (::quiver::cuda_emulation::thread_idx)
#define blockIdx (::quiver::cuda_emulation::block_idx)
#define blockDim (::quiver::cuda_emulation::block_dim)
#define gridDim (::quiver::cuda_emulation::grid_dim)
#undef __shared__
#define __shared__ static
#define QUIVER_CUDA_LAUNCH(kernel, grid, block, shared, stream) \
  ::quiver::cuda_emulation::Launch(kernel, grid, block, shared, stream)

inline void __syncthreads() { ::quiver::cuda_emulation::SyncThreads(); }

template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask) {
  static_assert(sizeof(T) == 4, "the emulation shuffles 32-bit values");
  if (mask != 0xffffffffu) ::quiver::cuda_emulation::Fail("__shfl_xor_sync with a partial mask");
  uint32_t bits;
  std::memcpy(&bits, &var, sizeof bits);
  bits = ::quiver::cuda_emulation::ShuffleXor(bits, lane_mask);
  std::memcpy(&var, &bits, sizeof bits);
  return var;
}

// Device math the host library lacks, and CUDA's integer min / max.
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
using std::max;
using std::min;

#endif  // QUIVER_TESTS_CUDA_EMULATION_EMULATOR_H_
