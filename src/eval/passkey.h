// Passkey retrieval (the test of Mohtashami & Jaggi's landmark-attention paper, used by the Softpick paper
// at growing context): a 5-digit key hidden at some depth in repeated filler text, then a question; the
// model must continue with the key (greedy decoding, exact match).
//
//   There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz
//   you about the important information there. The grass is green. The sky is blue. ... The pass key is
//   68302. Remember it. 68302 is the pass key. ... Here we go. There and back again. What is the pass key?
//   The pass key is
//
// Native prompts are generated here for the byte vocabulary: at context length L, BOS + prompt + the
// answer (" 68302", 6 tokens) fill L tokens to within one filler sentence. Trial i of n puts the key after
// a fraction i / (n - 1) of the filler (depth 0 = right after the introduction, 1 = right before the
// question); the keys come from a seeded RNG, so a seed gives the same prompts on every machine.
// Models with a tokenizer.json use prompts written by scripts/export_eval_tasks.py --passkey-lengths.
#pragma once

#include "data/tokenizer.h"
#include "eval/task_file.h"

#include <cstdint>
#include <string>
#include <vector>

namespace sp {

struct PasskeyOptions {
  std::vector<int64_t> lengths;  // context lengths L in tokens
  int64_t trials = 5;            // prompts per length, at evenly spaced depths
  uint64_t seed = 0;
};

// The prompt text (without BOS) for a key, a filler of `sentences` sentences and the key after
// `before` of them.
std::string passkey_prompt(const std::string& key, int64_t sentences, int64_t before);

// The smallest context length a native prompt fits in (one filler sentence).
int64_t passkey_min_length();

// A generation task (kind Generate, one group per length) with the native byte-vocabulary prompts.
// Lengths below passkey_min_length() are a usage Error.
EvalTask passkey_task(const PasskeyOptions& opt, const Tokenizer& byte_tokenizer, int32_t bos_token_id);

}  // namespace sp
