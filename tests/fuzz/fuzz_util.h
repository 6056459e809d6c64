// Helpers for the libFuzzer targets in tests/fuzz (see CMakeLists.txt).
#ifndef QUIVER_TESTS_FUZZ_FUZZ_UTIL_H_
#define QUIVER_TESTS_FUZZ_FUZZ_UTIL_H_

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace quiver::fuzz {

inline std::string_view Bytes(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// The loaders read files: each input is written to one per-process file
// (in /dev/shm when there is one) that the loader then opens.
inline std::string WriteInput(const uint8_t* data, size_t size, const char* suffix) {
  static const std::string path = [suffix] {
    const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return std::string(dir) + "/quiver-fuzz-" + std::to_string(getpid()) + suffix;
  }();
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    if (size > 0) std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  return path;
}

// Stops the fuzzer with a crash the sanitizers report, for a property that
// does not hold.
inline void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property failed: %s\n", what);
    __builtin_trap();
  }
}

}  // namespace quiver::fuzz

#endif  // QUIVER_TESTS_FUZZ_FUZZ_UTIL_H_
