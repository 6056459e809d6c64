// The popcnt Hamming kernel shared by the AVX2 and AVX-512 kernel files
// (both compiled with -mpopcnt). Internal linkage on purpose: each file gets
// its own copy compiled for its instruction set, so the linker can never
// hand an AVX-512 build of it to a CPU that only has AVX2.
#ifndef QUIVER_ANN_HAMMING_POPCNT_H_
#define QUIVER_ANN_HAMMING_POPCNT_H_

#include <cstddef>
#include <cstdint>

namespace quiver::ann::internal {

// Two accumulators; scalar popcnt per word: a 768-d code is 12 words, too
// short for vpopcntq's setup (which not every AVX-512 CPU has anyway).
[[maybe_unused]] static uint32_t HammingPopcnt(const uint64_t* a, const uint64_t* b, size_t words) {
  uint64_t s0 = 0, s1 = 0;
  size_t i = 0;
  for (; i + 2 <= words; i += 2) {
    s0 += static_cast<uint64_t>(__builtin_popcountll(a[i] ^ b[i]));
    s1 += static_cast<uint64_t>(__builtin_popcountll(a[i + 1] ^ b[i + 1]));
  }
  if (i < words) s0 += static_cast<uint64_t>(__builtin_popcountll(a[i] ^ b[i]));
  return static_cast<uint32_t>(s0 + s1);
}

}  // namespace quiver::ann::internal

#endif  // QUIVER_ANN_HAMMING_POPCNT_H_
