#include "storage/index_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "common/strings.h"

namespace quiver::storage {
namespace {

absl::Status SyncPath(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return absl::InternalError(StrCat("cannot open ", path, " to sync it"));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return absl::InternalError(StrCat("fsync of ", path, " failed"));
  return absl::OkStatus();
}

}  // namespace

std::string IndexFiles::CollectionDir(uint32_t collection_id) const {
  return StrCat(data_dir_, "/indexes/", collection_id);
}

std::string IndexFiles::Path(uint32_t collection_id, std::string_view ns) const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name = "ns-";
  for (unsigned char c : ns) {
    name.push_back(kHex[c >> 4]);
    name.push_back(kHex[c & 15]);
  }
  return StrCat(CollectionDir(collection_id), "/", name, ".hnsw");
}

bool IndexFiles::Exists(uint32_t collection_id, std::string_view ns) const {
  std::error_code ec;
  return std::filesystem::exists(Path(collection_id, ns), ec);
}

absl::Status IndexFiles::WriteAtomically(
    uint32_t collection_id, std::string_view ns,
    const std::function<absl::Status(std::ostream&)>& write) const {
  const std::string dir = CollectionDir(collection_id);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(StrCat("cannot create ", dir, ": ", ec.message()));
  const std::string path = Path(collection_id, ns);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::InternalError(StrCat("cannot write ", tmp));
    if (absl::Status s = write(out); !s.ok()) {
      std::remove(tmp.c_str());
      return s;
    }
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      return absl::InternalError(StrCat("writing ", tmp, " failed (disk full?)"));
    }
  }
  if (absl::Status s = SyncPath(tmp, false); !s.ok()) return s;
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(StrCat("cannot rename ", tmp, " to ", path));
  }
  return SyncPath(dir, true);
}

absl::Status IndexFiles::Read(uint32_t collection_id, std::string_view ns,
                              const std::function<absl::Status(std::istream&)>& read) const {
  const std::string path = Path(collection_id, ns);
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat("no checkpoint at ", path));
  return read(in);
}

void IndexFiles::Remove(uint32_t collection_id, std::string_view ns) const {
  std::error_code ec;
  std::filesystem::remove(Path(collection_id, ns), ec);
}

void IndexFiles::RemoveCollection(uint32_t collection_id) const {
  std::error_code ec;
  std::filesystem::remove_all(CollectionDir(collection_id), ec);
}

absl::Status IndexFiles::CopyTo(const std::string& other_data_dir) const {
  namespace fs = std::filesystem;
  const fs::path from = fs::path(data_dir_) / "indexes", to = fs::path(other_data_dir) / "indexes";
  std::error_code ec;
  if (!fs::exists(from, ec)) return absl::OkStatus();
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(from, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && it->path().extension() == ".hnsw") files.push_back(it->path());
  }
  if (ec) return absl::InternalError(StrCat("cannot list ", from.string(), ": ", ec.message()));
  for (const fs::path& file : files) {
    const fs::path target = to / fs::relative(file, from);
    fs::create_directories(target.parent_path(), ec);
    if (ec)
      return absl::InternalError(
          StrCat("cannot create ", target.parent_path().string(), ": ", ec.message()));
    fs::create_hard_link(file, target, ec);
    if (ec) {
      ec.clear();
      fs::copy_file(file, target, fs::copy_options::overwrite_existing, ec);
    }
    if (ec && fs::exists(file)) {
      return absl::InternalError(
          StrCat("cannot copy ", file.string(), " to ", target.string(), ": ", ec.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace quiver::storage
