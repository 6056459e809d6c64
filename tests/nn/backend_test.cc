// Each backend operation against a plain reference computed here; the CUDA
// backend (where a GPU is visible) against the same references.
#include "nn/backend.h"

#include <cmath>
#include <random>
#include <thread>

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace quiver::nn {
namespace {

std::vector<float> Random(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

void ExpectNear(const std::vector<float>& got, const std::vector<float>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  EXPECT_LT(testing::MaxAbsError(got, want), tol);  // Fails on NaN too.
}

class BackendTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto b = NewBackend(GetParam());
    if (!b.ok()) GTEST_SKIP() << GetParam() << " backend unavailable: " << b.status();
    be_ = *std::move(b);
    if (GetParam() == "cuda" && be_->name() != "cuda") GTEST_SKIP() << "no GPU visible";
  }
  std::unique_ptr<Backend> be_;
};

TEST_P(BackendTest, LinearGatherAddAndActivations) {
  const int64_t m = 37, k = 70, n = 29;
  auto x = Random(m * k, 1), w = Random(n * k, 2), b = Random(n, 3);
  std::vector<float> want(m * n);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = b[j];
      for (int64_t t = 0; t < k; ++t) s += double(x[i * k + t]) * w[j * k + t];
      want[i * n + j] = static_cast<float>(s);
    }
  }
  Tensor tx = be_->Upload(x, {m, k}), tw = be_->Upload(w, {n, k}), tb = be_->Upload(b, {n});
  Tensor ty = be_->Alloc({m, n});
  be_->Linear(tx, tw, &tb, &ty);
  ExpectNear(be_->Download(ty), want, 1e-4);
  // Gather + GatherAdd + Add.
  const std::vector<int32_t> ids = {3, 0, 3, 28};
  Tensor g = be_->Alloc({4, k});
  be_->Gather(tw, ids, &g);
  be_->GatherAdd(tw, ids, &g);
  be_->Add(&g, g);
  std::vector<float> gw(4 * k);
  for (int r = 0; r < 4; ++r) {
    for (int64_t t = 0; t < k; ++t) gw[r * k + t] = 4 * w[ids[r] * k + t];
  }
  ExpectNear(be_->Download(g), gw, 1e-5);
  // Activations.
  auto a = Random(1000, 4, 3.0f);
  Tensor ta = be_->Upload(a, {1000});
  be_->Gelu(&ta);
  std::vector<float> gelu(a.size());
  for (size_t i = 0; i < a.size(); ++i)
    gelu[i] = 0.5 * a[i] * (1 + std::erf(a[i] / std::sqrt(2.0)));
  ExpectNear(be_->Download(ta), gelu, 1e-5);
  ta = be_->Upload(a, {1000});
  be_->Tanh(&ta);
  std::vector<float> tanh(a.size());
  for (size_t i = 0; i < a.size(); ++i) tanh[i] = std::tanh(double(a[i]));
  ExpectNear(be_->Download(ta), tanh, 1e-5);
}

TEST_P(BackendTest, Norms) {
  const int64_t rows = 5, d = 300;
  auto x = Random(rows * d, 5, 2.0f), g = Random(d, 6), b = Random(d, 7);
  std::vector<float> ln(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < d; ++j) mean += x[r * d + j];
    mean /= d;
    for (int64_t j = 0; j < d; ++j) {
      var += (x[r * d + j] - mean) * (x[r * d + j] - mean);
    }
    var /= d;
    for (int64_t j = 0; j < d; ++j) {
      ln[r * d + j] = (x[r * d + j] - mean) / std::sqrt(var + 1e-12) * g[j] + b[j];
    }
  }
  Tensor t = be_->Upload(x, {rows, d});
  be_->LayerNorm(&t, be_->Upload(g, {d}), be_->Upload(b, {d}), 1e-12f);
  ExpectNear(be_->Download(t), ln, 1e-4);
}

// Sequences longer than the CPU's 64-row query blocks, masked keys.
TEST_P(BackendTest, MaskedMultiHeadAttention) {
  const int64_t batch = 3, seq = 150, heads = 4, hd = 8, width = heads * hd;
  const std::vector<int32_t> lengths = {150, 70, 1};
  auto q = Random(batch * seq * width, 8), k = Random(batch * seq * width, 9),
       v = Random(batch * seq * width, 10);
  std::vector<float> want(q.size(), 0.0f);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < seq; ++i) {
        std::vector<double> s(lengths[b]);
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j < lengths[b]; ++j) {
          double dot = 0;
          for (int64_t t = 0; t < hd; ++t) {
            dot += double(q[(b * seq + i) * width + h * hd + t]) *
                   k[(b * seq + j) * width + h * hd + t];
          }
          s[j] = dot / std::sqrt(double(hd));
          mx = std::max(mx, s[j]);
        }
        for (double& e : s) sum += (e = std::exp(e - mx));
        for (int64_t t = 0; t < hd; ++t) {
          double o = 0;
          for (int64_t j = 0; j < lengths[b]; ++j)
            o += s[j] / sum * v[(b * seq + j) * width + h * hd + t];
          want[(b * seq + i) * width + h * hd + t] = static_cast<float>(o);
        }
      }
    }
  }
  Tensor out = be_->Alloc({batch * seq, width});
  be_->Attention(be_->Upload(q, {batch * seq, width}), be_->Upload(k, {batch * seq, width}),
                 be_->Upload(v, {batch * seq, width}), batch, seq, heads, lengths, &out);
  ExpectNear(be_->Download(out), want, 1e-5);
}

// quiverd's embedding and rerank workers share one backend from two
// threads: concurrent forward passes give exactly their serial results.
TEST_P(BackendTest, ConcurrentCallsFromTwoThreadsMatchSerialOnes) {
  const int64_t batch = 2, seq = 8, heads = 2, width = 16;
  const std::vector<int32_t> lengths = {8, 5};
  auto run = [&](uint32_t seed) {
    const auto x = Random(batch * seq * width, seed), w = Random(width * width, seed + 1);
    const std::vector<int32_t> ids = {1, 0, 2, 1};
    Tensor t = be_->Upload(x, {batch * seq, width});
    Tensor q = be_->Alloc({batch * seq, width}), out = be_->Alloc({batch * seq, width});
    Tensor table = be_->Upload(Random(3 * width, seed + 2), {3, width});
    Tensor gathered = be_->Alloc({4, width});
    be_->Linear(t, be_->Upload(w, {width, width}), nullptr, &q);
    be_->Attention(q, t, t, batch, seq, heads, lengths, &out);
    be_->Gather(table, ids, &gathered);
    std::vector<float> all = be_->Download(out);
    const std::vector<float> g = be_->Download(gathered);
    all.insert(all.end(), g.begin(), g.end());
    return all;
  };
  const std::vector<float> want_a = run(100), want_b = run(200);
  std::vector<std::vector<float>> got_a, got_b;
  std::thread a([&] {
    for (int i = 0; i < 30; ++i) got_a.push_back(run(100));
  });
  std::thread b([&] {
    for (int i = 0; i < 30; ++i) got_b.push_back(run(200));
  });
  a.join();
  b.join();
  for (const auto& g : got_a) ASSERT_EQ(g, want_a);
  for (const auto& g : got_b) ASSERT_EQ(g, want_b);
}

INSTANTIATE_TEST_SUITE_P(Devices, BackendTest, ::testing::Values("cpu", "cuda"));

TEST(NewBackendTest, DeviceNames) {
  EXPECT_EQ((*NewBackend("cpu"))->name(), "cpu");
  EXPECT_TRUE(NewBackend("auto").ok());
  EXPECT_EQ(NewBackend("tpu").status().code(), absl::StatusCode::kInvalidArgument);
  auto cuda = NewBackend("cuda");
  if (!cuda.ok()) {
    EXPECT_EQ(cuda.status().code(), absl::StatusCode::kUnavailable);
  }
}

TEST(NewBackendTest, MatmulPrecisions) {
  EXPECT_EQ(*ParseMatmulPrecision("float32"), MatmulPrecision::kFloat32);
  EXPECT_EQ(*ParseMatmulPrecision("tf32"), MatmulPrecision::kTf32);
  EXPECT_EQ(*ParseMatmulPrecision("bf16"), MatmulPrecision::kBf16);
  EXPECT_EQ(ParseMatmulPrecision("fp16").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MatmulPrecisionName(MatmulPrecision::kTf32), "tf32");
  EXPECT_EQ(MatmulPrecisionName(MatmulPrecision::kBf16), "bf16");
  const BackendOptions tf32{MatmulPrecision::kTf32}, bf16{MatmulPrecision::kBf16};
  // Each device computes its own reduced precision and float32 for the
  // other's, and says which.
  EXPECT_EQ((*NewBackend("cpu", tf32))->precision(), MatmulPrecision::kFloat32);
  EXPECT_EQ((*NewBackend("cpu", bf16))->precision(), MatmulPrecision::kBf16);
  EXPECT_EQ((*NewBackend("cpu"))->precision(), MatmulPrecision::kFloat32);
  auto cuda = NewBackend("cuda", tf32);
  if (cuda.ok()) {
    EXPECT_EQ((*cuda)->precision(), MatmulPrecision::kTf32);
    EXPECT_EQ((*NewBackend("cuda", bf16))->precision(), MatmulPrecision::kFloat32);
  }
}

}  // namespace
}  // namespace quiver::nn
