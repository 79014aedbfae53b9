// Text generation with the key/value cache (model/decode.h): the prompt is prefilled once, then each new
// token attends over the cached positions. Temperature, top-k and top-p (nucleus) sampling, or greedy;
// the same seed gives the same tokens.
//
// The context is capped at the decoder's capacity (the trained training.seq_len: RoPE and SSMax never saw
// later positions). When it is full, generation either stops or slides: the newest half of the sequence
// is prefilled again at positions 0.. and generation continues from there (docs/evaluation.md).
#pragma once

#include "core/rng.h"
#include "model/decode.h"
#include "model/model.h"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sp {

struct SampleOptions {
  int64_t max_new_tokens = 128;
  double temperature = 0.8;         // <= 0: greedy (the lowest id among equal maxima)
  int64_t top_k = 40;               // keep the k most likely tokens; <= 0: all
  double top_p = 1.0;               // then the smallest set whose probability reaches p; 1: all
  uint64_t seed = 0;
  std::vector<int32_t> stop_tokens;  // generation ends after emitting one of these (it is returned)
  bool slide = true;                 // at a full context: slide (true) or stop (false)
};

enum class StopReason { MaxTokens, StopToken, ContextFull };
const char* stop_reason_name(StopReason r);

struct Generation {
  std::vector<int32_t> ids;  // the new tokens, without the prompt
  StopReason stop = StopReason::MaxTokens;
  int64_t slides = 0;        // times the context was slid
};

// The next token for `logits` (V) under the options' temperature, top-k and top-p; one draw from rng
// unless greedy.
int32_t pick_token(std::span<const float> logits, const SampleOptions& opt, Rng& rng);

// Continues `prompt` (1 <= size <= dec.capacity(), ids < V; an Error otherwise). Resets the decoder first.
Generation generate(Decoder& dec, std::span<const int32_t> prompt, const SampleOptions& opt);

// Training-time samples: keeps the newest dec.capacity() tokens of the prompt and slides when the context
// is full. Returns the new ids.
std::vector<int32_t> generate_sliding(Decoder& dec, std::vector<int32_t> prompt, const SampleOptions& opt);

}  // namespace sp
