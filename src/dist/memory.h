// Memory per rank of a training run, from the config and the world size (docs/distributed.md).
#pragma once

#include "config/config.h"

#include <nlohmann/json.hpp>

namespace sp {

// The GPU backend's fixed cuBLASLt workspace (the residual projections' products, src/cuda/matmul.h).
constexpr size_t kGpuMatmulWorkspaceBytes = size_t(32) << 20;

struct MemoryBreakdown {
  double weights = 0, gradients = 0, optimizer = 0, activations = 0;  // bytes; optimizer: master + moments
  double total() const { return weights + gradients + optimizer + activations; }
};

// The CPU backend as built: fp32 weights, gradients, moments, activations and statistics; the master weights
// are the weights themselves. ZeRO-1 (with W > 1) keeps 1/W of the moments plus a 1/W gradient shard.
MemoryBreakdown cpu_memory_per_rank(const Config& c, int world_size);

// The precision policy of the GPU backend (docs/architecture.md): a bf16 working copy of the weights, fp32
// gradients, fp32 master weights and two moments in the optimizer (1/W of them each under ZeRO-1), bf16
// activations and fp32 statistics (RMSNorm rstd, attention lse).
MemoryBreakdown gpu_memory_per_rank(const Config& c, int world_size);

// {"world_size", "zero_stage", "cpu_fp32": {... GiB}, "gpu_bf16": {... GiB}}
nlohmann::ordered_json memory_report(const Config& c, int world_size);

}  // namespace sp
