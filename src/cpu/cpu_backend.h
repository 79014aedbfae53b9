// The CPU backend: the Backend interface over the reference ops of src/cpu/.
#pragma once

#include "backend/backend.h"

#include <memory>

namespace sp {

// dtype F32 (training) or F64 (gradient checks); threads <= 0 keeps the OpenMP default (all cores).
std::unique_ptr<Backend> make_cpu_backend(DType dtype, int threads);

}  // namespace sp
