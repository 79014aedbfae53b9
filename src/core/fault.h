// Fault injection for the tests of crash safety and failure handling: SOFTPICK_FAULT=NAME:STEP makes the
// process fail at a chosen point. Used points: "kill-in-checkpoint" (SIGKILL while writing the checkpoint
// of STEP) and "error-at-step" (an Error at the start of STEP). Documented in docs/checkpoints.md and
// docs/distributed.md.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>

namespace sp {

inline bool fault_requested(const std::string& name, int64_t step) {
  const char* f = std::getenv("SOFTPICK_FAULT");
  return f && std::string(f) == name + ":" + std::to_string(step);
}

}  // namespace sp
