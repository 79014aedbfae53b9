#include "train/sample.h"

#include "core/check.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace sp {

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::MaxTokens: return "max_tokens";
    case StopReason::StopToken: return "stop_token";
    case StopReason::ContextFull: return "context_full";
  }
  return "?";
}

int32_t pick_token(std::span<const float> logits, const SampleOptions& opt, Rng& rng) {
  const size_t V = logits.size();
  SP_ASSERT(V > 0, "pick_token: no logits");
  // Candidates in a total order (logit descending, then id ascending), so ties never depend on the sort.
  auto before = [&](int32_t a, int32_t b) {
    return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
  };
  if (opt.temperature <= 0) {
    int32_t best = 0;
    for (size_t i = 1; i < V; ++i)
      if (before(int32_t(i), best)) best = int32_t(i);
    return best;
  }
  const size_t k = opt.top_k > 0 ? std::min(V, size_t(opt.top_k)) : V;
  std::vector<int32_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(k), order.end(), before);
  order.resize(k);
  // Probabilities of the candidates at the temperature, in double; the top logit gives exp(0) = 1.
  std::vector<double> p(k);
  const double top = logits[size_t(order[0])];
  for (size_t j = 0; j < k; ++j) p[j] = std::exp((double(logits[size_t(order[j])]) - top) / opt.temperature);
  double total = std::accumulate(p.begin(), p.end(), 0.0);
  if (opt.top_p < 1.0) {  // the nucleus: the shortest prefix of the ordered candidates holding top_p
    double mass = 0;
    size_t keep = 0;
    while (keep < k && mass < opt.top_p * total) mass += p[keep++];
    p.resize(std::max<size_t>(keep, 1));
    total = std::accumulate(p.begin(), p.end(), 0.0);
  }
  double r = rng.uniform() * total;
  for (size_t j = 0; j < p.size(); ++j) {
    r -= p[j];
    if (r < 0) return order[j];
  }
  return order[p.size() - 1];  // r ran past the end by rounding
}

Generation generate(Decoder& dec, std::span<const int32_t> prompt, const SampleOptions& opt) {
  const int64_t V = dec.vocab_size(), cap = dec.capacity();
  if (prompt.empty()) fail("the prompt is empty: it needs at least one token (usually BOS)");
  if (int64_t(prompt.size()) > cap)
    fail("the prompt has {} tokens but the context holds {}; shorten it", prompt.size(), cap);
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= V)
      fail("prompt token {} (at index {}) is outside the vocabulary of {} ids", prompt[i], i, V);
  Generation g;
  std::vector<int32_t> seq(prompt.begin(), prompt.end());  // the whole sequence so far
  std::vector<float> logits(static_cast<size_t>(V));
  Rng rng(opt.seed);
  dec.reset();
  dec.append(seq, logits);
  while (int64_t(g.ids.size()) < opt.max_new_tokens) {
    const int32_t next = pick_token(logits, opt, rng);
    g.ids.push_back(next);
    seq.push_back(next);
    if (std::find(opt.stop_tokens.begin(), opt.stop_tokens.end(), next) != opt.stop_tokens.end()) {
      g.stop = StopReason::StopToken;
      return g;
    }
    if (int64_t(g.ids.size()) == opt.max_new_tokens) break;
    if (dec.length() < cap) {
      dec.append(std::span<const int32_t>(&next, 1), logits);
      continue;
    }
    // The token just emitted was predicted from a full context and has no position left.
    if (!opt.slide) {
      g.stop = StopReason::ContextFull;
      return g;
    }
    // Slide: the newest half (at least one token) starts over at position 0.
    const size_t keep = size_t(std::max<int64_t>(1, cap / 2));
    dec.reset();
    dec.append(std::span<const int32_t>(seq.data() + seq.size() - keep, keep), logits);
    ++g.slides;
  }
  g.stop = StopReason::MaxTokens;
  return g;
}

std::vector<int32_t> generate_sliding(Decoder& dec, std::vector<int32_t> prompt, const SampleOptions& opt) {
  if (int64_t(prompt.size()) > dec.capacity())  // keep the newest tokens, as a sliding window would
    prompt.erase(prompt.begin(), prompt.end() - dec.capacity());
  SampleOptions o = opt;
  o.slide = true;
  return generate(dec, prompt, o).ids;
}

}  // namespace sp
