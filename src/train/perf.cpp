#include "train/perf.h"

#include <spdlog/fmt/fmt.h>

#include <cmath>
#include <limits>

namespace sp {

double mfu(double achieved_flops, double peak_flops) {
  return peak_flops > 0 ? achieved_flops / peak_flops : std::numeric_limits<double>::quiet_NaN();
}

std::string format_mfu(double mfu) { return std::isfinite(mfu) ? fmt::format("{:.1f}%", 100 * mfu) : "n/a"; }

std::string peak_summary(const Backend& b) {
  const double peak = b.peak_flops();
  if (peak > 0) return fmt::format("{}: {:.1f} GFLOP/s", b.peak_description(), peak / 1e9);
  return b.peak_description() + ": unknown, MFU is n/a";
}

}  // namespace sp
