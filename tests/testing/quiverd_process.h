// Runs a real quiverd process on a free loopback port for integration tests
// and benchmarks.
#ifndef QUIVER_TESTS_TESTING_QUIVERD_PROCESS_H_
#define QUIVER_TESTS_TESTING_QUIVERD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "quiver/v1/models.grpc.pb.h"
#include "quiver/v1/points.grpc.pb.h"
#include "quiver/v1/search.grpc.pb.h"

namespace quiver::testing {

class QuiverdProcess {
 public:
  // `data_dir` is used as --data_dir; extra flags are appended.
  QuiverdProcess(std::string data_dir, std::vector<std::string> extra_flags = {});
  ~QuiverdProcess();  // SIGKILLs the process if it still runs.

  // Starts the server and waits (up to start_timeout_s, default 30) until it
  // accepts calls.
  absl::Status Start();
  void set_start_timeout_s(int seconds) { start_timeout_s_ = seconds; }
  // Another quiverd build to run (default: QuiverdPath()); before Start().
  void set_binary(std::string path) { binary_ = std::move(path); }
  // Sends `signal` and waits for the process to exit; returns its raw wait
  // status (see waitpid).
  int Stop(int signal);
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  int http_port() const { return http_port_; }  // 0 when HTTP is off.
  std::string address() const;
  std::shared_ptr<grpc::Channel> NewChannel() const;
  // The server's stderr (its log) so far.
  std::string Log() const;

 private:
  std::string binary_;
  std::string data_dir_;
  std::vector<std::string> flags_;
  std::string port_file_;
  std::string log_file_;
  pid_t pid_ = -1;
  int port_ = 0;
  int http_port_ = 0;
  int start_timeout_s_ = 30;
};

// The text a Models.Generate call streams for `req`, read to its end; a
// failed call is a test failure.
std::string GenerateText(v1::Models::Stub* models, const v1::GenerateRequest& req);

// The ids a Query for `vector` in `collection` returns with top_k =
// ef_search = n: as a graph walk (first) and as an exact scan (second). A
// walk as wide as the collection must find what the scan finds. A failed
// call is a test failure.
std::pair<std::vector<std::string>, std::vector<std::string>> WalkAndExactIds(
    v1::Search::Stub* search, const std::string& collection, const std::vector<float>& vector,
    uint32_t n);

// Polls DescribeStats of `collection` until no record waits for its HNSW
// graph (catching_up_count 0: bulk upserts' backlogs and restart catch-up
// indexed) and returns those stats; DEADLINE_EXCEEDED with the count left
// after `timeout`, or the call's error.
absl::StatusOr<v1::DescribeStatsResponse> WaitUntilIndexed(
    v1::Points::Stub* points, const std::string& collection,
    absl::Duration timeout = absl::Seconds(120));

// Runs the quiver CLI with `args`; returns its exit code and fills
// `output` with stdout (and stderr, when `stderr_too`).
int RunCli(const std::vector<std::string>& args, std::string* output, bool stderr_too = true);

}  // namespace quiver::testing

#endif  // QUIVER_TESTS_TESTING_QUIVERD_PROCESS_H_
