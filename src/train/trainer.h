// The training loop: `softpick train`. See docs/architecture.md for the order of events.
#pragma once

#include "config/config.h"

namespace sp {

struct TrainSummary {
  int64_t steps_done = 0;
  int64_t resumed_from = -1;  // the checkpoint step it continued from, or -1 for a fresh start
  int64_t skipped_steps = 0;
  double first_val_loss = 0, last_val_loss = 0;
  double last_train_loss = 0;
  bool interrupted = false;
};

struct TrainOptions {
  bool overwrite = false;   // with checkpoint.resume = "never": delete the run directory's checkpoints first
  std::string init_from;    // start a new run from this checkpoint's weights (not its optimizer or step)
};

// Runs the whole training described by a resolved config, resuming from a checkpoint as
// checkpoint.resume says. Bad input ends with an sp::Error.
TrainSummary train(const Config& cfg, const TrainOptions& opt = {});

}  // namespace sp
