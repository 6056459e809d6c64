// Restoring a snapshot (Engine::Snapshot: a RocksDB checkpoint plus the
// index checkpoint files, laid out as a data directory) into a data
// directory, offline: no server may be running on it.
#ifndef QUIVER_STORAGE_RESTORE_H_
#define QUIVER_STORAGE_RESTORE_H_

#include <string>

#include "absl/status/status.h"

namespace quiver::storage {

// Name of the marker a restore leaves while it copies; a data directory
// holding it was interrupted mid-restore and is refused by Store::Open.
inline constexpr char kRestoreMarker[] = ".restore-in-progress";

// Replaces the contents of `data_dir` (created if missing) with the
// snapshot in `snapshot_dir`. A data directory that holds anything but its
// own snapshots/ folder is refused (FAILED_PRECONDITION) unless `overwrite`;
// one a server has open (RocksDB's LOCK held) is always refused. The
// data directory's snapshots/ folder is kept. Files are hard-linked when the
// two are on one file system (snapshot files are never modified), else
// copied.
absl::Status RestoreSnapshot(const std::string& snapshot_dir, const std::string& data_dir,
                             bool overwrite);

// The snapshot directory `name_or_path` means: a path when it names an
// existing directory or holds a '/', else <data_dir>/snapshots/<name>.
std::string ResolveSnapshot(const std::string& name_or_path, const std::string& data_dir);

// FAILED_PRECONDITION when `data_dir` holds an interrupted restore.
absl::Status CheckNoInterruptedRestore(const std::string& data_dir);

// True when a process holds RocksDB's LOCK file in `data_dir`.
bool DataDirInUse(const std::string& data_dir);

}  // namespace quiver::storage

#endif  // QUIVER_STORAGE_RESTORE_H_
