#include "eval/scoring.h"

#include "core/check.h"
#include "core/log.h"
#include "data/loader.h"
#include "train/sample.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace sp {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A progress line every 10 seconds: task evaluations on a CPU take minutes.
struct Progress {
  std::string what;
  size_t total;
  Clock::time_point last = Clock::now();
  void tick(size_t done) {
    if (seconds_since(last) < 10) return;
    last = Clock::now();
    spdlog::info("{}: {}/{}", what, done, total);
  }
};

// log softmax(logits)[token] in double, and whether token is the first maximum (torch's argmax).
std::pair<double, bool> token_logprob(std::span<const float> logits, int32_t token) {
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  const double m = logits[best];
  double sum = 0;
  for (float x : logits) sum += std::exp(double(x) - m);
  return {double(logits[size_t(token)]) - m - std::log(sum), best == size_t(token)};
}

// Mean of 0/1 outcomes and the standard error of that mean (sample standard deviation / sqrt(n)), as
// lm-eval-harness reports it.
Metric mean_metric(const std::string& name, const std::vector<double>& xs) {
  const double n = double(xs.size());
  double mean = 0;
  for (double x : xs) mean += x / n;
  double var = 0;
  for (double x : xs) var += (x - mean) * (x - mean);
  const double se = xs.size() > 1 ? std::sqrt(var / (n - 1) / n) : 0.0;
  return Metric{name, mean, se};
}

TaskResult evaluate_choice(Decoder& dec, const EvalTask& task) {
  TaskResult r;
  ContinuationScorer scorer(dec);
  const bool single = task.choice.front().choices.size() == 1;
  r.kind_label = single ? "greedy" : "multiple choice";
  std::vector<double> acc, acc_norm;
  double ll_sum = 0;
  Progress progress{task.name, task.choice.size()};
  for (size_t e = 0; e < task.choice.size(); ++e) {
    const ChoiceExample& ex = task.choice[e];
    std::vector<double> lls;
    bool greedy = false;  // of the single continuation
    for (size_t i = 0; i < ex.choices.size(); ++i) {
      if (int64_t(ex.choices[i].size()) > dec.capacity())
        fail("{}:{}: choice {} has {} tokens, more than the context of {}", task.path, ex.line, i,
             ex.choices[i].size(), dec.capacity());
      const ContinuationScore s = scorer.score(ex.context, ex.choices[i]);
      lls.push_back(s.logprob);
      greedy = s.greedy;
    }
    nlohmann::json out = {{"line", ex.line}, {"logprobs", lls}};
    if (single) {  // LAMBADA: correct iff greedy decoding produces the target
      acc.push_back(greedy ? 1.0 : 0.0);
      ll_sum += lls[0];
      out["greedy"] = greedy;
    } else {
      const ChoiceOutcome o = choice_outcome(lls, ex.choice_chars, ex.gold);
      acc.push_back(o.acc ? 1.0 : 0.0);
      acc_norm.push_back(o.acc_norm ? 1.0 : 0.0);
      out["pred"] = o.pred;
      out["pred_norm"] = o.pred_norm;
    }
    r.outputs.push_back(std::move(out));
    progress.tick(e + 1);
  }
  r.metrics.push_back(mean_metric("acc", acc));
  if (single) r.metrics.push_back(Metric{"perplexity", std::exp(-ll_sum / double(acc.size())), std::nullopt});
  else r.metrics.push_back(mean_metric("acc_norm", acc_norm));
  return r;
}

TaskResult evaluate_perplexity(Decoder& dec, const EvalTask& task) {
  TaskResult r;
  r.kind_label = "perplexity";
  const int64_t T = dec.capacity();
  const int32_t bos = int32_t(dec.model().config().bos_token_id);
  int64_t words = 0, bytes = 0, tokens = 0;
  std::vector<int32_t> seq, inputs, targets;
  Progress progress{task.name, task.documents.size()};
  for (size_t e = 0; e < task.documents.size(); ++e) {
    const DocumentExample& doc = task.documents[e];
    seq.assign(1, bos);
    seq.insert(seq.end(), doc.tokens.begin(), doc.tokens.end());
    for (const RollingWindow& w : rolling_windows(int64_t(doc.tokens.size()), T)) {
      inputs.assign(seq.begin() + w.start, seq.begin() + w.end - 1);
      targets.resize(inputs.size());
      for (int64_t j = 0; j < int64_t(inputs.size()); ++j)  // position j predicts S[start + j + 1]
        targets[size_t(j)] = w.start + j + 1 >= w.pred ? seq[size_t(w.start + j + 1)] : -1;
      dec.reset();
      dec.append_scored(inputs, targets);
    }
    words += doc.words;
    bytes += doc.bytes;
    tokens += int64_t(doc.tokens.size());
    progress.tick(e + 1);
  }
  const double ll = -dec.take_loss().sum;
  r.metrics.push_back(Metric{"word_perplexity", std::exp(-ll / double(words)), std::nullopt});
  r.metrics.push_back(Metric{"byte_perplexity", std::exp(-ll / double(bytes)), std::nullopt});
  r.metrics.push_back(Metric{"bits_per_byte", -ll / double(bytes) / std::log(2.0), std::nullopt});
  r.metrics.push_back(Metric{"token_perplexity", std::exp(-ll / double(tokens)), std::nullopt});
  return r;
}

TaskResult evaluate_generate(Decoder& dec, const EvalTask& task, const Tokenizer* tokenizer) {
  if (!tokenizer)
    fail("{}: generation tasks compare decoded text, which needs the model's tokenizer; pass --tokenizer",
         task.path);
  TaskResult r;
  r.kind_label = "generate";
  std::vector<double> acc;
  SampleOptions opt;
  opt.temperature = 0;  // greedy
  opt.slide = false;
  Progress progress{task.name, task.generate.size()};
  for (size_t e = 0; e < task.generate.size(); ++e) {
    const GenerateExample& ex = task.generate[e];
    // the last generated token is never fed back, so the cache needs prompt + max_tokens - 1 positions
    if (int64_t(ex.prompt.size()) + ex.max_tokens - 1 > dec.capacity())
      fail("{}:{}: a prompt of {} tokens and {} generated tokens do not fit the context of {}", task.path,
           ex.line, ex.prompt.size(), ex.max_tokens, dec.capacity());
    opt.max_new_tokens = ex.max_tokens;
    const Generation g = generate(dec, ex.prompt, opt);
    const std::string text = tokenizer->decode(g.ids);
    const std::string stripped = text.substr(std::min(text.size(), text.find_first_not_of(" \t\n")));
    const bool correct = stripped.rfind(ex.answer, 0) == 0;
    acc.push_back(correct ? 1.0 : 0.0);
    auto group = std::find_if(r.groups.begin(), r.groups.end(), [&](auto& g) { return g.name == ex.group; });
    if (group == r.groups.end()) group = r.groups.insert(r.groups.end(), TaskResult::Group{ex.group, 0, 0});
    group->correct += correct;
    group->total += 1;
    nlohmann::json out = {{"line", ex.line}, {"group", ex.group}, {"prompt_tokens", ex.prompt.size()},
                          {"answer", ex.answer}, {"output", text}, {"correct", correct}};
    if (!ex.meta.empty()) out["meta"] = ex.meta;
    r.outputs.push_back(out);
    progress.tick(e + 1);
  }
  r.metrics.push_back(mean_metric("acc", acc));
  if (r.groups.size() == 1 && r.groups[0].name.empty()) r.groups.clear();
  return r;
}

}  // namespace

ContinuationScore ContinuationScorer::score(std::span<const int32_t> context, std::span<const int32_t> cont) {
  const size_t T = size_t(dec_.capacity()), V = size_t(dec_.vocab_size()), total = context.size() + cont.size();
  SP_ASSERT(!context.empty() && !cont.empty() && cont.size() <= T, "score: context {}, continuation {}, T {}",
            context.size(), cont.size(), T);
  const size_t drop = total - 1 > T ? total - 1 - T : 0;  // oldest context tokens beyond the window
  const std::span<const int32_t> ctx = context.subspan(drop);
  if (!std::equal(ctx.begin(), ctx.end(), cached_.begin(), cached_.end())) {
    last_logits_.resize(V);
    dec_.reset();
    dec_.append(ctx, last_logits_);
    cached_.assign(ctx.begin(), ctx.end());
  }
  dec_.truncate(int64_t(ctx.size()));
  // continuation token 0 is predicted by the context's last position, token i by continuation token i - 1
  ContinuationScore s;
  auto [lp0, g0] = token_logprob(last_logits_, cont[0]);
  s.logprob = lp0;
  s.greedy = g0;
  if (cont.size() > 1) {
    const size_t n = cont.size() - 1;
    logits_.resize(n * V);
    dec_.append(cont.first(n), logits_);
    for (size_t i = 0; i < n; ++i) {
      auto [lp, g] = token_logprob(std::span<const float>(logits_).subspan(i * V, V), cont[i + 1]);
      s.logprob += lp;
      s.greedy = s.greedy && g;
    }
  }
  return s;
}

ChoiceOutcome choice_outcome(const std::vector<double>& logprobs, const std::vector<double>& chars, int64_t gold) {
  SP_ASSERT(!logprobs.empty() && chars.size() == logprobs.size(), "choice_outcome: {} log-probs, {} lengths",
            logprobs.size(), chars.size());
  ChoiceOutcome o;
  for (size_t i = 1; i < logprobs.size(); ++i) {
    if (logprobs[i] > logprobs[size_t(o.pred)]) o.pred = int64_t(i);
    if (logprobs[i] / chars[i] > logprobs[size_t(o.pred_norm)] / chars[size_t(o.pred_norm)]) o.pred_norm = int64_t(i);
  }
  o.acc = o.pred == gold;
  o.acc_norm = o.pred_norm == gold;
  return o;
}

std::vector<RollingWindow> rolling_windows(int64_t n, int64_t T) {
  SP_ASSERT(n >= 1 && T >= 1, "rolling_windows({}, {})", n, T);
  std::vector<RollingWindow> out;
  for (int64_t pred = 1; pred <= n;) {
    const int64_t end = std::min(pred + T, n + 1);
    out.push_back({std::max<int64_t>(0, end - 1 - T), pred, end});
    pred = end;
  }
  return out;
}

TaskResult evaluate_task(Decoder& dec, const EvalTask& task, const Tokenizer* tokenizer) {
  const auto t0 = Clock::now();
  TaskResult r;
  switch (task.kind) {
    case TaskKind::Choice: r = evaluate_choice(dec, task); break;
    case TaskKind::Perplexity: r = evaluate_perplexity(dec, task); break;
    case TaskKind::Generate: r = evaluate_generate(dec, task, tokenizer); break;
  }
  r.name = task.name;
  r.path = task.path;
  r.kind = task.kind;
  r.examples = int64_t(task.size());
  r.seconds = seconds_since(t0);
  return r;
}

ValResult evaluate_val(Decoder& dec, const std::vector<std::string>& files, int64_t max_tokens,
                       int64_t bos_token_id, DataLayout layout, const std::string& what) {
  const auto t0 = Clock::now();
  const int64_t T = dec.capacity();
  LoaderOptions lo;
  lo.batch_size = 1;
  lo.seq_len = T;
  lo.vocab_size = dec.vocab_size();
  lo.bos_token_id = bos_token_id;
  lo.layout = layout;
  lo.seq_len_name = "--seq-len";
  lo.shuffle = false;
  DataLoader loader(files, lo, what);
  int64_t windows = int64_t(loader.windows_per_epoch());
  if (windows == 0) fail("{}: no window of {} tokens; use more data or a shorter --seq-len", what, T + 1);
  if (max_tokens > 0) windows = std::clamp<int64_t>((max_tokens + T - 1) / T, 1, windows);
  std::vector<int32_t> window(size_t(T + 1));
  ValResult r;
  Progress progress{what, size_t(windows)};
  for (int64_t i = 0; i < windows; ++i) {
    loader.next(window);
    dec.reset();
    dec.append_scored(std::span<const int32_t>(window).first(size_t(T)), std::span<const int32_t>(window).subspan(1));
    progress.tick(size_t(i + 1));
  }
  const LossSum l = dec.take_loss();
  r.windows = windows;
  r.tokens = l.count;
  r.loss = l.sum / double(r.tokens);
  r.seconds = seconds_since(t0);
  return r;
}

}  // namespace sp
