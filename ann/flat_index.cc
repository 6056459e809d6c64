#include "ann/flat_index.h"

#include <algorithm>
#include <cstring>

#include "common/status_macros.h"
#include "common/thread_pool.h"

namespace quiver::ann {

namespace {
// Below this many multiply-adds a scan stays on one thread: splitting costs
// more than it saves (about 0.1 ms of work).
constexpr size_t kMinParallelWork = 1 << 18;
// Rows per parallel task: large enough to amortise the per-task heap.
constexpr size_t kMinRowsPerTask = 2048;
}  // namespace

FlatIndex::FlatIndex(size_t dimension, Metric metric, const DistanceKernels& kernels)
    : dim_(dimension), metric_(metric), kernels_(kernels) {
  QUIVER_CHECK(dimension >= 1);
}

void FlatIndex::Upsert(uint64_t label, std::span<const float> vector) {
  QUIVER_CHECK(vector.size() == dim_);
  size_t row;
  auto it = slot_of_.find(label);
  if (it != slot_of_.end()) {
    row = it->second;
  } else {
    row = labels_.size();
    labels_.push_back(label);
    data_.resize(data_.size() + dim_);
    slot_of_.emplace(label, static_cast<uint32_t>(row));
  }
  float* dst = data_.data() + row * dim_;
  std::memcpy(dst, vector.data(), dim_ * sizeof(float));
  if (metric_ == Metric::kCosine) NormalizeInPlace(std::span<float>(dst, dim_));
}

bool FlatIndex::Remove(uint64_t label) {
  auto it = slot_of_.find(label);
  if (it == slot_of_.end()) return false;
  const size_t row = it->second;
  const size_t last = labels_.size() - 1;
  slot_of_.erase(it);
  if (row != last) {
    // Move the last row into the hole so rows stay contiguous.
    std::memcpy(data_.data() + row * dim_, data_.data() + last * dim_, dim_ * sizeof(float));
    labels_[row] = labels_[last];
    slot_of_[labels_[row]] = static_cast<uint32_t>(row);
  }
  labels_.pop_back();
  data_.resize(last * dim_);
  return true;
}

void FlatIndex::Clear() {
  data_.clear();
  labels_.clear();
  slot_of_.clear();
}

size_t FlatIndex::BytesPerVector() const {
  // Row floats + label + hash map entry (key, slot, control byte).
  return dim_ * sizeof(float) + sizeof(uint64_t) + sizeof(uint64_t) + sizeof(uint32_t) + 1;
}

void FlatIndex::ScanRange(const float* query, size_t begin, size_t end, const LabelFilter* filter,
                          TopK* top) const {
  for (size_t row = begin; row < end; ++row) {
    const uint64_t label = labels_[row];
    if (filter != nullptr && !(*filter)(label)) continue;
    top->Push(label, Similarity(kernels_, metric_, query, data_.data() + row * dim_, dim_));
  }
}

std::vector<Hit> FlatIndex::Search(std::span<const float> query, const SearchParams& params) const {
  QUIVER_CHECK(query.size() == dim_);
  QUIVER_CHECK(params.top_k >= 1);
  std::vector<float> q(query.begin(), query.end());
  if (metric_ == Metric::kCosine) NormalizeInPlace(q);
  const size_t n = labels_.size();
  const size_t k = std::min(params.top_k, std::max<size_t>(n, 1));

  size_t tasks = 1;
  if (params.pool != nullptr && n * dim_ >= kMinParallelWork) {
    tasks = std::min(params.pool->size() + 1, std::max<size_t>(1, n / kMinRowsPerTask));
  }
  if (tasks <= 1) {
    TopK top(k);
    ScanRange(q.data(), 0, n, params.filter, &top);
    return top.Take();
  }
  std::vector<std::vector<Hit>> partial(tasks);
  const size_t rows_per_task = (n + tasks - 1) / tasks;
  params.pool->ParallelFor(tasks, [&](size_t t) {
    TopK top(k);
    const size_t begin = t * rows_per_task;
    ScanRange(q.data(), begin, std::min(n, begin + rows_per_task), params.filter, &top);
    partial[t] = top.Take();
  });
  TopK merged(k);
  for (const auto& hits : partial) {
    for (const Hit& h : hits) merged.Push(h.label, h.score);
  }
  return merged.Take();
}

const float* FlatIndex::Find(uint64_t label) const {
  auto it = slot_of_.find(label);
  return it == slot_of_.end() ? nullptr : data_.data() + size_t{it->second} * dim_;
}

std::vector<uint64_t> FlatIndex::SomeLabels(size_t max) const {
  return std::vector<uint64_t>(labels_.begin(), labels_.begin() + std::min(max, labels_.size()));
}

bool FlatIndex::Score(std::span<const float> query, uint64_t label, float* score) const {
  QUIVER_CHECK(query.size() == dim_);
  auto it = slot_of_.find(label);
  if (it == slot_of_.end()) return false;
  std::vector<float> q(query.begin(), query.end());
  if (metric_ == Metric::kCosine) NormalizeInPlace(q);
  *score = Similarity(kernels_, metric_, q.data(), data_.data() + it->second * dim_, dim_);
  return true;
}

void FlatIndex::ForEachLabel(const std::function<void(uint64_t)>& fn) const {
  for (uint64_t label : labels_) fn(label);
}

uint64_t FlatIndex::LabelWatermark() const {
  uint64_t watermark = 0;
  for (uint64_t label : labels_) watermark = std::max(watermark, label + 1);
  return watermark;
}

}  // namespace quiver::ann
