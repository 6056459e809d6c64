// llm/chat_template: any template parses or fails with a status; one that
// parses renders a conversation or fails with a status.
#include "llm/chat_template.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto tmpl = quiver::llm::ChatTemplate::Parse(std::string(quiver::fuzz::Bytes(data, size)));
  if (!tmpl.ok()) return 0;
  quiver::llm::ChatInput input;
  input.messages = {
      {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}};
  input.bos_token = "<s>";
  input.eos_token = "</s>";
  (void)(*tmpl)->Render(input);
  return 0;
}
