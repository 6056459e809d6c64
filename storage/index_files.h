// Index checkpoint files next to the RocksDB data:
//   <data_dir>/indexes/<collection id>/ns-<hex of namespace>.hnsw
// Files are replaced atomically (write a temporary, fsync, rename, fsync the
// directory), so a crash leaves either the old or the new checkpoint.
#ifndef QUIVER_STORAGE_INDEX_FILES_H_
#define QUIVER_STORAGE_INDEX_FILES_H_

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace quiver::storage {

class IndexFiles {
 public:
  explicit IndexFiles(std::string data_dir) : data_dir_(std::move(data_dir)) {}

  std::string Path(uint32_t collection_id, std::string_view ns) const;
  bool Exists(uint32_t collection_id, std::string_view ns) const;

  // Writes the file through `write` (which returns its own status) and
  // replaces the old one only when everything succeeded.
  absl::Status WriteAtomically(uint32_t collection_id, std::string_view ns,
                               const std::function<absl::Status(std::ostream&)>& write) const;
  // Opens the file for reading; NOT_FOUND when absent.
  absl::Status Read(uint32_t collection_id, std::string_view ns,
                    const std::function<absl::Status(std::istream&)>& read) const;
  void Remove(uint32_t collection_id, std::string_view ns) const;
  void RemoveCollection(uint32_t collection_id) const;
  // Puts every checkpoint file into `other_data_dir`'s layout (hard links
  // where the file system allows, else copies): files are replaced by
  // rename, never rewritten in place, so a link keeps the version current
  // when it was made. Files that vanish meanwhile (a dropped collection)
  // are skipped; INTERNAL when one cannot be linked or copied.
  absl::Status CopyTo(const std::string& other_data_dir) const;

 private:
  std::string CollectionDir(uint32_t collection_id) const;
  const std::string data_dir_;
};

}  // namespace quiver::storage

#endif  // QUIVER_STORAGE_INDEX_FILES_H_
