// STRATA_CHECK: a violated invariant is a bug; abort with file:line and the condition.
#pragma once

namespace strata::detail {
[[noreturn]] void check_failed(const char* file, int line, const char* cond, const char* msg);
}

#define STRATA_CHECK(cond)                                                         \
  do {                                                                             \
    if (!(cond)) ::strata::detail::check_failed(__FILE__, __LINE__, #cond, nullptr); \
  } while (0)
#define STRATA_CHECK_MSG(cond, msg)                                              \
  do {                                                                           \
    if (!(cond)) ::strata::detail::check_failed(__FILE__, __LINE__, #cond, msg); \
  } while (0)

#ifdef NDEBUG
#define STRATA_DCHECK(cond) ((void)0)
#else
#define STRATA_DCHECK(cond) STRATA_CHECK(cond)
#endif
