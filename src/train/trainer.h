// The training loop: `softpick train`. See docs/architecture.md for the order of events.
#pragma once

#include "config/config.h"

namespace sp {

struct TrainSummary {
  int64_t steps_done = 0;
  int64_t skipped_steps = 0;
  double first_val_loss = 0, last_val_loss = 0;
  double last_train_loss = 0;
  bool interrupted = false;
};

// Runs the whole training described by a resolved config. Bad input ends with an sp::Error.
TrainSummary train(const Config& cfg);

}  // namespace sp
