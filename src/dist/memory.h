// Memory per rank of a training run, from the config and the world size (docs/distributed.md).
#pragma once

#include "config/config.h"

#include <nlohmann/json.hpp>

namespace sp {

struct MemoryBreakdown {
  double weights = 0, gradients = 0, optimizer = 0, activations = 0;  // bytes
  double total() const { return weights + gradients + optimizer + activations; }
};

// The CPU backend as built: fp32 weights, gradients, moments and activations; ZeRO-1 (with W > 1) keeps
// 1/W of the moments plus a 1/W gradient shard.
MemoryBreakdown cpu_memory_per_rank(const Config& c, int world_size);

// The mixed-precision layout of the GPU backend (design reference §3.3): bf16 weights and activations, fp32
// master weights, gradients and moments; ZeRO-1 shards the master weights and the moments.
MemoryBreakdown gpu_memory_per_rank(const Config& c, int world_size);

// {"world_size", "zero_stage", "cpu_fp32": {... GiB}, "gpu_bf16": {... GiB}}
nlohmann::ordered_json memory_report(const Config& c, int world_size);

}  // namespace sp
