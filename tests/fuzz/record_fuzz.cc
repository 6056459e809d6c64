// storage/record: decoding a stored value never crashes (damaged values
// are DATA_LOSS), and metadata decoding stops at the end of its input.
#include "storage/metadata.h"
#include "storage/record.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = quiver::fuzz::Bytes(data, size);
  (void)quiver::storage::DecodeStoredRecord("id", bytes);
  std::string_view in = bytes;
  quiver::storage::Metadata md;
  if (quiver::storage::DecodeMetadata(&in, &md)) {
    quiver::fuzz::Check(in.size() <= bytes.size(), "metadata decoding stays inside its input");
  }
  return 0;
}
