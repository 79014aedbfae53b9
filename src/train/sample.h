// Text samples from the model: autoregressive generation with temperature and top-k, recomputing the
// forward pass over a sliding window of at most T tokens (no KV cache; samples are rare and short).
#pragma once

#include "data/tokenizer.h"
#include "model/model.h"

#include <cstdint>
#include <vector>

namespace sp {

struct SampleOptions {
  int64_t max_new_tokens = 128;
  double temperature = 0.8;
  int64_t top_k = 40;
  uint64_t seed = 0;
};

// Continues `prompt` (token ids, usually just BOS); `acts` must be allocated for B = 1. Returns the new ids.
std::vector<int32_t> generate(Model& model, Activations& acts, std::vector<int32_t> prompt,
                              const SampleOptions& opt);

}  // namespace sp
