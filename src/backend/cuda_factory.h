// Where the CUDA backend plugs in: make_backend({"cuda"}) calls this, and only in builds that define
// SOFTPICK_HAVE_CUDA_BACKEND; other builds refuse "cuda" with a message. The CUDA backend's CMake target
// defines it PUBLIC, so that the tests of its users see it too.
#pragma once

#include "backend/backend.h"

#include <memory>

namespace sp {

// `device_ordinal` is the process's local rank; the backend runs on GPU device_ordinal % (visible devices),
// as docs/distributed.md describes. Its peak_flops() is gpu_peak_bf16_flops() of the device's name.
// `precision` is the dtype of the working weights and activations: BF16 (training) or F32 (tests).
// `deterministic` = false lets the bf16 attention backward add dq with atomics (BackendOptions).
std::unique_ptr<Backend> make_cuda_backend(int device_ordinal, DType precision, bool deterministic);

}  // namespace sp
