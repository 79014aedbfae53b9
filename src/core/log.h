// Logging through spdlog: timestamps and levels on stderr, so stdout stays free for command output
// (resolved configs, inspection reports) that scripts may parse.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace sp {

// Installs the process-wide logger. `level` is one of trace, debug, info, warn, error, off.
void init_logging(const std::string& level = "info");

}  // namespace sp
