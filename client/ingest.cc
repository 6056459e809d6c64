#include "client/ingest.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/json.h"
#include "common/strings.h"
#include "grpcpp/client_context.h"
#include "proto/struct_json.h"

namespace quiver::client {
namespace {

namespace fs = std::filesystem;

// Where a document comes from: a whole file, or one line of a JSONL file.
struct Source {
  std::string file;
  std::string id;       // Files only; JSONL lines carry their own.
  uint64_t line = 0;    // JSONL: 1-based line number; 0 for a whole file.
  uint64_t offset = 0;  // JSONL: where the line starts.
  std::string format;   // "text", "markdown" or "jsonl".
};

std::string FormatOf(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  if (ext == ".md" || ext == ".markdown") return "markdown";
  if (ext == ".txt" || ext == ".text") return "text";
  if (ext == ".jsonl") return "jsonl";
  return "";
}

absl::Status AddFile(const fs::path& file, const std::string& id, std::vector<Source>* out) {
  const std::string format = FormatOf(file);
  if (format.empty()) return absl::OkStatus();
  if (format != "jsonl") {
    out->push_back({file.string(), id, 0, 0, format});
    return absl::OkStatus();
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat("cannot open ", file.string()));
  std::string line;
  uint64_t offset = 0;
  for (uint64_t n = 1; std::getline(in, line); ++n) {
    const uint64_t start = offset;
    offset += line.size() + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    out->push_back({file.string(), "", n, start, format});
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Source>> Collect(const std::vector<std::string>& paths) {
  std::vector<Source> out;
  for (const std::string& arg : paths) {
    std::error_code ec;
    const fs::path root(arg);
    if (fs::is_directory(root, ec)) {
      std::vector<fs::path> files;
      for (auto it = fs::recursive_directory_iterator(root, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file(ec) && !FormatOf(it->path()).empty()) files.push_back(it->path());
      }
      if (ec) return absl::NotFoundError(StrCat("cannot read directory ", arg, ": ", ec.message()));
      std::sort(files.begin(), files.end());
      for (const fs::path& f : files) {
        if (absl::Status s = AddFile(f, fs::relative(f, root).generic_string(), &out); !s.ok()) {
          return s;
        }
      }
    } else if (fs::is_regular_file(root, ec)) {
      if (FormatOf(root).empty()) {
        return absl::InvalidArgumentError(
            StrCat(arg, ": not a .txt, .md or .jsonl file (name a directory to search it)"));
      }
      // A file named directly: its path as given when relative, else its
      // name (an absolute path says where it sits here, not what it is).
      const std::string id = root.is_absolute() ? root.filename().generic_string()
                                                : root.lexically_normal().generic_string();
      if (absl::Status s = AddFile(root, id, &out); !s.ok()) return s;
    } else {
      return absl::NotFoundError(StrCat("no such file or directory: ", arg));
    }
  }
  return out;
}

std::string Bar(double fraction, int width) {
  const int full = std::clamp(static_cast<int>(fraction * width + 0.5), 0, width);
  return StrCat("[", std::string(full, '#'), std::string(width - full, ' '), "]");
}

class Ingester {
 public:
  Ingester(v1::Rag::StubInterface* stub, const IngestOptions& o) : stub_(stub), o_(o) {}

  absl::StatusOr<IngestResult> Run() {
    auto sources = Collect(o_.paths);
    if (!sources.ok()) return sources.status();
    sources_ = *std::move(sources);
    if (sources_.empty()) {
      return absl::InvalidArgumentError("found no .txt, .md or .jsonl documents to ingest");
    }
    if (o_.resume) {
      std::ifstream in(o_.state_path);
      std::string id;
      while (std::getline(in, id)) done_before_.insert(id);
    } else {
      std::error_code ec;
      fs::remove(o_.state_path, ec);
    }
    state_.open(o_.state_path, std::ios::app);
    if (!state_) return absl::FailedPreconditionError(StrCat("cannot write ", o_.state_path));
    show_bar_ = o_.progress == IngestOptions::Progress::kAlways ||
                (o_.progress == IngestOptions::Progress::kAuto && isatty(STDERR_FILENO));
    started_ = absl::Now();
    std::vector<std::thread> workers;
    for (int i = 0; i < std::max(1, o_.parallel); ++i) workers.emplace_back([this] { Work(); });
    for (std::thread& t : workers) t.join();
    if (show_bar_) std::fprintf(stderr, "\n");
    result_.seconds = absl::ToDoubleSeconds(absl::Now() - started_);
    if (!error_.ok()) {
      return absl::Status(error_.code(),
                          StrCat(error_.message(), " (", result_.documents + result_.skipped,
                                 " documents done; rerun with --resume to continue)"));
    }
    state_.close();
    std::error_code ec;
    fs::remove(o_.state_path, ec);
    return result_;
  }

 private:
  // Reads the document `s` names: id, text and metadata.
  absl::Status Load(const Source& s, v1::Document* doc, std::string* where) {
    if (s.line == 0) {
      *where = s.file;
      std::ifstream in(s.file, std::ios::binary);
      if (!in) return absl::NotFoundError(StrCat("cannot open ", s.file));
      std::stringstream ss;
      ss << in.rdbuf();
      doc->set_id(s.id);
      doc->set_text(ss.str());
      auto& f = *doc->mutable_metadata()->mutable_fields();
      f["source"].set_string_value(s.id);
      f["format"].set_string_value(s.format);
      return absl::OkStatus();
    }
    *where = StrCat(s.file, ":", s.line);
    std::ifstream in(s.file, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(s.offset));
    std::string line;
    std::getline(in, line);
    auto json = ParseJson(line);
    if (!json.ok()) return json.status();
    if (!json->is_object()) return absl::InvalidArgumentError("a line must be a JSON object");
    for (const auto& [key, value] : json->as_object()) {
      if (key != "id" && key != "text" && key != "metadata") {
        return absl::InvalidArgumentError(
            StrCat("unknown field \"", key, "\" (a document has id, text and metadata)"));
      }
    }
    const Json* id = json->Find("id");
    const Json* text = json->Find("text");
    if (id == nullptr || !id->is_string() || text == nullptr || !text->is_string()) {
      return absl::InvalidArgumentError("a document needs string fields id and text");
    }
    doc->set_id(id->as_string());
    doc->set_text(text->as_string());
    if (const Json* md = json->Find("metadata"); md != nullptr && !md->is_null()) {
      if (!md->is_object()) return absl::InvalidArgumentError("metadata must be an object");
      JsonToStruct(*md, doc->mutable_metadata());
    }
    return absl::OkStatus();
  }

  void Work() {
    while (true) {
      size_t i;
      {
        absl::MutexLock l(&mu_);
        if (!error_.ok() || next_ >= sources_.size()) return;
        i = next_++;
      }
      v1::UpsertDocumentRequest req;
      req.set_collection(o_.collection);
      req.set_namespace_(o_.ns);
      std::string where;
      absl::Status s = Load(sources_[i], req.mutable_document(), &where);
      if (s.ok() && done_before_.contains(req.document().id())) {
        absl::MutexLock l(&mu_);
        ++result_.skipped;
        Progress();
        continue;
      }
      v1::UpsertDocumentResponse resp;
      if (s.ok()) {
        grpc::ClientContext ctx;
        if (!o_.api_key.empty()) ctx.AddMetadata("api-key", o_.api_key);
        ctx.set_deadline(absl::ToChronoTime(absl::Now() + o_.rpc_timeout));
        grpc::Status g = stub_->UpsertDocument(&ctx, req, &resp);
        if (!g.ok()) {
          s = absl::Status(static_cast<absl::StatusCode>(g.error_code()), g.error_message());
        }
      }
      absl::MutexLock l(&mu_);
      if (!s.ok()) {
        if (error_.ok()) {
          error_ = absl::Status(
              s.code(), StrCat(where, " (document \"", req.document().id(), "\"): ", s.message()));
        }
        return;
      }
      state_ << req.document().id() << "\n" << std::flush;
      ++result_.documents;
      result_.chunks += resp.chunk_count();
      result_.tokens += resp.tokens();
      Progress();
    }
  }

  void Progress() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!show_bar_) return;
    const uint64_t done = result_.documents + result_.skipped;
    const double secs = std::max(1e-3, absl::ToDoubleSeconds(absl::Now() - started_));
    std::fprintf(stderr, "\r%s %llu/%zu documents  %llu chunks  %.1f documents/s ",
                 Bar(static_cast<double>(done) / sources_.size(), 30).c_str(),
                 static_cast<unsigned long long>(done), sources_.size(),
                 static_cast<unsigned long long>(result_.chunks), result_.documents / secs);
  }

  v1::Rag::StubInterface* stub_;
  const IngestOptions& o_;
  std::vector<Source> sources_;
  std::set<std::string> done_before_;
  std::ofstream state_;
  bool show_bar_ = false;
  absl::Time started_;
  absl::Mutex mu_;
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  IngestResult result_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<IngestResult> Ingest(v1::Rag::StubInterface* stub, const IngestOptions& options) {
  Ingester ingester(stub, options);
  return ingester.Run();
}

}  // namespace quiver::client
