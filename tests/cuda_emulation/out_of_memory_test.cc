// The nn CUDA backend running out of device memory (the emulated device's
// capacity lowered): the calling thread's operations stop, the failure comes
// back as RESOURCE_EXHAUSTED once, and the backend works again afterwards.
#include <thread>

#include "gtest/gtest.h"
#include "nn/backend.h"
#include "tests/cuda_emulation/device_memory.h"

namespace quiver::nn {
namespace {

class CudaOutOfMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto b = NewBackend("cuda");
    ASSERT_TRUE(b.ok()) << b.status();
    be_ = *std::move(b);
  }
  void TearDown() override {
    cuda_emulation::SetDeviceMemoryLimit(cuda_emulation::kDefaultDeviceBytes);
  }
  std::unique_ptr<Backend> be_;
};

TEST_F(CudaOutOfMemoryTest, FailuresAreReportedOnceAndTheBackendRecovers) {
  const std::vector<float> ones(64, 1.0f);
  Tensor w = be_->Upload(ones, {8, 8});
  Tensor x = be_->Upload(ones, {8, 8});
  cuda_emulation::SetDeviceMemoryLimit(cuda_emulation::DeviceMemoryUsed() + 4096);
  Tensor big = be_->Alloc({1024, 1024});  // 4 MiB: does not fit.
  EXPECT_EQ(big.data(), nullptr);
  Tensor y = be_->Alloc({8, 8});  // Would fit, but the thread has failed: skipped.
  EXPECT_EQ(y.data(), nullptr);
  be_->Linear(x, w, nullptr, &y);  // Skipped, not a crash.
  EXPECT_EQ(be_->Download(y), std::vector<float>(64, 0.0f));
  const absl::Status error = be_->TakeError();
  EXPECT_EQ(error.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(error.message().find("GPU memory: cannot allocate 4 MiB"), std::string::npos) << error;
  EXPECT_TRUE(be_->TakeError().ok());  // Taken.

  cuda_emulation::SetDeviceMemoryLimit(cuda_emulation::kDefaultDeviceBytes);
  Tensor z = be_->Alloc({8, 8});
  be_->Linear(x, w, nullptr, &z);
  EXPECT_EQ(be_->Download(z), std::vector<float>(64, 8.0f));
  EXPECT_TRUE(be_->TakeError().ok());
}

TEST_F(CudaOutOfMemoryTest, OneThreadsFailureDoesNotStopAnother) {
  cuda_emulation::SetDeviceMemoryLimit(cuda_emulation::DeviceMemoryUsed() + (1 << 20));
  std::thread([&] {
    be_->Alloc({1024, 1024});
    EXPECT_EQ(be_->TakeError().code(), absl::StatusCode::kResourceExhausted);
  }).join();
  std::thread([&] {
    be_->Alloc({1024, 1024});  // Fails too, but stays pending on this thread.
  }).join();
  const std::vector<float> twos(16, 2.0f);
  Tensor t = be_->Upload(twos, {4, 4});
  EXPECT_EQ(be_->Download(t), twos);
  EXPECT_TRUE(be_->TakeError().ok());
}

}  // namespace
}  // namespace quiver::nn
