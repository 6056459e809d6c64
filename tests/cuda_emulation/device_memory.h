// What tests may ask of the CUDA emulation's device memory (emulator.h),
// without the kernel-side names emulator.h defines.
#ifndef QUIVER_TESTS_CUDA_EMULATION_DEVICE_MEMORY_H_
#define QUIVER_TESTS_CUDA_EMULATION_DEVICE_MEMORY_H_

#include <cstddef>

namespace quiver::cuda_emulation {

// Bytes of device memory allocated now.
size_t DeviceMemoryUsed();
// The capacity beyond which cudaMalloc fails (default kDefaultDeviceBytes);
// tests lower it to run a model out of memory.
constexpr size_t kDefaultDeviceBytes = size_t{8} << 30;
void SetDeviceMemoryLimit(size_t bytes);

}  // namespace quiver::cuda_emulation

#endif  // QUIVER_TESTS_CUDA_EMULATION_DEVICE_MEMORY_H_
