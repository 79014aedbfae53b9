// Scoring a model on validation shards and on task files, all through the cached decoder (one sequence
// at a time, memory independent of the batch shape of training). The scoring rules are those of
// lm-eval-harness; docs/evaluation.md states them and where they come from.
#pragma once

#include "data/tokenizer.h"
#include "data/windows.h"
#include "eval/task_file.h"
#include "model/decode.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sp {

// The log-likelihood of a continuation given its context, and whether greedy decoding would produce it
// (every continuation token is the argmax of its position's logits).
struct ContinuationScore {
  double logprob = 0;
  bool greedy = false;
};

// lm-eval-harness loglikelihood requests: the input is (context + continuation)[-(T + 1):][:-1], so a
// context too long for the decoder's T positions loses its oldest tokens; the logits of the last
// len(continuation) positions score the continuation. The context is prefilled once and reused while
// consecutive calls share it (the choices of one question), so the scorer must be the decoder's only user
// while it lives.
class ContinuationScorer {
public:
  explicit ContinuationScorer(Decoder& dec) : dec_(dec) {}
  // context non-empty; 1 <= continuation.size() <= T (checked by the caller)
  ContinuationScore score(std::span<const int32_t> context, std::span<const int32_t> continuation);

private:
  Decoder& dec_;
  std::vector<int32_t> cached_;    // the context now in the decoder
  std::vector<float> last_logits_;  // (V) its last position's logits
  std::vector<float> logits_;       // (n, V) scratch
};

// The metrics of one multiple-choice question from the choices' log-likelihoods: acc picks the argmax of
// the summed log-probabilities, acc_norm the argmax of each divided by its choice's length in characters
// (the first maximum wins ties, as numpy's argmax).
struct ChoiceOutcome {
  bool acc = false, acc_norm = false;
  int64_t pred = 0, pred_norm = 0;
};
ChoiceOutcome choice_outcome(const std::vector<double>& logprobs, const std::vector<double>& chars, int64_t gold);

// lm-eval-harness rolling windows over the sequence S = [BOS] + document (n tokens) for a context of T:
// window w feeds S[start, end - 1) and scores the predictions of S[pred, end). Every document token is
// predicted exactly once; the first window starts at BOS, the later ones see the T tokens before them.
struct RollingWindow {
  int64_t start, pred, end;
};
std::vector<RollingWindow> rolling_windows(int64_t n, int64_t T);

struct Metric {
  std::string name;
  double value = 0;
  std::optional<double> stderr_of_mean;  // for accuracies: sample standard deviation / sqrt(n)
};

struct TaskResult {
  std::string name, path;
  TaskKind kind = TaskKind::Choice;
  std::string kind_label;   // "multiple choice", "greedy", "perplexity", "generate", "passkey"
  int64_t examples = 0;
  std::vector<Metric> metrics;  // in the order they are printed
  struct Group {
    std::string name;
    int64_t correct = 0, total = 0;
  };
  std::vector<Group> groups;    // generation tasks with groups (passkey: one per context length)
  nlohmann::json outputs = nlohmann::json::array();  // one object per example (choice and generation tasks)
  double seconds = 0;
};

TaskResult evaluate_task(Decoder& dec, const EvalTask& task, const Tokenizer* tokenizer);

struct ValResult {
  int64_t windows = 0, tokens = 0;
  double loss = 0;  // mean cross-entropy per predicted token, nats
  double seconds = 0;
};

// Mean loss over the unshuffled windows of T + 1 tokens of the shards (T = the decoder's capacity) cut in
// `layout`, the windows the trainer's evaluation uses; at most max_tokens predicted tokens when > 0.
ValResult evaluate_val(Decoder& dec, const std::vector<std::string>& files, int64_t max_tokens,
                       int64_t bos_token_id, DataLayout layout, const std::string& what);

}  // namespace sp
