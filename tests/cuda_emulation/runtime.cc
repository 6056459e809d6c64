// The CUDA runtime calls our engines make, answered on the host for the
// emulation (emulator.h): one device, device memory from the host heap with
// guard bytes on both sides and a registry of allocations, every copy and
// launch synchronous. Declarations come from cuda_runtime_api.h, so these
// definitions have the real functions' names and signatures.
#include <cuda_runtime.h>
#include <sys/mman.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "tests/cuda_emulation/emulator.h"

struct CUstream_st {
  int unused = 0;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point at{};
  bool recorded = false;
};

namespace quiver::cuda_emulation {
namespace {

constexpr size_t kAlign = 256;  // CUDA's alignment of allocations.
constexpr size_t kPage = 4096;
constexpr unsigned char kGuardByte = 0xA5;

// A mapping of its own per allocation: an inaccessible page, guard bytes
// (at least kAlign), the user's bytes, guard bytes up to the next multiple
// of kAlign, and another inaccessible page. Accesses past the slack fault;
// writes into it are found by GuardIntact.
struct Allocation {
  size_t bytes;
  char* map;  // The whole mapping, map_bytes long.
  size_t map_bytes;
  char* user;
};

struct Memory {
  std::mutex mu;
  std::map<const char*, Allocation> device;  // By user address.
  size_t used = 0;
  size_t capacity = kDefaultDeviceBytes;
  cudaError_t last_error = cudaSuccess;
};

Memory& TheMemory() {
  static Memory* m = new Memory;
  return *m;
}

// The kAlign bytes before the user's and those after it (to the page).
bool GuardIntact(const Allocation& a) {
  const char* back_end = a.map + a.map_bytes - kPage;
  for (const char* c = a.user - kAlign; c < a.user; ++c) {
    if (static_cast<unsigned char>(*c) != kGuardByte) return false;
  }
  for (const char* c = a.user + a.bytes; c < back_end; ++c) {
    if (static_cast<unsigned char>(*c) != kGuardByte) return false;
  }
  return true;
}

// The allocation holding [p, p + bytes), if any (mu held).
const Allocation* Find(Memory& m, const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  auto it = m.device.upper_bound(c);
  if (it == m.device.begin()) return nullptr;
  --it;
  const char* start = it->first;
  if (c < start || c + bytes > start + it->second.bytes) return nullptr;
  return &it->second;
}

cudaError_t Record(cudaError_t err) {
  if (err != cudaSuccess) TheMemory().last_error = err;
  return err;
}

// Checks a copy's direction against where its pointers live.
void CheckCopy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return;
  const bool dst_dev = IsDeviceMemory(dst, bytes), src_dev = IsDeviceMemory(src, bytes);
  const bool want_dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool want_src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind == cudaMemcpyDefault) return;
  if (dst_dev != want_dst_dev) {
    Fail(want_dst_dev ? "cudaMemcpy to device memory whose destination is not (all) device memory"
                      : "cudaMemcpy to the host whose destination is device memory");
  }
  if (src_dev != want_src_dev) {
    Fail(want_src_dev ? "cudaMemcpy from device memory whose source is not (all) device memory"
                      : "cudaMemcpy from the host whose source is device memory");
  }
}

}  // namespace

bool IsDeviceMemory(const void* p, size_t bytes) {
  Memory& m = TheMemory();
  std::lock_guard<std::mutex> lock(m.mu);
  return Find(m, p, bytes) != nullptr;
}

void CheckKernelPointer(const void* p) {
  if (p != nullptr && !IsDeviceMemory(p)) Fail("a kernel's pointer argument is not device memory");
}

size_t DeviceMemoryUsed() {
  Memory& m = TheMemory();
  std::lock_guard<std::mutex> lock(m.mu);
  return m.used;
}

void SetDeviceMemoryLimit(size_t bytes) {
  Memory& m = TheMemory();
  std::lock_guard<std::mutex> lock(m.mu);
  m.capacity = bytes;
}

void CheckDeviceGuards() {
  Memory& m = TheMemory();
  std::lock_guard<std::mutex> lock(m.mu);
  for (const auto& [p, a] : m.device) {
    if (!GuardIntact(a)) Fail("a kernel wrote outside a device allocation");
  }
}

}  // namespace quiver::cuda_emulation

using quiver::cuda_emulation::Allocation;
using quiver::cuda_emulation::Fail;
using quiver::cuda_emulation::Memory;
using quiver::cuda_emulation::TheMemory;

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  Memory& m = TheMemory();
  std::lock_guard<std::mutex> lock(m.mu);
  *p = nullptr;
  if (m.used > m.capacity || bytes > m.capacity - m.used) {
    return quiver::cuda_emulation::Record(cudaErrorMemoryAllocation);
  }
  using quiver::cuda_emulation::kAlign;
  using quiver::cuda_emulation::kPage;
  const size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  const size_t inner = (rounded + kAlign + kPage - 1) / kPage * kPage;
  const size_t map_bytes = inner + 2 * kPage;
  void* map = mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (map == MAP_FAILED) return quiver::cuda_emulation::Record(cudaErrorMemoryAllocation);
  char* base = static_cast<char*>(map);
  mprotect(base, kPage, PROT_NONE);
  mprotect(base + kPage + inner, kPage, PROT_NONE);
  char* user = base + kPage + inner - rounded;
  std::memset(base + kPage, quiver::cuda_emulation::kGuardByte, inner);
  std::memset(user, 0xFF, bytes);
  m.device[user] = Allocation{bytes, base, map_bytes, user};
  m.used += bytes;
  *p = user;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (p == nullptr) return cudaSuccess;
  Memory& m = TheMemory();
  std::lock_guard<std::mutex> lock(m.mu);
  auto it = m.device.find(static_cast<const char*>(p));
  if (it == m.device.end()) Fail("cudaFree of a pointer cudaMalloc did not return");
  if (!quiver::cuda_emulation::GuardIntact(it->second))
    Fail("a kernel wrote outside a device allocation");
  m.used -= it->second.bytes;
  munmap(it->second.map, it->second.map_bytes);
  m.device.erase(it);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** p, size_t bytes) {
  *p = std::malloc(bytes > 0 ? bytes : 1);
  return *p != nullptr ? cudaSuccess : quiver::cuda_emulation::Record(cudaErrorMemoryAllocation);
}

cudaError_t cudaFreeHost(void* p) {
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free, size_t* total) {
  Memory& m = TheMemory();
  std::lock_guard<std::mutex> lock(m.mu);
  *total = m.capacity;
  *free = m.used < m.capacity ? m.capacity - m.used : 0;
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  quiver::cuda_emulation::CheckCopy(dst, src, bytes, kind);
  if (bytes > 0) std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaStreamCreate(cudaStream_t* s) {
  *s = new CUstream_st;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) {
  quiver::cuda_emulation::CheckDeviceGuards();
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() { return cudaStreamSynchronize(nullptr); }

cudaError_t cudaGetLastError() {
  Memory& m = TheMemory();
  const cudaError_t err = m.last_error;
  m.last_error = cudaSuccess;
  return err;
}

const char* cudaGetErrorString(cudaError_t err) {
  switch (err) {
    case cudaSuccess:
      return "no error (emulated)";
    case cudaErrorMemoryAllocation:
      return "out of memory (emulated)";
    default:
      return "unknown error (emulated)";
  }
}

cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st;
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  e->at = std::chrono::steady_clock::now();
  e->recorded = true;
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!start->recorded || !end->recorded)
    return quiver::cuda_emulation::Record(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}

}  // extern "C"
