// --name=value command-line flags for the benchmark programs.
#ifndef QUIVER_BENCH_BENCH_FLAGS_H_
#define QUIVER_BENCH_BENCH_FLAGS_H_

#include <string>

namespace quiver::bench {

// The value of --name=VALUE, or `fallback` when absent.
inline std::string Flag(int argc, char** argv, const std::string& name,
                        const std::string& fallback) {
  const std::string prefix = "--" + name + "=";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind(prefix, 0) == 0) return a.substr(prefix.size());
  }
  return fallback;
}

inline long Flag(int argc, char** argv, const std::string& name, long fallback) {
  const std::string v = Flag(argc, argv, name, std::string());
  return v.empty() ? fallback : std::stol(v);
}

}  // namespace quiver::bench

#endif  // QUIVER_BENCH_BENCH_FLAGS_H_
