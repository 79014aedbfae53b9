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

void RunEta::add(Work w, double seconds) {
  if (w == kStep && !warmed_up_) {
    warmed_up_ = true;
    return;
  }
  seconds_[w] += seconds;
  done_[w] += 1;
}

std::optional<double> RunEta::seconds_left(const Counts& remaining) const {
  if (done_[kStep] < 2) return std::nullopt;
  double left = 0;
  for (int w = 0; w < kWorkKinds; ++w)
    if (done_[w] > 0) left += double(remaining[w]) * seconds_[w] / double(done_[w]);
  return left;
}

int64_t multiples_in(int64_t first, int64_t last, int64_t interval) {
  if (last <= first) return 0;
  auto below = [&](int64_t n) { return n <= 0 ? 0 : (n - 1) / interval + 1; };  // multiples in [0, n)
  return below(last) - below(first);
}

}  // namespace sp
