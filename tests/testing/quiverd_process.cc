#include "tests/testing/quiverd_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/strings.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver::testing {

QuiverdProcess::QuiverdProcess(std::string data_dir, std::vector<std::string> extra_flags)
    : binary_(QuiverdPath()), data_dir_(std::move(data_dir)), flags_(std::move(extra_flags)) {
  port_file_ = data_dir_ + ".port";
  log_file_ = data_dir_ + ".log";
}

QuiverdProcess::~QuiverdProcess() {
  if (pid_ > 0) Stop(SIGKILL);
  std::remove(port_file_.c_str());
  std::remove(log_file_.c_str());
}

absl::Status QuiverdProcess::Start() {
  if (pid_ > 0) return absl::FailedPreconditionError("already running");
  std::remove(port_file_.c_str());
  std::vector<std::string> argv = {binary_, "--data_dir=" + data_dir_, "--listen=127.0.0.1:0",
                                   "--http_listen=127.0.0.1:0", "--port_file=" + port_file_};
  argv.insert(argv.end(), flags_.begin(), flags_.end());
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    FILE* log = std::fopen(log_file_.c_str(), "a");
    if (log != nullptr) dup2(fileno(log), STDERR_FILENO);
    std::vector<char*> cargv;
    for (std::string& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  pid_ = pid;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(start_timeout_s_);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(port_file_);
    if (in >> port_ && port_ > 0) {
      if (!(in >> http_port_)) http_port_ = 0;
      return absl::OkStatus();
    }
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(StrCat("quiverd exited during start-up; log:\n", Log()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(StrCat("quiverd did not start; log:\n", Log()));
}

int QuiverdProcess::Stop(int signal) {
  if (pid_ <= 0) return -1;
  kill(pid_, signal);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  port_ = 0;
  return status;
}

std::string QuiverdProcess::address() const { return StrCat("127.0.0.1:", port_); }

std::shared_ptr<grpc::Channel> QuiverdProcess::NewChannel() const {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(128 << 20);
  args.SetMaxSendMessageSize(128 << 20);
  // A fresh channel per server life: no stale connection after a restart.
  args.SetInt("grpc.use_local_subchannel_pool", 1);
  return grpc::CreateCustomChannel(address(), grpc::InsecureChannelCredentials(), args);
}

std::string QuiverdProcess::Log() const {
  std::ifstream in(log_file_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int RunCli(const std::vector<std::string>& args, std::string* output, bool stderr_too) {
  std::string cmd = "'" + QuiverCliPath() + "'";
  for (const std::string& a : args) {
    std::string quoted = "'";
    for (char c : a) {
      if (c == '\'') {
        quoted += "'\\''";
      } else {
        quoted += c;
      }
    }
    cmd += " " + quoted + "'";
  }
  if (stderr_too) cmd += " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  output->clear();
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) output->append(buf, n);
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string GenerateText(v1::Models::Stub* models, const v1::GenerateRequest& req) {
  grpc::ClientContext ctx;
  auto reader = models->Generate(&ctx, req);
  v1::GenerateResponse resp;
  std::string text;
  while (reader->Read(&resp)) text += resp.text();
  const grpc::Status status = reader->Finish();
  if (!status.ok()) ADD_FAILURE() << "Generate: " << status.error_message();
  return text;
}

absl::StatusOr<v1::DescribeStatsResponse> WaitUntilIndexed(v1::Points::Stub* points,
                                                           const std::string& collection,
                                                           absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  v1::DescribeStatsRequest req;
  req.set_collection(collection);
  for (;;) {
    v1::DescribeStatsResponse stats;
    grpc::ClientContext ctx;
    const grpc::Status s = points->DescribeStats(&ctx, req, &stats);
    if (!s.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                          StrCat("DescribeStats(", collection, "): ", s.error_message()));
    }
    if (stats.catching_up_count() == 0) return stats;
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          StrCat(collection, ": ", stats.catching_up_count(), " records still to index"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::pair<std::vector<std::string>, std::vector<std::string>> WalkAndExactIds(
    v1::Search::Stub* search, const std::string& collection, const std::vector<float>& vector,
    uint32_t n) {
  std::pair<std::vector<std::string>, std::vector<std::string>> ids;
  for (bool exact : {false, true}) {
    v1::QueryRequest q;
    q.set_collection(collection);
    q.set_top_k(n);
    q.set_ef_search(n);
    q.set_exact(exact);
    for (float x : vector) q.add_vector(x);
    v1::QueryResponse resp;
    grpc::ClientContext ctx;
    const grpc::Status status = search->Query(&ctx, q, &resp);
    if (!status.ok()) ADD_FAILURE() << "Query: " << status.error_message();
    auto& out = exact ? ids.second : ids.first;
    for (const v1::ScoredRecord& m : resp.matches()) out.push_back(m.id());
  }
  return ids;
}

}  // namespace quiver::testing
