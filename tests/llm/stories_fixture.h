// Reading the stories260K reference files (fixture stories260K).
#ifndef QUIVER_TESTS_LLM_STORIES_FIXTURE_H_
#define QUIVER_TESTS_LLM_STORIES_FIXTURE_H_

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace quiver::llm {

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The "generated_ids:" line of a .ids reference file.
inline std::vector<int> GeneratedIds(const std::string& path) {
  std::istringstream in(ReadAll(path));
  std::string line;
  std::vector<int> ids;
  while (std::getline(in, line)) {
    if (line.rfind("generated_ids:", 0) != 0) continue;
    std::istringstream nums(line.substr(14));
    for (int id; nums >> id;) ids.push_back(id);
  }
  return ids;
}

}  // namespace quiver::llm

#endif  // QUIVER_TESTS_LLM_STORIES_FIXTURE_H_
