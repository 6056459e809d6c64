// Engine: point-in-time copies of the database (records and index checkpoints).
#include <filesystem>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "db/collection.h"
#include "db/engine.h"
#include "db/internal.h"

namespace quiver::db {

using internal::Quoted;

absl::StatusOr<std::string> Engine::Snapshot(std::string_view name) {
  std::string chosen(name);
  if (chosen.empty()) {
    chosen = absl::FormatTime("snapshot-%Y%m%dT%H%M%E3SZ", absl::Now(), absl::UTCTimeZone());
  }
  RETURN_IF_ERROR(storage::ValidateCollectionName(chosen).ok()
                      ? absl::OkStatus()
                      : absl::InvalidArgumentError(StrCat(
                            "snapshot name ", Quoted(chosen),
                            " may contain only letters, digits, '_' and '-' (1..64 bytes)")));
  const std::filesystem::path dir =
      std::filesystem::path(options_.store.path) / "snapshots" / chosen;
  std::error_code ec;
  if (std::filesystem::exists(dir, ec)) {
    return absl::AlreadyExistsError(StrCat("snapshot ", Quoted(chosen), " already exists"));
  }
  std::filesystem::create_directories(dir.parent_path(), ec);
  RETURN_IF_ERROR(store_->WriteSnapshot(dir.string()));
  // The HNSW checkpoints too, so a restored snapshot loads its graphs
  // instead of rebuilding them. A file older or newer than the records is
  // reconciled on load (LoadCollection inserts the nodes it lacks and
  // removes those whose records the snapshot does not have).
  RETURN_IF_ERROR(index_files_.CopyTo(dir.string()));
  Log(LogLevel::kInfo, "snapshot written", {{"path", dir.string()}});
  return dir.string();
}

}  // namespace quiver::db
