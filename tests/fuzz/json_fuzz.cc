// common/json: any input parses or fails cleanly; what parses dumps to text
// that parses back to the same value.
#include "common/json.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto json = quiver::ParseJson(quiver::fuzz::Bytes(data, size));
  if (!json.ok()) return 0;
  const std::string dumped = json->Dump();
  auto again = quiver::ParseJson(dumped);
  quiver::fuzz::Check(again.ok(), "a dumped value parses");
  quiver::fuzz::Check(again->Dump() == dumped, "dump(parse(dump(x))) == dump(x)");
  return 0;
}
