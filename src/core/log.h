// Logging through spdlog: timestamps and levels on stderr, so stdout stays free for command output
// (resolved configs, inspection reports) that scripts may parse.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace sp {

// Installs the process-wide logger. `level` is one of trace, debug, info, warn, error, off. In a job of
// several ranks (world_size > 1) every line carries "rank R", and ranks other than 0 log warnings and
// errors only.
void init_logging(const std::string& level = "info", int rank = 0, int world_size = 1);

}  // namespace sp
