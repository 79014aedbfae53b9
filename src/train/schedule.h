// Learning-rate schedules: linear warmup from 0, then cosine to lr_min x lr, warmup-stable-decay (WSD,
// linear decay to lr_min x lr over the last decay_ratio of the steps), or constant.
#pragma once

#include "config/config.h"

#include <cstdint>

namespace sp {

// The learning rate of optimizer step `step` (0-based) of the run described by `c`.
double learning_rate(const Config& c, int64_t step);

}  // namespace sp
