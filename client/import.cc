#include "client/import.h"

#include <unistd.h>

#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/record_json.h"
#include "common/strings.h"
#include "grpcpp/client_context.h"

namespace quiver::client {
namespace {

// One Upsert's worth of lines.
struct Batch {
  uint64_t seq = 0;
  uint64_t first_line = 0;
  uint64_t end_offset = 0;         // File offset just past the batch's last line.
  uint64_t end_line = 0;           // Number of the batch's last line.
  std::vector<std::string> lines;  // Raw JSON, parsed by the worker that sends it.
  std::vector<uint64_t> line_numbers;
  v1::UpsertRequest request;
};

// The state file holds "<byte offset> <records> <lines>" of the longest
// prefix of the file whose records are all acknowledged.
struct ResumePoint {
  uint64_t offset = 0;
  uint64_t records = 0;
  uint64_t lines = 0;
};

ResumePoint ReadState(const std::string& path) {
  ResumePoint p;
  std::ifstream in(path);
  if (in) in >> p.offset >> p.records >> p.lines;
  return in ? p : ResumePoint{};
}

void WriteState(const std::string& path, const ResumePoint& p) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << p.offset << " " << p.records << " " << p.lines << "\n";
  }
  std::rename(tmp.c_str(), path.c_str());
}

std::string Bar(double fraction, int width) {
  const int full = static_cast<int>(fraction * width + 0.5);
  return StrCat("[", std::string(std::clamp(full, 0, width), '#'),
                std::string(width - std::clamp(full, 0, width), ' '), "]");
}

class Importer {
 public:
  Importer(v1::Points::StubInterface* stub, const ImportOptions& o) : stub_(stub), o_(o) {}

  absl::StatusOr<ImportResult> Run() {
    std::ifstream in(o_.path, std::ios::binary);
    if (!in) return absl::NotFoundError(StrCat("cannot open ", o_.path));
    std::error_code ec;
    total_bytes_ = std::filesystem::file_size(o_.path, ec);
    const std::string state_path = o_.path + ".quiver-import";
    ResumePoint start;
    if (o_.resume) {
      start = ReadState(state_path);
      if (start.offset > 0) {
        in.seekg(static_cast<std::streamoff>(start.offset));
        std::fprintf(stderr, "resuming at byte %llu (%llu records already imported)\n",
                     static_cast<unsigned long long>(start.offset),
                     static_cast<unsigned long long>(start.records));
      }
    }
    committed_ = start;
    show_bar_ = o_.progress == ImportOptions::Progress::kAlways ||
                (o_.progress == ImportOptions::Progress::kAuto && isatty(STDERR_FILENO));
    started_ = absl::Now();

    std::vector<std::thread> workers;
    for (int i = 0; i < o_.parallel; ++i) workers.emplace_back([this] { WorkerLoop(); });

    absl::Status read_status = ReadBatches(in, start.offset, start.lines);
    {
      absl::MutexLock l(&mu_);
      reading_done_ = true;
      if (!read_status.ok() && error_.ok()) error_ = read_status;
    }
    for (std::thread& t : workers) t.join();

    ImportResult result;
    result.seconds = absl::ToDoubleSeconds(absl::Now() - started_);
    absl::MutexLock l(&mu_);
    if (show_bar_) std::fprintf(stderr, "\n");
    if (!error_.ok()) {
      WriteState(state_path, committed_);
      return absl::Status(error_.code(),
                          StrCat(error_.message(), " (", committed_.records,
                                 " records acknowledged; rerun with --resume to continue)"));
    }
    std::filesystem::remove(state_path, ec);
    result.records = acked_records_;
    result.skipped_records = start.records;
    return result;
  }

 private:
  absl::Status ReadBatches(std::ifstream& in, uint64_t offset, uint64_t line_no) {
    std::string line;
    uint64_t seq = 0;
    auto batch = std::make_unique<Batch>();
    auto flush = [&]() {
      batch->end_offset = std::min<uint64_t>(offset, total_bytes_);
      batch->end_line = line_no;
      const bool more = Enqueue(std::move(batch), seq++);
      batch = std::make_unique<Batch>();
      return more;
    };
    while (std::getline(in, line)) {
      ++line_no;
      offset += line.size() + 1;
      if (StripWhitespace(line).empty()) continue;
      if (batch->lines.empty()) batch->first_line = line_no;
      batch->lines.push_back(std::move(line));
      batch->line_numbers.push_back(line_no);
      if (batch->lines.size() >= static_cast<size_t>(o_.batch_records) && !flush()) {
        return absl::OkStatus();
      }
    }
    if (!batch->lines.empty()) flush();
    return absl::OkStatus();
  }

  // Parses a batch's lines into its request (on a worker thread, so parsing
  // runs in parallel).
  absl::Status Parse(Batch* b) {
    for (size_t i = 0; i < b->lines.size(); ++i) {
      absl::Status st = ParseRecordJson(b->lines[i], b->request.add_records());
      if (!st.ok()) {
        return absl::InvalidArgumentError(
            StrCat(o_.path, ":", b->line_numbers[i], ": not a valid record: ", st.message()));
      }
    }
    b->lines.clear();
    return absl::OkStatus();
  }

  // False when an error stopped the import.
  bool Enqueue(std::unique_ptr<Batch> b, uint64_t seq) {
    b->seq = seq;
    b->request.set_collection(o_.collection);
    b->request.set_namespace_(o_.ns);
    absl::MutexLock l(&mu_);
    auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !error_.ok() || queue_.size() < static_cast<size_t>(2 * o_.parallel);
    };
    mu_.Await(absl::Condition(&room));
    if (!error_.ok()) return false;
    queue_.push_back(std::move(b));
    return true;
  }

  void WorkerLoop() {
    while (true) {
      std::unique_ptr<Batch> b;
      {
        absl::MutexLock l(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return !queue_.empty() || reading_done_ || !error_.ok();
        };
        mu_.Await(absl::Condition(&ready));
        if (!error_.ok() || queue_.empty()) return;
        b = std::move(queue_.front());
        queue_.pop_front();
      }
      if (absl::Status parsed = Parse(b.get()); !parsed.ok()) {
        absl::MutexLock l(&mu_);
        if (error_.ok()) error_ = parsed;
        return;
      }
      grpc::ClientContext ctx;
      if (!o_.api_key.empty()) ctx.AddMetadata("api-key", o_.api_key);
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + o_.rpc_timeout));
      v1::UpsertResponse resp;
      grpc::Status s = stub_->Upsert(&ctx, b->request, &resp);
      absl::MutexLock l(&mu_);
      if (!s.ok()) {
        if (error_.ok()) {
          error_ = absl::Status(
              static_cast<absl::StatusCode>(s.error_code()),
              StrCat("batch starting at line ", b->first_line, ": ", s.error_message()));
        }
        return;
      }
      acked_records_ += b->request.records_size();
      done_[b->seq] = {b->end_offset, static_cast<uint64_t>(b->request.records_size()),
                       b->end_line};
      // Advance the committed prefix over consecutive finished batches.
      while (!done_.empty() && done_.begin()->first == next_commit_seq_) {
        const ResumePoint& d = done_.begin()->second;
        committed_.offset = d.offset;
        committed_.records += d.records;
        committed_.lines = d.lines;
        done_.erase(done_.begin());
        ++next_commit_seq_;
      }
      MaybeReport();
    }
  }

  void MaybeReport() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!show_bar_) return;
    const absl::Time now = absl::Now();
    if (now - last_report_ < absl::Milliseconds(100)) return;
    last_report_ = now;
    const double secs = std::max(1e-3, absl::ToDoubleSeconds(now - started_));
    const double frac = total_bytes_ ? static_cast<double>(committed_.offset) / total_bytes_ : 0;
    std::fprintf(stderr, "\r%s %5.1f%%  %llu records  %.0f records/s ", Bar(frac, 30).c_str(),
                 100 * frac, static_cast<unsigned long long>(committed_.records),
                 acked_records_ / secs);
    std::fflush(stderr);
  }

  v1::Points::StubInterface* stub_;
  const ImportOptions& o_;
  uint64_t total_bytes_ = 0;
  bool show_bar_ = false;
  absl::Time started_;

  absl::Mutex mu_;
  std::deque<std::unique_ptr<Batch>> queue_ ABSL_GUARDED_BY(mu_);
  bool reading_done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  uint64_t acked_records_ ABSL_GUARDED_BY(mu_) = 0;
  // Finished batches not yet in the committed prefix: seq -> (end offset,
  // record count, end line).
  std::map<uint64_t, ResumePoint> done_ ABSL_GUARDED_BY(mu_);
  uint64_t next_commit_seq_ ABSL_GUARDED_BY(mu_) = 0;
  ResumePoint committed_ ABSL_GUARDED_BY(mu_);
  absl::Time last_report_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace

absl::StatusOr<ImportResult> ImportJsonl(v1::Points::StubInterface* stub,
                                         const ImportOptions& options) {
  if (options.batch_records < 1 || options.parallel < 1) {
    return absl::InvalidArgumentError("--batch and --parallel must be >= 1");
  }
  return Importer(stub, options).Run();
}

}  // namespace quiver::client
