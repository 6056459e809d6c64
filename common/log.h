// Structured log lines in logfmt, one line per event on stderr:
//   ts=2026-11-28T10:00:00.123Z level=info msg="server started" addr=127.0.0.1:50051
// Thread-safe. Values containing spaces, quotes or '=' are quoted.
#ifndef QUIVER_COMMON_LOG_H_
#define QUIVER_COMMON_LOG_H_

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "common/strings.h"

namespace quiver {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Events below `level` are dropped. Default: kInfo.
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();

// One key=value field. The value is formatted with absl::StrCat rules.
struct LogField {
  template <typename T>
  LogField(std::string_view k, const T& v) : key(k), value(StrCat(v)) {}
  LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
  LogField(std::string_view k, const char* v) : key(k), value(v) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(v) {}
  LogField(std::string_view k, bool v) : key(k), value(v ? "true" : "false") {}
  std::string_view key;
  std::string value;
};

void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {});

// Formats a line without writing it (exposed for tests).
std::string FormatLogLine(LogLevel level, std::string_view msg,
                          std::initializer_list<LogField> fields);

}  // namespace quiver

#endif  // QUIVER_COMMON_LOG_H_
