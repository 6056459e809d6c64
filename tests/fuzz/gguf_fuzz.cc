// llm/gguf: any file loads or fails with a status; never a crash, an
// out-of-bounds read or an allocation the file's size does not justify.
#include "llm/gguf.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = quiver::fuzz::WriteInput(data, size, ".gguf");
  (void)quiver::llm::LoadGguf(path);
  return 0;
}
