// text/analyzer: every analyzer takes any bytes (valid UTF-8 or not) and
// returns tokens or an error; tokens are never empty.
#include "tests/fuzz/fuzz_util.h"
#include "text/analyzer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* analyzers = [] {
    auto* v = new std::vector<quiver::text::Analyzer>();
    for (const char* name : {"standard", "english", "cjk"}) {
      v->push_back(*quiver::text::Analyzer::Named(name));
    }
    return v;
  }();
  const std::string_view text = quiver::fuzz::Bytes(data, size);
  for (const auto& a : *analyzers) {
    auto tokens = a.Analyze(text);
    if (!tokens.ok()) continue;
    for (const std::string& t : *tokens) quiver::fuzz::Check(!t.empty(), "no empty token");
  }
  return 0;
}
