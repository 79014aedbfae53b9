#include "core/check.h"

#include <cstdio>
#include <cstdlib>

namespace sp {

void check_failed(const char* what, const char* expr, const char* file, int line,
                  const std::string& detail) {
  std::fprintf(stderr, "softpick: %s check failed: %s at %s:%d%s%s\n", what, expr, file, line,
               detail.empty() ? "" : ": ", detail.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace sp
