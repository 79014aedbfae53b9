#include "core/log.h"

#include "core/check.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace sp {

void init_logging(const std::string& level) {
  auto logger = spdlog::get("softpick");
  if (!logger) {
    logger = spdlog::stderr_color_mt("softpick");
    logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] %v");
    spdlog::set_default_logger(logger);
  }
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off")
    usage_fail("unknown log level '{}': use trace, debug, info, warn, error or off", level);
  logger->set_level(lvl);
}

}  // namespace sp
