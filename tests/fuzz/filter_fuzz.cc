// storage/filter: any JSON parses into a filter or fails with a status; a
// parsed filter evaluates against metadata of every kind without crashing.
#include "common/json.h"
#include "storage/filter.h"
#include "storage/metadata.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto json = quiver::ParseJson(quiver::fuzz::Bytes(data, size));
  if (!json.ok()) return 0;
  auto filter = quiver::storage::Filter::Parse(*json);
  if (!filter.ok()) return 0;
  static const quiver::storage::Metadata kSamples[] = {
      {},
      *quiver::storage::MetadataFromJson(*quiver::ParseJson(
          R"({"genre": "drama", "year": 2001, "score": 4.5, "tags": ["a", "b"], "ok": true})")),
      *quiver::storage::MetadataFromJson(
          *quiver::ParseJson(R"({"genre": 7, "year": "x", "tags": [], "ok": false})")),
  };
  for (const auto& md : kSamples) (void)filter->Matches(md);
  (void)filter->MatchesAll();
  return 0;
}
