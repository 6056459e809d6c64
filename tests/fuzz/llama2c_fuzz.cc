// llm/llama2c: checkpoints and tokenizer files of any content load or fail
// with a status.
#include "llm/llama2c_tokenizer.h"
#include "llm/model.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the loader.
  const std::string path = quiver::fuzz::WriteInput(data + 1, size - 1, ".bin");
  if (data[0] & 1) {
    (void)quiver::llm::LlamaModel::LoadLlama2c(path);
  } else {
    auto tok = quiver::llm::Llama2cTokenizer::Load(path, 512);
    if (tok.ok()) (void)(*tok)->Tokenize("Once upon a time", true);
  }
  return 0;
}
