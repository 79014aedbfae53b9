#include "eval/passkey.h"

#include "core/check.h"
#include "core/rng.h"

#include <cmath>
#include <cstring>

namespace sp {

namespace {

const char* const kIntro =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz "
    "you about the important information there.";
const char* const kFiller[] = {" The grass is green.", " The sky is blue.", " The sun is yellow.", " Here we go.",
                               " There and back again."};
constexpr int64_t kFillerCount = 5;
const char* const kQuestion = " What is the pass key? The pass key is";
constexpr int64_t kAnswerTokens = 6;  // " 68302" in the byte vocabulary

// Byte-vocabulary tokens of BOS + the prompt with `sentences` filler sentences (the key's digits and the
// depth do not change the length).
int64_t prompt_tokens(int64_t sentences) {
  return 1 + int64_t(passkey_prompt("00000", sentences, 0).size());
}

}  // namespace

std::string passkey_prompt(const std::string& key, int64_t sentences, int64_t before) {
  SP_ASSERT(before >= 0 && before <= sentences, "passkey: key after {} of {} sentences", before, sentences);
  std::string s = kIntro;
  for (int64_t i = 0; i < sentences; ++i) {
    if (i == before) s += " The pass key is " + key + ". Remember it. " + key + " is the pass key.";
    s += kFiller[i % kFillerCount];
  }
  if (before == sentences) s += " The pass key is " + key + ". Remember it. " + key + " is the pass key.";
  return s + kQuestion;
}

int64_t passkey_min_length() { return prompt_tokens(1) + kAnswerTokens; }

EvalTask passkey_task(const PasskeyOptions& opt, const Tokenizer& byte_tokenizer, int32_t bos_token_id) {
  SP_ASSERT(byte_tokenizer.is_byte_level(), "native passkey prompts need the byte vocabulary");
  SP_ASSERT(opt.trials >= 1, "passkey trials {}", opt.trials);
  EvalTask task;
  task.name = "passkey";
  task.path = fmt::format("native prompts, seed {}", opt.seed);
  task.kind = TaskKind::Generate;
  task.header = nlohmann::json::object();
  for (int64_t L : opt.lengths) {
    if (L < passkey_min_length())
      usage_fail("--passkey-lengths: {} tokens is too short; a passkey prompt needs at least {}", L,
                 passkey_min_length());
    // the most filler sentences such that prompt + answer fit in L (at least one, by the check above)
    int64_t sentences = 0, tokens = prompt_tokens(0) + kAnswerTokens;
    for (;;) {
      const int64_t next = int64_t(std::strlen(kFiller[sentences % kFillerCount]));
      if (tokens + next > L) break;
      tokens += next;
      ++sentences;
    }
    for (int64_t i = 0; i < opt.trials; ++i) {
      const double depth = opt.trials > 1 ? double(i) / double(opt.trials - 1) : 0.5;
      const int64_t before = std::llround(depth * double(sentences));
      Rng rng(mix_seed(opt.seed, uint64_t(L), uint64_t(i)));
      const std::string key = std::to_string(10000 + rng.below(90000));
      GenerateExample ex;
      ex.prompt = byte_tokenizer.encode_bytes(passkey_prompt(key, sentences, before), /*add_bos=*/false);
      ex.prompt.insert(ex.prompt.begin(), bos_token_id);
      ex.answer = key;
      ex.max_tokens = kAnswerTokens;
      ex.group = std::to_string(L);
      ex.meta = {{"depth", depth}, {"length", L}};
      ex.line = int64_t(task.generate.size()) + 1;
      task.generate.push_back(std::move(ex));
    }
  }
  return task;
}

}  // namespace sp
