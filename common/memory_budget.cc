#include "common/memory_budget.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/strings.h"

namespace quiver {
namespace {

constexpr std::array<std::string_view, kMemoryParts> kPartNames = {
    "vectors", "graph", "postings", "metadata", "models", "kv_cache", "caches"};

std::string Megabytes(uint64_t bytes) {
  return absl::StrFormat("%.1f MB", static_cast<double>(bytes) / (1 << 20));
}

// The first number in the file, or 0.
uint64_t ReadNumber(const char* path) {
  std::ifstream in(path);
  std::string word;
  uint64_t value = 0;
  if (in >> word && absl::SimpleAtoi(word, &value)) return value;
  return 0;
}

}  // namespace

std::string_view MemoryPartName(MemoryPart part) { return kPartNames[static_cast<size_t>(part)]; }

std::optional<MemoryPart> ParseMemoryPart(std::string_view name) {
  for (size_t i = 0; i < kMemoryParts; ++i) {
    if (kPartNames[i] == name) return static_cast<MemoryPart>(i);
  }
  return std::nullopt;
}

uint64_t Sum(const MemoryAmounts& a) {
  uint64_t sum = 0;
  for (uint64_t v : a) sum += v;
  return sum;
}

std::string DescribeMemory(const MemoryAmounts& a) {
  std::string out;
  for (size_t i = 0; i < kMemoryParts; ++i) {
    if (a[i] == 0) continue;
    if (!out.empty()) out += ", ";
    out += StrCat(kPartNames[i], " ", Megabytes(a[i]));
  }
  return out.empty() ? "nothing" : out;
}

MemoryBudget::MemoryBudget(uint64_t total_bytes, MemoryAmounts part_limits, std::string flag)
    : total_limit_(total_bytes), part_limits_(part_limits), flag_(std::move(flag)) {}

MemoryAmounts MemoryBudget::used() const {
  ReaderMutexLock l(&mu_);
  return used_;
}

absl::Status MemoryBudget::CheckLocked(const MemoryAmounts& bytes, std::string_view what) const {
  const uint64_t need = Sum(bytes);
  const uint64_t held = Sum(used_);
  if (total_limit_ > 0 && held + need > total_limit_) {
    return absl::ResourceExhaustedError(
        StrCat(what, " needs ", Megabytes(need), " (", DescribeMemory(bytes),
               ") but the memory budget of ", Megabytes(total_limit_), " (", flag_, ") has ",
               Megabytes(total_limit_ - std::min(held, total_limit_)),
               " left; held: ", DescribeMemory(used_)));
  }
  for (size_t i = 0; i < kMemoryParts; ++i) {
    if (part_limits_[i] > 0 && bytes[i] > 0 && used_[i] + bytes[i] > part_limits_[i]) {
      return absl::ResourceExhaustedError(
          StrCat(what, " needs ", Megabytes(bytes[i]), " of ", kPartNames[i], " but its limit of ",
                 Megabytes(part_limits_[i]), " (--memory_part_budget_mb) has ",
                 Megabytes(part_limits_[i] - std::min(used_[i], part_limits_[i])), " left"));
    }
  }
  return absl::OkStatus();
}

absl::Status MemoryBudget::CheckFits(const MemoryAmounts& bytes, std::string_view what) const {
  ReaderMutexLock l(&mu_);
  return CheckLocked(bytes, what);
}

absl::StatusOr<MemoryReservation> MemoryBudget::Reserve(const MemoryAmounts& bytes,
                                                        std::string_view what) {
  MutexLock l(&mu_);
  if (absl::Status s = CheckLocked(bytes, what); !s.ok()) return s;
  for (size_t i = 0; i < kMemoryParts; ++i) used_[i] += bytes[i];
  return MemoryReservation(this, bytes);
}

void MemoryBudget::Adjust(const MemoryAmounts& from, const MemoryAmounts& to) {
  MutexLock l(&mu_);
  for (size_t i = 0; i < kMemoryParts; ++i) {
    // A part never goes below zero, whatever an owner's estimates did.
    used_[i] = to[i] >= from[i] ? used_[i] + (to[i] - from[i])
                                : used_[i] - std::min(used_[i], from[i] - to[i]);
  }
}

MemoryReservation& MemoryReservation::operator=(MemoryReservation&& other) noexcept {
  if (this != &other) {
    Reset();
    budget_ = other.budget_;
    bytes_ = other.bytes_;
    other.budget_ = nullptr;
  }
  return *this;
}

void MemoryReservation::Reset() {
  if (budget_ != nullptr) budget_->Release(bytes_);
  budget_ = nullptr;
}

absl::StatusOr<MemoryAmounts> ParseMemoryPartLimits(std::string_view spec) {
  MemoryAmounts limits{};
  while (!spec.empty()) {
    const size_t comma = spec.find(',');
    const std::string_view item = StripWhitespace(spec.substr(0, comma));
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    std::optional<MemoryPart> part;
    if (eq != std::string_view::npos) part = ParseMemoryPart(StripWhitespace(item.substr(0, eq)));
    if (!part) {
      std::string names;
      for (std::string_view n : kPartNames) StrAppend(&names, names.empty() ? "" : ", ", n);
      return absl::InvalidArgumentError(
          StrCat("memory part limit ", Quoted(item), " is not PART=MB with PART one of ", names));
    }
    const std::string number(StripWhitespace(item.substr(eq + 1)));
    uint64_t mb = 0;
    if (!absl::SimpleAtoi(number, &mb) || mb == 0 || mb > (uint64_t{1} << 40)) {
      return absl::InvalidArgumentError(
          StrCat("memory part limit ", Quoted(item), " needs a whole number of MiB above 0"));
    }
    At(limits, *part) = mb << 20;
  }
  return limits;
}

uint64_t AvailableMemoryBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  uint64_t physical = pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * page : 0;
  // cgroup v2, then v1 (whose "no limit" is a huge number).
  for (const char* path :
       {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    const uint64_t limit = ReadNumber(path);
    if (limit > 0 && (physical == 0 || limit < physical)) return limit;
  }
  return physical;
}

uint64_t ResidentBytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGE_SIZE));
}

}  // namespace quiver
