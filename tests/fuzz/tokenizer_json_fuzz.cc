// nn/tokenizer: a tokenizer.json of any content loads or fails cleanly; one
// that loads encodes and decodes text without crashing.
#include "common/json.h"
#include "nn/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The first line is text to encode, the rest the tokenizer.json.
  std::string_view all = quiver::fuzz::Bytes(data, size);
  const size_t nl = all.find('\n');
  const std::string_view text = nl == std::string_view::npos ? "" : all.substr(0, nl);
  const std::string_view json_text = nl == std::string_view::npos ? all : all.substr(nl + 1);
  auto json = quiver::ParseJson(json_text);
  if (!json.ok()) return 0;
  auto tok = quiver::nn::Tokenizer::FromJson(*json);
  if (!tok.ok()) return 0;
  for (bool special : {false, true}) {
    auto enc = (*tok)->Encode(text, special, 512);
    if (enc.ok()) (void)(*tok)->Decode(enc->ids, !special);
  }
  (void)(*tok)->Encode("Hello, world! 안녕하세요 1234", true);
  return 0;
}
