// Where a run starts: fresh, or from which checkpoint (checkpoint.resume = auto | never | PATH), with the
// checks that make resuming safe. Called once from the top of train().
#pragma once

#include "config/config.h"

#include <optional>
#include <string>

namespace sp {

// The checkpoint directory to resume from, or nullopt to start fresh. Under "auto", damaged checkpoints
// are skipped with a warning naming the file; "never" refuses a run directory that already has
// checkpoints unless `overwrite` (then they are deleted). An Error explains every refusal.
std::optional<std::string> choose_resume_checkpoint(const Config& cfg, bool overwrite);

// Refuses (with a list of the differences) a checkpoint whose config differs from `cfg` in a key that must
// not change; logs the allowed differences.
void check_resume_config(const Config& cfg, const std::string& checkpoint_dir, bool weights_only);

// Keeps only the metrics records of steps before `step`, so a resumed run's metrics.jsonl reads as if the
// run had never stopped. Rewrites the file atomically.
void truncate_metrics(const std::string& path, int64_t step);

}  // namespace sp
