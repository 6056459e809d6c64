// Engine: point-in-time copies of the database (records and index checkpoints).
#include <sys/stat.h>

#include <algorithm>
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
  // Graphs first: records written between these checkpoints and the
  // RocksDB checkpoint below are reconciled on load like any others.
  CheckpointChanged();
  RETURN_IF_ERROR(store_->WriteSnapshot(dir.string()));
  // The HNSW checkpoints too, so a restored snapshot loads its graphs
  // instead of rebuilding them. A file older or newer than the records is
  // reconciled on load (LoadCollection inserts the nodes it lacks and
  // removes those whose records the snapshot does not have).
  RETURN_IF_ERROR(index_files_.CopyTo(dir.string()));
  Log(LogLevel::kInfo, "snapshot written", {{"path", dir.string()}});
  return dir.string();
}

std::vector<Engine::SnapshotInfo> Engine::ListSnapshots() const {
  namespace fs = std::filesystem;
  std::vector<SnapshotInfo> out;
  const fs::path root = fs::path(options_.store.path) / "snapshots";
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    if (!e.is_directory(ec)) continue;
    SnapshotInfo info;
    info.name = e.path().filename().string();
    info.path = e.path().string();
    struct stat st;
    if (::stat((e.path() / "CURRENT").c_str(), &st) != 0) continue;  // Not a snapshot.
    info.created_unix_ms =
        static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
    for (auto it = fs::recursive_directory_iterator(e.path(), ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file(ec)) info.bytes += it->file_size(ec);
    }
    ec.clear();
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(), [](const SnapshotInfo& a, const SnapshotInfo& b) {
    return a.created_unix_ms != b.created_unix_ms ? a.created_unix_ms < b.created_unix_ms
                                                  : a.name < b.name;
  });
  return out;
}

}  // namespace quiver::db
