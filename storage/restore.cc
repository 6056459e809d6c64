#include "storage/restore.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "common/log.h"
#include "common/strings.h"

namespace quiver::storage {
namespace {

namespace fs = std::filesystem;

constexpr char kSnapshotsDir[] = "snapshots";

absl::Status FsError(std::string_view what, const fs::path& path, const std::error_code& ec) {
  return absl::InternalError(StrCat(what, " ", path.string(), ": ", ec.message()));
}

// Files RocksDB never modifies once written (table files) and index
// checkpoints (replaced by rename, never rewritten) may be shared by a hard
// link; the rest (MANIFEST, WAL, CURRENT, OPTIONS) a restored server may
// append to, so they are copied.
bool Shareable(const fs::path& file) {
  const std::string ext = file.extension().string();
  return ext == ".sst" || ext == ".blob" || ext == ".hnsw";
}

}  // namespace

std::string ResolveSnapshot(const std::string& name_or_path, const std::string& data_dir) {
  std::error_code ec;
  if (name_or_path.find('/') != std::string::npos || fs::is_directory(name_or_path, ec)) {
    return name_or_path;
  }
  return (fs::path(data_dir) / kSnapshotsDir / name_or_path).string();
}

bool DataDirInUse(const std::string& data_dir) {
  const std::string lock = (fs::path(data_dir) / "LOCK").string();
  const int fd = ::open(lock.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  // RocksDB holds a whole-file fcntl write lock on LOCK while open.
  struct flock fl = {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  const bool held = ::fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
  ::close(fd);
  return held;
}

absl::Status CheckNoInterruptedRestore(const std::string& data_dir) {
  std::error_code ec;
  if (fs::exists(fs::path(data_dir) / kRestoreMarker, ec)) {
    return absl::FailedPreconditionError(
        StrCat("data directory ", data_dir,
               " holds an interrupted snapshot restore; run the restore again with "
               "--restore_overwrite"));
  }
  return absl::OkStatus();
}

absl::Status RestoreSnapshot(const std::string& snapshot_dir, const std::string& data_dir,
                             bool overwrite) {
  std::error_code ec;
  const fs::path from = fs::absolute(snapshot_dir, ec);
  if (!fs::is_regular_file(from / "CURRENT", ec)) {
    return absl::NotFoundError(
        StrCat(snapshot_dir, " is not a snapshot (it has no RocksDB CURRENT file)"));
  }
  const fs::path to = fs::absolute(data_dir, ec);
  fs::create_directories(to, ec);
  if (ec) return FsError("cannot create", to, ec);
  const fs::path from_real = fs::canonical(from, ec), to_real = fs::canonical(to, ec);
  if (from_real == to_real) {
    return absl::InvalidArgumentError("the snapshot and the data directory are the same");
  }
  for (fs::path p = to_real; !p.empty() && p != p.parent_path(); p = p.parent_path()) {
    if (p == from_real) {
      return absl::InvalidArgumentError("the data directory lies inside the snapshot");
    }
  }
  if (DataDirInUse(to.string())) {
    return absl::FailedPreconditionError(
        StrCat("a server has data directory ", to.string(), " open; stop it before restoring"));
  }
  std::vector<fs::path> existing;
  for (const fs::directory_entry& e : fs::directory_iterator(to, ec)) {
    if (e.path().filename() != kSnapshotsDir) existing.push_back(e.path());
  }
  if (ec) return FsError("cannot list", to, ec);
  const bool interrupted = fs::exists(to / kRestoreMarker, ec);
  if (!existing.empty() && !overwrite) {
    return absl::FailedPreconditionError(StrCat(
        "data directory ", to.string(), " is not empty (", existing.size(), " entries",
        interrupted ? ", from an interrupted restore" : "",
        "); restoring replaces its contents: pass --restore_overwrite (quiver snapshot restore "
        "--overwrite) to allow it"));
  }
  // The marker first: a restore cut short leaves a directory that will not
  // open as a database until a restore completes.
  {
    std::ofstream marker(to / kRestoreMarker);
    marker << "restoring " << from.string() << "\n";
    if (!marker.flush()) return FsError("cannot write", to / kRestoreMarker, ec);
  }
  ::sync();
  for (const fs::path& p : existing) {
    if (p.filename() == kRestoreMarker) continue;
    fs::remove_all(p, ec);
    if (ec) return FsError("cannot remove", p, ec);
  }
  size_t linked = 0, copied = 0;
  for (auto it = fs::recursive_directory_iterator(from, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path rel = fs::relative(it->path(), from, ec);
    if (it.depth() == 0 && rel == kSnapshotsDir) {
      it.disable_recursion_pending();  // A snapshot holds no snapshots; skip if it does.
      continue;
    }
    const fs::path target = to / rel;
    if (it->is_directory(ec)) {
      fs::create_directories(target, ec);
      if (ec) return FsError("cannot create", target, ec);
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    if (Shareable(it->path())) {
      fs::create_hard_link(it->path(), target, ec);
      if (!ec) {
        ++linked;
        continue;
      }
      ec.clear();
    }
    fs::copy_file(it->path(), target, fs::copy_options::overwrite_existing, ec);
    if (ec) return FsError("cannot copy to", target, ec);
    ++copied;
  }
  if (ec) return FsError("cannot read", from, ec);
  ::sync();
  fs::remove(to / kRestoreMarker, ec);
  if (ec) return FsError("cannot remove", to / kRestoreMarker, ec);
  ::sync();
  Log(LogLevel::kInfo, "snapshot restored",
      {{"snapshot", from.string()},
       {"data_dir", to.string()},
       {"files_linked", linked},
       {"files_copied", copied}});
  return absl::OkStatus();
}

}  // namespace quiver::storage
