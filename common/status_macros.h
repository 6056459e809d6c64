// Small Status helpers. Our Abseil (20220623) predates absl/status/status_macros.h.
#ifndef QUIVER_COMMON_STATUS_MACROS_H_
#define QUIVER_COMMON_STATUS_MACROS_H_

#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define QUIVER_CONCAT_INNER_(a, b) a##b
#define QUIVER_CONCAT_(a, b) QUIVER_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::absl::Status quiver_status_ = (expr);          \
    if (!quiver_status_.ok()) return quiver_status_; \
  } while (0)

// `lhs = value of expr` (an absl::StatusOr<T>), or returns its error status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(QUIVER_CONCAT_(quiver_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr)   \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return std::move(tmp).status(); \
  lhs = std::move(tmp).value()

// Broken invariants (our bugs, never user input): abort with a message.
#define QUIVER_CHECK(cond)                                                          \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

#endif  // QUIVER_COMMON_STATUS_MACROS_H_
