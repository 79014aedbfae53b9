#include "core/log.h"

#include "core/check.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <algorithm>

namespace sp {

void init_logging(const std::string& level, int rank, int world_size) {
  auto logger = spdlog::get("softpick");
  if (!logger) {
    logger = spdlog::stderr_color_mt("softpick");
    spdlog::set_default_logger(logger);
  }
  logger->set_pattern(world_size > 1 ? fmt::format("[%Y-%m-%d %H:%M:%S.%e] [rank {}] [%^%l%$] %v", rank)
                                     : std::string("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] %v"));
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off")
    usage_fail("unknown log level '{}': use trace, debug, info, warn, error or off", level);
  if (rank != 0) lvl = std::max(lvl, spdlog::level::warn);
  logger->set_level(lvl);
}

}  // namespace sp
