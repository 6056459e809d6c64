// nn/safetensors: any file opens or fails with a status naming it; every
// tensor of a file that opens lies inside it.
#include "nn/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = quiver::fuzz::WriteInput(data, size, ".safetensors");
  auto file = quiver::nn::SafetensorsFile::Open(path);
  if (!file.ok()) return 0;
  uint64_t sum = 0;
  for (const auto& [name, info] : (*file)->tensors()) {
    for (uint8_t b : info.bytes) sum += b;  // ASan: every byte is mapped.
  }
  (void)sum;
  return 0;
}
